import { createPinia, setActivePinia } from "pinia";
import { beforeEach, describe, expect, it } from "vitest";

import { useAuthStore } from "@/stores/auth";
import { useSessionsStore } from "@/stores/sessions";

import { at, serveApi, session, user } from "./fakes";

describe("the sessions store", () => {
  beforeEach(() => {
    setActivePinia(createPinia());
    useAuthStore().user = user({ id: "u1" });
  });

  it("moves one session through PENDING, STARTING and ACTIVE as events arrive", () => {
    const sessions = useSessionsStore();

    sessions.apply(session({ status: "PENDING", updated_at: at(0) }));
    sessions.apply(session({ status: "STARTING", updated_at: at(1) }));
    sessions.apply(
      session({ status: "ACTIVE", updated_at: at(3), url: "http://ide.example:7001/", password: "pw-123456" }),
    );

    expect(sessions.all).toHaveLength(1);
    expect(sessions.byId.s1).toMatchObject({ status: "ACTIVE", url: "http://ide.example:7001/", password: "pw-123456" });
  });

  it("ignores an answer older than what it already shows", () => {
    const sessions = useSessionsStore();

    sessions.apply(session({ status: "ACTIVE", updated_at: at(5) }));
    sessions.apply(session({ status: "STARTING", updated_at: at(2) }));

    expect(sessions.byId.s1!.status).toBe("ACTIVE");
  });

  it("shows a user their own sessions, newest first", () => {
    const sessions = useSessionsStore();

    sessions.apply(session({ id: "old", created_at: at(0) }));
    sessions.apply(session({ id: "other", owner_id: "u2", created_at: at(5) }));
    sessions.apply(session({ id: "new", created_at: at(10) }));

    expect(sessions.mine.map((s) => s.id)).toEqual(["new", "old"]);
    expect(sessions.all.map((s) => s.id)).toEqual(["new", "other", "old"]);
  });

  it("lets the server choose the agent by sending no agent_id", async () => {
    const sent = serveApi({ "POST /api/sessions": { status: 201, body: session() } });

    await useSessionsStore().start();

    expect(sent[0]!.body).toEqual({});
  });

  it("asks for the chosen agent", async () => {
    const sent = serveApi({ "POST /api/sessions": { status: 201, body: session() } });

    const started = await useSessionsStore().start("a7");

    expect(sent[0]!.body).toEqual({ agent_id: "a7" });
    expect(useSessionsStore().byId[started.id]).toBeDefined();
  });

  it("stops a session and shows the server's answer", async () => {
    serveApi({ "POST /api/sessions/s1/stop": { status: 202, body: session({ status: "STOPPING", updated_at: at(9) }) } });
    const sessions = useSessionsStore();
    sessions.apply(session({ status: "ACTIVE", updated_at: at(3) }));

    await sessions.stop("s1");

    expect(sessions.byId.s1!.status).toBe("STOPPING");
  });

  it("fetches everyone's sessions for an admin and only their own for a user", async () => {
    const sent = serveApi({ "GET /api/sessions": { body: [] } });
    const sessions = useSessionsStore();

    await sessions.fetch();
    useAuthStore().user = user({ role: "admin" });
    await sessions.fetch();

    expect(sent.map((r) => r.query.get("all"))).toEqual(["false", "true"]);
  });

  it("keeps a newer live status when a slower refetch brings an older one", async () => {
    serveApi({ "GET /api/sessions": { body: [session({ status: "STARTING", updated_at: at(1) })] } });
    const sessions = useSessionsStore();
    sessions.apply(session({ status: "ACTIVE", updated_at: at(4) }));

    await sessions.fetch();

    expect(sessions.byId.s1!.status).toBe("ACTIVE");
  });
});
