import { flushPromises } from "@vue/test-utils";
import { beforeEach, describe, expect, it } from "vitest";

import { useAgentsStore } from "@/stores/agents";
import { useAuthStore } from "@/stores/auth";
import { useSessionsStore } from "@/stores/sessions";
import SessionsView from "@/views/SessionsView.vue";

import { agent, session, user } from "./fakes";
import { freshPinia, mountPage } from "./mountApp";

function setUp(...sessions: ReturnType<typeof session>[]) {
  const pinia = freshPinia();
  useAuthStore().user = user({ id: "u1" });
  const agents = useAgentsStore();
  agents.apply(agent());
  agents.loaded = true;
  const store = useSessionsStore();
  for (const s of sessions) store.apply(s);
  store.loaded = true;
  return { pinia, store };
}

describe("the Sessions page", () => {
  beforeEach(() => freshPinia());

  it("offers Open (in a new tab) and the masked password of an ACTIVE session", async () => {
    const { pinia } = setUp(
      session({ status: "ACTIVE", url: "http://127.0.0.1:7001/", password: "s3cret-pass" }),
    );
    const page = mountPage(SessionsView, pinia);
    await flushPromises();

    const open = page.get('[data-testid="session-open"]');
    expect(open.attributes("href")).toBe("http://127.0.0.1:7001/");
    expect(open.attributes("target")).toBe("_blank");
    expect(page.get('[data-testid="session-status"]').attributes("data-status")).toBe("ACTIVE");

    const secret = page.get('[data-testid="secret-value"]');
    expect(secret.text()).not.toContain("s3cret-pass");
    await page.get('[data-testid="secret-toggle"]').trigger("click");
    expect(secret.text()).toBe("s3cret-pass");
    expect(page.find('[data-testid="session-stop"]').exists()).toBe(true);
  });

  it("shows the reason of a FAILED session, and no way to open or stop it", async () => {
    const { pinia } = setUp(session({ status: "FAILED", status_reason: "code-server did not start within 60 s" }));
    const page = mountPage(SessionsView, pinia);
    await flushPromises();

    expect(page.get('[data-testid="session-reason"]').text()).toBe("code-server did not start within 60 s");
    expect(page.find('[data-testid="session-open"]').exists()).toBe(false);
    expect(page.find('[data-testid="session-stop"]').exists()).toBe(false);
  });

  it("follows a session's status live, from PENDING to ACTIVE", async () => {
    const { pinia, store } = setUp(session({ status: "PENDING", updated_at: "2026-01-01T10:00:00Z" }));
    const page = mountPage(SessionsView, pinia);
    await flushPromises();
    expect(page.get('[data-testid="session-status"]').attributes("data-status")).toBe("PENDING");
    expect(page.find('[data-testid="session-open"]').exists()).toBe(false);

    store.apply(session({ status: "STARTING", updated_at: "2026-01-01T10:00:01Z" }));
    await flushPromises();
    expect(page.get('[data-testid="session-status"]').text()).toContain("Starting");

    store.apply(
      session({ status: "ACTIVE", updated_at: "2026-01-01T10:00:03Z", url: "http://ide/", password: "pw-abcdefgh" }),
    );
    await flushPromises();
    expect(page.get('[data-testid="session-status"]').text()).toContain("Active");
    expect(page.get('[data-testid="session-open"]').attributes("href")).toBe("http://ide/");
  });

  it("shows only the signed-in user's sessions", async () => {
    const { pinia } = setUp(session({ id: "mine" }), session({ id: "theirs", owner_id: "u2", agent_name: "beta" }));
    const page = mountPage(SessionsView, pinia);
    await flushPromises();

    expect(page.findAll('[data-testid="session-status"]')).toHaveLength(1);
    expect(page.text()).not.toContain("beta");
  });

  it("says what to do when there are no sessions and no agent is online", async () => {
    const { pinia } = setUp();
    useAgentsStore().apply(agent({ status: "OFFLINE" }));
    const page = mountPage(SessionsView, pinia);
    await flushPromises();

    expect(page.get('[data-testid="sessions-empty"]').text()).toContain("No agent is online yet");
  });
});
