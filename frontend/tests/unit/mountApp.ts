import { mount, type ComponentMountingOptions } from "@vue/test-utils";
import { createPinia, setActivePinia, type Pinia } from "pinia";
import type { Component } from "vue";
import { createMemoryHistory, createRouter, type Router } from "vue-router";

import { i18n } from "@/i18n";

const Blank = { template: "<div />" };

/** A router with the app's route names and blank pages, in memory. */
export function testRouter(): Router {
  return createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: "/", name: "home", component: Blank },
      { path: "/login", name: "login", component: Blank },
      { path: "/agents", name: "agents", component: Blank },
      { path: "/sessions", name: "sessions", component: Blank },
      { path: "/admin", name: "admin", component: Blank },
    ],
  });
}

export function freshPinia(): Pinia {
  const pinia = createPinia();
  setActivePinia(pinia);
  return pinia;
}

/** Mount a page as the app would: with Pinia, the i18n plugin and a router. */
export function mountPage<C extends Component>(
  page: C,
  pinia: Pinia,
  router: Router = testRouter(),
  props: Record<string, unknown> = {},
) {
  const options = {
    attachTo: document.body,
    props,
    global: { plugins: [pinia, i18n, router] },
  } as unknown as ComponentMountingOptions<C>;
  return mount(page, options);
}
