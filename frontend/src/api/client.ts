/** The typed API client: openapi-fetch over the generated `paths`, plus the two things every call
 * needs — the bearer token, and one place that notices a 401. */
import createClient, { type Middleware } from "openapi-fetch";

import type { paths } from "./schema";
import { readToken } from "./token";

/** A failed call, with the server's own `detail` message (or a network-level one, status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
    this.name = "ApiError";
  }
}

let onUnauthorized: () => void = () => {};

/** Called on any 401 except a failed login: the token is gone or expired. */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

const auth: Middleware = {
  onRequest({ request }) {
    const token = readToken();
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    return request;
  },
  onResponse({ request, response }) {
    // A wrong password is a 401 too, and must stay on the login page with its message.
    if (response.status === 401 && !new URL(request.url).pathname.startsWith("/api/auth/login")) {
      onUnauthorized();
    }
    return response;
  },
};

export const api = createClient<paths>({
  baseUrl: globalThis.location?.origin ?? "",
  // Looked up per call rather than captured, so tests can stub the global fetch.
  fetch: (request) => globalThis.fetch(request),
});
api.use(auth);

function detailOf(error: unknown, response: Response): string {
  if (error && typeof error === "object" && "detail" in error) {
    const detail = (error as { detail: unknown }).detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => (d && typeof d === "object" && "msg" in d ? String(d.msg) : String(d))).join("; ");
    }
  }
  if (typeof error === "string" && error) return error;
  return `${response.status} ${response.statusText}`.trim();
}

/** Await an openapi-fetch call: its data, or an ApiError carrying the server's message. */
export async function call<T>(pending: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await pending;
  } catch (cause) {
    // fetch rejects only when no answer came back at all (server down, network gone).
    throw new ApiError(0, cause instanceof Error && cause.message ? cause.message : "network error");
  }
  if (!result.response.ok) throw new ApiError(result.response.status, detailOf(result.error, result.response));
  return result.data as T;
}

