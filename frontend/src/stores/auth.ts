import { defineStore } from "pinia";
import { computed, ref } from "vue";

import { api, call } from "@/api/client";
import { readToken, writeToken } from "@/api/token";
import type { ServerInfo, UserOut } from "@/api/types";

/** Who is signed in: the token (kept in localStorage) and the user it belongs to. */
export const useAuthStore = defineStore("auth", () => {
  const token = ref<string | null>(readToken());
  const user = ref<UserOut | null>(null);
  const info = ref<ServerInfo | null>(null);

  const isAdmin = computed(() => user.value?.role === "admin");

  async function fetchMe(): Promise<UserOut> {
    user.value = await call(api.GET("/api/auth/me"));
    return user.value;
  }

  async function fetchInfo(): Promise<ServerInfo> {
    info.value = await call(api.GET("/api/info"));
    return info.value;
  }

  async function login(username: string, password: string): Promise<UserOut> {
    const answer = await call(api.POST("/api/auth/login", { body: { username, password } }));
    writeToken(answer.access_token);
    token.value = answer.access_token;
    return fetchMe();
  }

  async function register(username: string, password: string): Promise<UserOut> {
    await call(api.POST("/api/auth/register", { body: { username, password } }));
    return login(username, password);
  }

  /** Forget the sign-in here, without telling the server (it already refused the token). */
  function forget(): void {
    writeToken(null);
    token.value = null;
    user.value = null;
  }

  /** Sign out everywhere: the server revokes every token of this user, then we forget ours. */
  async function logout(): Promise<void> {
    try {
      if (token.value) await call(api.POST("/api/auth/logout"));
    } catch {
      // Signed out here all the same: a dead server or an expired token changes nothing.
    } finally {
      forget();
    }
  }

  return { token, user, info, isAdmin, fetchMe, fetchInfo, login, register, forget, logout };
});
