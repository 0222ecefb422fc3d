import { defineStore } from "pinia";
import { ref } from "vue";

import { api, call } from "@/api/client";
import type { CreateUserRequest, UpdateUserRequest, UserOut } from "@/api/types";

/** The people on this server (admins only). */
export const useUsersStore = defineStore("users", () => {
  const list = ref<UserOut[]>([]);
  const loaded = ref(false);

  async function fetch(): Promise<void> {
    list.value = await call(api.GET("/api/users"));
    loaded.value = true;
  }

  async function create(request: CreateUserRequest): Promise<UserOut> {
    const user = await call(api.POST("/api/users", { body: request }));
    list.value = [...list.value, user];
    return user;
  }

  async function update(id: string, change: UpdateUserRequest): Promise<UserOut> {
    const user = await call(api.PATCH("/api/users/{user_id}", { params: { path: { user_id: id } }, body: change }));
    list.value = list.value.map((u) => (u.id === id ? user : u));
    return user;
  }

  function reset(): void {
    list.value = [];
    loaded.value = false;
  }

  return { list, loaded, fetch, create, update, reset };
});
