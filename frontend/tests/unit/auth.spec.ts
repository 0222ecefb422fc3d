import { createPinia, setActivePinia } from "pinia";
import { beforeEach, describe, expect, it, vi } from "vitest";

import { ApiError, setUnauthorizedHandler } from "@/api/client";
import { readToken } from "@/api/token";
import { useAuthStore } from "@/stores/auth";

import { serveApi, user } from "./fakes";

describe("the auth store", () => {
  beforeEach(() => setActivePinia(createPinia()));

  it("keeps the token from a login and sends it as a bearer token", async () => {
    const sent = serveApi({
      "POST /api/auth/login": { body: { access_token: "tok-1", token_type: "bearer", expires_at: "2030-01-01T00:00:00Z" } },
      "GET /api/auth/me": { body: user({ role: "admin" }) },
    });
    const auth = useAuthStore();

    await auth.login("ada", "secret-password");

    expect(sent[0]!.body).toEqual({ username: "ada", password: "secret-password" });
    expect(sent[1]!.headers.get("Authorization")).toBe("Bearer tok-1");
    expect(readToken()).toBe("tok-1");
    expect(auth.user?.username).toBe("ada");
    expect(auth.isAdmin).toBe(true);
  });

  it("rejects a wrong password with the server's message, keeping no token and staying put", async () => {
    serveApi({ "POST /api/auth/login": { status: 401, body: { detail: "wrong username or password" } } });
    const unauthorized = vi.fn();
    setUnauthorizedHandler(unauthorized);
    const auth = useAuthStore();

    const failure = auth.login("ada", "nope").catch((error: unknown) => error);

    expect(await failure).toEqual(new ApiError(401, "wrong username or password"));
    expect(readToken()).toBeNull();
    expect(auth.user).toBeNull();
    expect(unauthorized).not.toHaveBeenCalled();
  });

  it("hands any other 401 to the unauthorized handler", async () => {
    serveApi({ "GET /api/auth/me": { status: 401, body: { detail: "sign in again" } } });
    const unauthorized = vi.fn();
    setUnauthorizedHandler(unauthorized);

    await expect(useAuthStore().fetchMe()).rejects.toThrow("sign in again");
    expect(unauthorized).toHaveBeenCalledOnce();
  });

  it("signs out on the server and forgets the token, even when the server is gone", async () => {
    localStorage.setItem("sdd.token", "tok-2");
    const sent = serveApi({ "POST /api/auth/logout": { status: 503, body: { detail: "down" } } });
    const auth = useAuthStore();
    auth.user = user();

    await auth.logout();

    expect(sent.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /api/auth/logout"]);
    expect(sent[0]!.headers.get("Authorization")).toBe("Bearer tok-2");
    expect(readToken()).toBeNull();
    expect(auth.token).toBeNull();
    expect(auth.user).toBeNull();
  });

  it("reports an unreachable server as a network error (status 0)", async () => {
    vi.stubGlobal("fetch", vi.fn().mockRejectedValue(new TypeError("fetch failed")));

    await expect(useAuthStore().fetchInfo()).rejects.toMatchObject({ status: 0 });
  });
});
