import { createPinia, setActivePinia } from "pinia";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { useAgentsStore } from "@/stores/agents";
import { useAuthStore } from "@/stores/auth";
import { AGENT_BATCH_MS, useLiveStore } from "@/stores/live";
import { useSessionsStore } from "@/stores/sessions";

import { agent, at, serveApi, session, user } from "./fakes";

/** An EventSource the test drives by hand. */
class FakeEventSource {
  static made: FakeEventSource[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((message: MessageEvent<string>) => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;

  constructor(readonly url: string) {
    FakeEventSource.made.push(this);
  }

  close(): void {
    this.closed = true;
  }

  open(): void {
    this.onopen?.();
  }

  send(event: unknown): void {
    this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(event) }));
  }

  fail(): void {
    this.onerror?.();
  }
}

function latest(): FakeEventSource {
  return FakeEventSource.made[FakeEventSource.made.length - 1]!;
}

describe("the live connection", () => {
  let sent: ReturnType<typeof serveApi>;

  beforeEach(() => {
    setActivePinia(createPinia());
    FakeEventSource.made = [];
    vi.stubGlobal("EventSource", FakeEventSource);
    localStorage.setItem("sdd.token", "tok/1");
    useAuthStore().user = user();
    sent = serveApi({
      "GET /api/agents": { body: [agent()] },
      "GET /api/sessions": { body: [] },
      "GET /api/auth/me": { body: user() },
    });
  });

  it("subscribes with the token in the query string", () => {
    useLiveStore().start();

    expect(latest().url).toBe("/api/events?token=tok%2F1");
  });

  it("applies session events at once and agents' metrics in batches, the newest per agent", () => {
    vi.useFakeTimers();
    const live = useLiveStore();
    live.start();
    const agents = useAgentsStore();
    agents.apply(agent({ cpu_percent: 10 }));

    latest().send({ type: "agent", agent: agent({ cpu_percent: 50, last_seen: at(2) }) });
    latest().send({ type: "agent", agent: agent({ cpu_percent: 66, last_seen: at(4) }) });
    latest().send({ type: "session", session: session({ status: "STARTING" }) });

    expect(useSessionsStore().byId.s1!.status).toBe("STARTING");
    expect(agents.byId.a1!.cpu_percent).toBe(10); // held back...
    vi.advanceTimersByTime(AGENT_BATCH_MS);
    expect(agents.byId.a1!.cpu_percent).toBe(66); // ...then applied, newest first
    live.stop();
    vi.useRealTimers();
  });

  it("refetches the lists whenever the stream (re)opens", async () => {
    const live = useLiveStore();
    live.start();
    await vi.waitFor(() => expect(sent).toHaveLength(2)); // the first load, on start
    sent.length = 0;

    latest().open();
    await vi.waitFor(() => expect(sent.map((r) => r.path).sort()).toEqual(["/api/agents", "/api/sessions"]));
    expect(live.state).toBe("open");
  });

  it("reconnects after an error, waiting longer each time", () => {
    vi.useFakeTimers();
    const live = useLiveStore();
    live.start();

    latest().fail();
    expect(FakeEventSource.made).toHaveLength(1);
    expect(FakeEventSource.made[0]!.closed).toBe(true);
    expect(live.state).toBe("retrying");
    vi.advanceTimersByTime(1000);
    expect(FakeEventSource.made).toHaveLength(2);

    latest().fail();
    vi.advanceTimersByTime(1999);
    expect(FakeEventSource.made).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeEventSource.made).toHaveLength(3);
  });

  it("starts the wait over once a connection succeeds", () => {
    vi.useFakeTimers();
    useLiveStore().start();

    latest().fail();
    vi.advanceTimersByTime(1000);
    latest().fail();
    vi.advanceTimersByTime(2000);
    latest().open();
    latest().fail();
    vi.advanceTimersByTime(1000);

    expect(FakeEventSource.made).toHaveLength(4);
  });

  it("stays closed once stopped", () => {
    vi.useFakeTimers();
    const live = useLiveStore();
    live.start();
    const stream = latest();
    stream.fail();

    live.stop();
    vi.advanceTimersByTime(60_000);

    expect(FakeEventSource.made).toHaveLength(1);
    expect(live.state).toBe("idle");
  });

  it("ignores a message it cannot read", () => {
    useLiveStore().start();

    latest().onmessage?.(new MessageEvent("message", { data: "not json" }));

    expect(useAgentsStore().list).toEqual([]);
  });
});
