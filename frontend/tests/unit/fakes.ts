/** Stand-ins for the server: a fetch that answers by route, and sample API objects. */
import { vi } from "vitest";

import type { AgentOut, SessionOut, UserOut } from "@/api/types";

export interface SentRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: unknown;
}

type Answer = { status?: number; body?: unknown } | ((request: SentRequest) => { status?: number; body?: unknown });

/** Stub the global fetch: `routes` maps "METHOD /path" to an answer; anything else is a 404. */
export function serveApi(routes: Record<string, Answer>): SentRequest[] {
  const sent: SentRequest[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: Request) => {
      const url = new URL(input.url);
      const text = await input.text();
      const request: SentRequest = {
        method: input.method,
        path: url.pathname,
        query: url.searchParams,
        headers: input.headers,
        body: text ? JSON.parse(text) : undefined,
      };
      sent.push(request);
      const route = routes[`${request.method} ${request.path}`];
      const answer = typeof route === "function" ? route(request) : (route ?? { status: 404, body: { detail: "no such route" } });
      const status = answer.status ?? 200;
      return new Response(status === 204 ? null : JSON.stringify(answer.body ?? null), {
        status,
        headers: { "Content-Type": "application/json" },
      });
    }),
  );
  return sent;
}

const T0 = "2026-01-01T10:00:00Z";

export function user(overrides: Partial<UserOut> = {}): UserOut {
  return { id: "u1", username: "ada", role: "user", is_active: true, created_at: T0, ...overrides };
}

export function agent(overrides: Partial<AgentOut> = {}): AgentOut {
  return {
    id: "a1",
    name: "alpha",
    hostname: "alpha.lan",
    status: "ONLINE",
    cpu_percent: 12.5,
    memory_percent: 40,
    memory_total: 8 * 1024 ** 3,
    memory_used: 3.2 * 1024 ** 3,
    disk_percent: 55,
    load_1: 0.4,
    running_sessions: 0,
    last_seen: T0,
    version: "0.1.0",
    created_at: T0,
    ...overrides,
  };
}

export function session(overrides: Partial<SessionOut> = {}): SessionOut {
  return {
    id: "s1",
    agent_id: "a1",
    agent_name: "alpha",
    owner_id: "u1",
    owner_username: "ada",
    status: "PENDING",
    status_reason: null,
    url: null,
    password: null,
    remote_port: null,
    created_at: T0,
    updated_at: T0,
    deadline_at: null,
    ...overrides,
  };
}

/** An ISO time `seconds` after the samples' epoch. */
export function at(seconds: number): string {
  return new Date(Date.parse(T0) + seconds * 1000).toISOString();
}
