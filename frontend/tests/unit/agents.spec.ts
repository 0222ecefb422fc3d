import { createPinia, setActivePinia } from "pinia";
import { beforeEach, describe, expect, it } from "vitest";

import { HISTORY_LIMIT, useAgentsStore } from "@/stores/agents";

import { agent, at, serveApi } from "./fakes";

describe("the agents store", () => {
  beforeEach(() => setActivePinia(createPinia()));

  it("inserts an agent from an event and replaces it on the next one", () => {
    const agents = useAgentsStore();

    agents.apply(agent({ cpu_percent: 10 }));
    agents.apply(agent({ cpu_percent: 75, last_seen: at(2) }));

    expect(agents.list).toHaveLength(1);
    expect(agents.byId.a1!.cpu_percent).toBe(75);
  });

  it("lists agents by name and knows which are online", () => {
    const agents = useAgentsStore();

    agents.apply(agent({ id: "a2", name: "zeta", status: "OFFLINE" }));
    agents.apply(agent({ id: "a1", name: "alpha" }));
    agents.apply(agent({ id: "a3", name: "mid", status: "REVOKED" }));

    expect(agents.list.map((a) => a.name)).toEqual(["alpha", "mid", "zeta"]);
    expect(agents.online.map((a) => a.name)).toEqual(["alpha"]);
  });

  it("keeps one history sample per heartbeat, even when a heartbeat is seen twice", () => {
    const agents = useAgentsStore();

    agents.apply(agent({ cpu_percent: 10, memory_percent: 30, last_seen: at(0) }));
    agents.apply(agent({ cpu_percent: 10, memory_percent: 30, last_seen: at(0) }));
    agents.apply(agent({ cpu_percent: 20, memory_percent: 31, last_seen: at(2) }));

    expect(agents.history.a1).toEqual([
      { at: Date.parse(at(0)), cpu: 10, memory: 30 },
      { at: Date.parse(at(2)), cpu: 20, memory: 31 },
    ]);
  });

  it("keeps only the most recent samples", () => {
    const agents = useAgentsStore();

    for (let i = 0; i < HISTORY_LIMIT + 15; i++) agents.apply(agent({ cpu_percent: i % 100, last_seen: at(i * 2) }));

    const samples = agents.history.a1!;
    expect(samples).toHaveLength(HISTORY_LIMIT);
    expect(samples[samples.length - 1]!.at).toBe(Date.parse(at((HISTORY_LIMIT + 14) * 2)));
  });

  it("records no metrics for an agent that is not online", () => {
    const agents = useAgentsStore();

    agents.apply(agent({ status: "OFFLINE", last_seen: at(5) }));

    expect(agents.history.a1 ?? []).toEqual([]);
  });

  it("replaces the whole list on a refetch, dropping agents that are gone", async () => {
    serveApi({ "GET /api/agents": { body: [agent({ id: "a2", name: "beta" })] } });
    const agents = useAgentsStore();
    agents.apply(agent());

    await agents.fetchAll();

    expect(agents.list.map((a) => a.id)).toEqual(["a2"]);
    expect(agents.loaded).toBe(true);
  });
});
