import { defineStore } from "pinia";
import { ref } from "vue";

import { api, call } from "@/api/client";
import type { CreateEnrollmentTokenRequest, EnrollmentTokenCreated, EnrollmentTokenOut } from "@/api/types";

/** Enrollment tokens (admins only). The secret itself is only in the answer to `create`. */
export const useEnrollmentTokensStore = defineStore("enrollmentTokens", () => {
  const list = ref<EnrollmentTokenOut[]>([]);
  const loaded = ref(false);

  async function fetch(): Promise<void> {
    const tokens = await call(api.GET("/api/enrollment-tokens"));
    list.value = [...tokens].sort((a, b) => b.created_at.localeCompare(a.created_at));
    loaded.value = true;
  }

  async function create(request: CreateEnrollmentTokenRequest): Promise<EnrollmentTokenCreated> {
    const created = await call(api.POST("/api/enrollment-tokens", { body: request }));
    list.value = [created, ...list.value.filter((t) => t.id !== created.id)];
    return created;
  }

  async function revoke(id: string): Promise<void> {
    const revoked = await call(
      api.DELETE("/api/enrollment-tokens/{token_id}", { params: { path: { token_id: id } } }),
    );
    list.value = list.value.map((t) => (t.id === id ? revoked : t));
  }

  function reset(): void {
    list.value = [];
    loaded.value = false;
  }

  return { list, loaded, fetch, create, revoke, reset };
});
