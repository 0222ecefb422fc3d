import { createRouter, createWebHistory, type RouteLocationRaw } from "vue-router";

import { useAuthStore } from "@/stores/auth";

declare module "vue-router" {
  interface RouteMeta {
    /** Reachable without signing in. */
    public?: boolean;
    /** Only for admins; others land on their sessions. */
    admin?: boolean;
    /** The i18n key of the page's title. */
    title?: string;
  }
}

export const router = createRouter({
  history: createWebHistory(import.meta.env.BASE_URL),
  routes: [
    {
      path: "/login",
      name: "login",
      component: () => import("@/views/LoginView.vue"),
      meta: { public: true },
    },
    {
      path: "/",
      component: () => import("@/layouts/AppLayout.vue"),
      children: [
        { path: "", redirect: { name: "sessions" } },
        {
          path: "agents",
          name: "agents",
          component: () => import("@/views/AgentsView.vue"),
          meta: { title: "nav.agents" },
        },
        {
          path: "sessions",
          name: "sessions",
          component: () => import("@/views/SessionsView.vue"),
          meta: { title: "nav.sessions" },
        },
        {
          path: "admin",
          name: "admin",
          component: () => import("@/views/AdminView.vue"),
          meta: { title: "nav.admin", admin: true },
        },
      ],
    },
    { path: "/:unknown(.*)*", redirect: { name: "sessions" } },
  ],
});

function toLogin(redirect: string): RouteLocationRaw {
  return { name: "login", query: redirect && redirect !== "/" ? { redirect } : {} };
}

router.beforeEach(async (to) => {
  const auth = useAuthStore();
  if (to.name === "login" && auth.token) {
    // Already signed in (a bookmark, the back button): skip the form if the token still works.
    const signedIn = auth.user ?? (await auth.fetchMe().catch(() => null));
    if (signedIn) return { name: "sessions" };
  }
  if (to.meta.public) return true;
  if (!auth.token) return toLogin(to.fullPath);
  if (!auth.user) {
    try {
      await auth.fetchMe();
    } catch {
      return toLogin(to.fullPath);
    }
  }
  if (to.meta.admin && !auth.isAdmin) return { name: "sessions" };
  return true;
});
