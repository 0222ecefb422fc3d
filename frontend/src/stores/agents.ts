import { defineStore } from "pinia";
import { computed, ref } from "vue";

import { api, call } from "@/api/client";
import type { AgentOut } from "@/api/types";

/** About three minutes at one heartbeat flush every two seconds. */
export const HISTORY_LIMIT = 90;

/** One point of an agent's metrics history, kept in the browser from the live events. */
export interface MetricSample {
  at: number;
  cpu: number;
  memory: number;
}

export const useAgentsStore = defineStore("agents", () => {
  const byId = ref<Record<string, AgentOut>>({});
  const history = ref<Record<string, MetricSample[]>>({});
  const loaded = ref(false);

  const list = computed(() => Object.values(byId.value).sort((a, b) => a.name.localeCompare(b.name)));
  const online = computed(() => list.value.filter((a) => a.status === "ONLINE"));

  /** A sample per heartbeat: the same heartbeat seen twice (event, then a refetch) counts once. */
  function record(agent: AgentOut): void {
    if (agent.status !== "ONLINE" || !agent.last_seen) return;
    const at = Date.parse(agent.last_seen);
    const samples = (history.value[agent.id] ??= []);
    const last = samples[samples.length - 1];
    if (last && last.at >= at) return;
    samples.push({ at, cpu: agent.cpu_percent, memory: agent.memory_percent });
    if (samples.length > HISTORY_LIMIT) samples.splice(0, samples.length - HISTORY_LIMIT);
  }

  /** A live event: insert or replace the agent, and extend its history. */
  function apply(agent: AgentOut): void {
    byId.value[agent.id] = agent;
    record(agent);
  }

  async function fetchAll(): Promise<void> {
    const agents = await call(api.GET("/api/agents"));
    const next: Record<string, AgentOut> = {};
    for (const agent of agents) {
      next[agent.id] = agent;
      record(agent);
    }
    byId.value = next;
    loaded.value = true;
  }

  /** Revoke an agent (admins): its credential stops working and its live sessions fail. */
  async function revoke(id: string): Promise<void> {
    await call(api.DELETE("/api/agents/{agent_id}", { params: { path: { agent_id: id } } }));
    apply(await call(api.GET("/api/agents/{agent_id}", { params: { path: { agent_id: id } } })));
  }

  function reset(): void {
    byId.value = {};
    history.value = {};
    loaded.value = false;
  }

  return { byId, history, loaded, list, online, apply, fetchAll, revoke, reset };
});
