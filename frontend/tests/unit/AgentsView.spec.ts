import { flushPromises } from "@vue/test-utils";
import { describe, expect, it } from "vitest";

import { useAgentsStore } from "@/stores/agents";
import { useAuthStore } from "@/stores/auth";
import AgentsView from "@/views/AgentsView.vue";

import { agent, user } from "./fakes";
import { freshPinia, mountPage } from "./mountApp";

function fleet(count: number) {
  const pinia = freshPinia();
  useAuthStore().user = user();
  const agents = useAgentsStore();
  for (let i = 0; i < count; i++) {
    const name = `node-${String(i).padStart(2, "0")}`;
    agents.apply(agent({ id: `a${i}`, name, hostname: `${name}.lab`, status: i % 3 ? "ONLINE" : "OFFLINE" }));
  }
  agents.loaded = true;
  return pinia;
}

const names = (page: ReturnType<typeof mountPage>) =>
  page.findAll('[data-testid="agent-name"]').map((n) => n.text());

describe("the agents page", () => {
  it("shows a large fleet a page at a time", async () => {
    const page = mountPage(AgentsView, fleet(30));
    await flushPromises();

    expect(names(page)).toEqual(Array.from({ length: 12 }, (_, i) => `node-${String(i).padStart(2, "0")}`));
    expect(page.find('[data-testid="agent-pager"]').exists()).toBe(true);
    await page.get('[data-testid="agent-pager"] .ant-pagination-item-3').trigger("click");
    expect(names(page)).toEqual(["node-24", "node-25", "node-26", "node-27", "node-28", "node-29"]);
    page.unmount();
  });

  it("finds agents by name or host, and by status", async () => {
    const page = mountPage(AgentsView, fleet(30));
    await flushPromises();

    await page.get('input[data-testid="agent-search"]').setValue("NODE-1");
    expect(names(page)).toEqual(Array.from({ length: 10 }, (_, i) => `node-1${i}`));
    expect(page.find('[data-testid="agent-pager"]').exists()).toBe(false);

    await page.get('input[data-testid="agent-search"]').setValue("node-05.lab");
    expect(names(page)).toEqual(["node-05"]);

    await page.get('input[data-testid="agent-search"]').setValue("");
    await page.findAll('[data-testid="agent-status-filter"] .ant-segmented-item').at(2)!.trigger("click");
    expect(names(page)).toEqual(["node-00", "node-03", "node-06", "node-09", "node-12", "node-15", "node-18", "node-21", "node-24", "node-27"]);

    await page.get('input[data-testid="agent-search"]').setValue("nothing-like-this");
    expect(page.find('[data-testid="agents-no-match"]').exists()).toBe(true);
    page.unmount();
  });
});
