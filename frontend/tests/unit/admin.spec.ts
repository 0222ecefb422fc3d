import { flushPromises } from "@vue/test-utils";
import { describe, expect, it, vi } from "vitest";

import type { AuditEventOut } from "@/api/types";
import AgentCard from "@/components/AgentCard.vue";
import AuditLogTable from "@/components/AuditLogTable.vue";
import { useAgentsStore } from "@/stores/agents";
import { useAuthStore } from "@/stores/auth";

import { agent, at, serveApi, user } from "./fakes";
import { freshPinia, mountPage } from "./mountApp";

function events(from: number, count: number): AuditEventOut[] {
  return Array.from({ length: count }, (_, i) => ({
    id: from - i,
    at: at(-i),
    actor: "admin",
    action: i % 2 ? "session.start" : "auth.login",
    target: `t${from - i}`,
    detail: "",
  }));
}

describe("revoking an agent", () => {
  it("is offered to admins only, and not for an agent already revoked", async () => {
    const pinia = freshPinia();
    useAuthStore().user = user({ role: "user" });
    const asUser = mountPage(AgentCard, pinia, undefined, { agent: agent(), samples: [] });
    expect(asUser.find('[data-testid="agent-revoke"]').exists()).toBe(false);
    asUser.unmount();

    useAuthStore().user = user({ role: "admin" });
    const asAdmin = mountPage(AgentCard, pinia, undefined, { agent: agent(), samples: [] });
    expect(asAdmin.find('[data-testid="agent-revoke"]').exists()).toBe(true);
    await asAdmin.setProps({ agent: agent({ status: "REVOKED" }) });
    expect(asAdmin.find('[data-testid="agent-revoke"]').exists()).toBe(false);
    asAdmin.unmount();
  });

  it("asks first, then revokes and shows the agent as revoked", async () => {
    const sent = serveApi({
      "DELETE /api/agents/a1": { status: 204 },
      "GET /api/agents/a1": { body: agent({ status: "REVOKED" }) },
    });
    const pinia = freshPinia();
    useAuthStore().user = user({ role: "admin" });
    const agents = useAgentsStore();
    agents.apply(agent());
    const card = mountPage(AgentCard, pinia, undefined, { agent: agents.byId.a1!, samples: [] });

    await card.get('[data-testid="agent-revoke"]').trigger("click");
    await flushPromises();
    expect(sent.filter((r) => r.method === "DELETE")).toHaveLength(0); // only asked so far
    const confirm = await vi.waitFor(() => {
      const button = document.querySelector<HTMLButtonElement>('[data-testid="revoke-confirm"]');
      if (!button) throw new Error("no confirmation yet");
      return button;
    });
    confirm.click();

    await vi.waitFor(() => expect(agents.byId.a1!.status).toBe("REVOKED"));
    expect(sent.map((r) => `${r.method} ${r.path}`)).toEqual(["DELETE /api/agents/a1", "GET /api/agents/a1"]);
    card.unmount();
  });
});

describe("the audit log", () => {
  it("shows the newest events and loads older ones by the last id seen", async () => {
    const sent = serveApi({
      "GET /api/audit": (request) => ({
        body: request.query.get("before") ? events(Number(request.query.get("before")) - 1, 3) : events(100, 50),
      }),
    });
    const page = mountPage(AuditLogTable, freshPinia());
    await flushPromises();

    expect(page.findAll('[data-testid="audit-action"]')).toHaveLength(50);
    expect(sent[0]!.query.get("limit")).toBe("50");
    await page.get('[data-testid="audit-more"]').trigger("click");
    await flushPromises();

    expect(sent[1]!.query.get("before")).toBe("51");
    expect(page.findAll('[data-testid="audit-action"]')).toHaveLength(53);
    // A short page is the last one: nothing more to load.
    expect(page.find('[data-testid="audit-more"]').exists()).toBe(false);
    page.unmount();
  });
});
