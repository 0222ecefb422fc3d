import { defineStore } from "pinia";
import { ref } from "vue";

import { readToken } from "@/api/token";
import type { AgentOut, LiveEvent } from "@/api/types";

import { useAgentsStore } from "./agents";
import { useAuthStore } from "./auth";
import { useSessionsStore } from "./sessions";

/** Retry delays grow 1 s, 2 s, 4 s… up to this. */
export const MAX_RETRY_MS = 30_000;
/** A slow refetch in case an event was lost (the stream never replays what it missed). */
export const SAFETY_REFRESH_MS = 60_000;
/** Agents' metrics are applied at most this often: a large fleet sends thousands of events a
 * second (one per heartbeat), and each application re-renders whatever lists agents. */
export const AGENT_BATCH_MS = 250;

export type LiveState = "idle" | "connecting" | "open" | "retrying";

/** The live connection: `GET /api/events` as server-sent events, applied to the stores. */
export const useLiveStore = defineStore("live", () => {
  const agents = useAgentsStore();
  const sessions = useSessionsStore();
  const auth = useAuthStore();

  const state = ref<LiveState>("idle");
  let source: EventSource | null = null;
  let failures = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let safetyTimer: ReturnType<typeof setInterval> | undefined;
  let pendingAgents = new Map<string, AgentOut>();
  let agentTimer: ReturnType<typeof setTimeout> | undefined;

  /** Apply the agents' events held back since the last batch (the newest per agent wins). */
  function flushAgents(): void {
    clearTimeout(agentTimer);
    agentTimer = undefined;
    const batch = pendingAgents;
    pendingAgents = new Map();
    for (const agent of batch.values()) agents.apply(agent);
  }

  /** Refetch every list the stream keeps up to date. Failures are left for the next try. */
  async function refresh(): Promise<void> {
    await Promise.allSettled([agents.fetchAll(), sessions.fetch()]);
  }

  function dispatch(data: string): void {
    let event: LiveEvent;
    try {
      event = JSON.parse(data) as LiveEvent;
    } catch {
      return;
    }
    if (event.type === "agent") {
      pendingAgents.set(event.agent.id, event.agent);
      agentTimer ??= setTimeout(flushAgents, AGENT_BATCH_MS);
    } else if (event.type === "session") {
      sessions.apply(event.session); // few, and someone may be waiting for ACTIVE: at once
    }
  }

  function connect(): void {
    const token = readToken();
    if (!token) {
      stop();
      return;
    }
    state.value = failures === 0 ? "connecting" : "retrying";
    // EventSource cannot send headers: the server takes the token from the query string.
    const stream = new EventSource(`/api/events?token=${encodeURIComponent(token)}`);
    source = stream;
    stream.onopen = () => {
      failures = 0;
      state.value = "open";
      // Whatever changed while we were not listening arrives with the lists.
      void refresh();
    };
    stream.onmessage = (message: MessageEvent<string>) => dispatch(message.data);
    stream.onerror = () => {
      stream.close();
      if (source !== stream) return;
      source = null;
      state.value = "retrying";
      const delay = Math.min(MAX_RETRY_MS, 1000 * 2 ** failures);
      failures += 1;
      retryTimer = setTimeout(connect, delay);
      // EventSource hides the status code: ask once, so an expired token leads to the login
      // page (through the client's 401 handler) rather than retrying forever.
      auth.fetchMe().catch(() => {});
    };
  }

  function start(): void {
    if (state.value !== "idle") return;
    failures = 0;
    void refresh();
    connect();
    safetyTimer = setInterval(() => void refresh(), SAFETY_REFRESH_MS);
  }

  function stop(): void {
    clearTimeout(agentTimer);
    agentTimer = undefined;
    pendingAgents = new Map();
    clearTimeout(retryTimer);
    clearInterval(safetyTimer);
    source?.close();
    source = null;
    state.value = "idle";
  }

  return { state, start, stop, refresh, dispatch, flushAgents };
});
