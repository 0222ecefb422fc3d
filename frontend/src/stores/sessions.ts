import { defineStore } from "pinia";
import { computed, ref } from "vue";

import { api, call } from "@/api/client";
import type { SessionOut } from "@/api/types";

import { useAuthStore } from "./auth";

function newestFirst(a: SessionOut, b: SessionOut): number {
  return b.created_at.localeCompare(a.created_at);
}

/** Sessions known to this browser: the user's own, and for an admin everyone's (the server
 * sends an admin every session's events, so the store holds them all). */
export const useSessionsStore = defineStore("sessions", () => {
  const auth = useAuthStore();
  const byId = ref<Record<string, SessionOut>>({});
  const loaded = ref(false);

  const all = computed(() => Object.values(byId.value).sort(newestFirst));
  const mine = computed(() => all.value.filter((s) => s.owner_id === auth.user?.id));

  /** Insert or replace by id. An answer older than what is shown (a slow response racing a live
   * event) is dropped, so the status never steps back. */
  function apply(session: SessionOut): void {
    if (!isStale(session)) byId.value[session.id] = session;
  }

  function isStale(session: SessionOut): boolean {
    const known = byId.value[session.id];
    return known !== undefined && Date.parse(known.updated_at) > Date.parse(session.updated_at);
  }

  /** Refetch the sessions this user can see: everyone's for an admin, else their own. */
  async function fetch(): Promise<void> {
    const everyone = auth.isAdmin;
    const sessions = await call(api.GET("/api/sessions", { params: { query: { all: everyone } } }));
    const next: Record<string, SessionOut> = {};
    for (const session of sessions) next[session.id] = isStale(session) ? byId.value[session.id]! : session;
    byId.value = next;
    loaded.value = true;
  }

  /** Ask for a session; without an agent the server picks the least-loaded online one. */
  async function start(agentId?: string): Promise<SessionOut> {
    const body = agentId ? { agent_id: agentId } : {};
    const session = await call(api.POST("/api/sessions", { body }));
    apply(session);
    return session;
  }

  async function stop(id: string): Promise<SessionOut> {
    const session = await call(api.POST("/api/sessions/{session_id}/stop", { params: { path: { session_id: id } } }));
    apply(session);
    return session;
  }

  async function forceFail(id: string, reason: string): Promise<SessionOut> {
    const session = await call(
      api.POST("/api/sessions/{session_id}/fail", { params: { path: { session_id: id } }, body: { reason } }),
    );
    apply(session);
    return session;
  }

  function reset(): void {
    byId.value = {};
    loaded.value = false;
  }

  return { byId, loaded, all, mine, apply, fetch, start, stop, forceFail, reset };
});
