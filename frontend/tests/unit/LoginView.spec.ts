import { flushPromises } from "@vue/test-utils";
import { describe, expect, it, vi } from "vitest";

import { readToken } from "@/api/token";
import LoginView from "@/views/LoginView.vue";

import { serveApi, user } from "./fakes";
import { freshPinia, mountPage, testRouter } from "./mountApp";

async function signIn(page: ReturnType<typeof mountPage>, username: string, password: string) {
  await page.get('[data-testid="login-username"]').setValue(username);
  await page.get('[data-testid="login-password"]').setValue(password);
  await page.get("form").trigger("submit");
}

describe("the login page", () => {
  it("shows the server's message when the password is wrong", async () => {
    serveApi({
      "GET /api/info": { body: { version: "0.1.0", registration_open: false } },
      "POST /api/auth/login": { status: 401, body: { detail: "wrong username or password" } },
    });
    const page = mountPage(LoginView, freshPinia());
    await flushPromises();

    await signIn(page, "admin", "nope");

    await vi.waitFor(() => expect(page.find('[data-testid="login-error"]').exists()).toBe(true));
    expect(page.get('[data-testid="login-error"]').text()).toContain("wrong username or password");
    expect(readToken()).toBeNull();
  });

  it("signs in and goes where it was sent from", async () => {
    serveApi({
      "GET /api/info": { body: { version: "0.1.0", registration_open: false } },
      "POST /api/auth/login": { body: { access_token: "tok", token_type: "bearer", expires_at: "2030-01-01T00:00:00Z" } },
      "GET /api/auth/me": { body: user() },
    });
    const router = testRouter();
    await router.push({ name: "login", query: { redirect: "/agents" } });
    const page = mountPage(LoginView, freshPinia(), router);
    await flushPromises();

    await signIn(page, "ada", "correct-horse");

    await vi.waitFor(() => expect(router.currentRoute.value.fullPath).toBe("/agents"));
    expect(readToken()).toBe("tok");
  });

  it("offers registration only when the server has it open", async () => {
    serveApi({ "GET /api/info": { body: { version: "0.1.0", registration_open: true } } });
    const open = mountPage(LoginView, freshPinia());
    await flushPromises();
    expect(open.find('[data-testid="to-register"]').exists()).toBe(true);
    open.unmount();

    serveApi({ "GET /api/info": { body: { version: "0.1.0", registration_open: false } } });
    const closed = mountPage(LoginView, freshPinia());
    await flushPromises();
    expect(closed.find('[data-testid="to-register"]').exists()).toBe(false);
  });

  it("shows why registration was refused", async () => {
    serveApi({
      "GET /api/info": { body: { version: "0.1.0", registration_open: true } },
      "POST /api/auth/register": { status: 409, body: { detail: "the username 'ada' is taken; choose another" } },
    });
    const page = mountPage(LoginView, freshPinia());
    await flushPromises();
    await page.get('[data-testid="to-register"]').trigger("click");

    await signIn(page, "ada", "long-enough-password");

    await vi.waitFor(() => expect(page.find('[data-testid="login-error"]').exists()).toBe(true));
    expect(page.get('[data-testid="login-error"]').text()).toContain("is taken");
  });
});
