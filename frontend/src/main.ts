import "ant-design-vue/dist/reset.css";
import "./styles.css";

import { createPinia } from "pinia";
import { createApp } from "vue";

import { setUnauthorizedHandler } from "@/api/client";
import { i18n } from "@/i18n";
import { router } from "@/router";
import { clearSignedInState } from "@/stores/signOut";

import App from "./App.vue";

const app = createApp(App);
app.use(createPinia());
app.use(router);
app.use(i18n);

// Any 401 means the token is gone (expired, signed out elsewhere, user disabled): start over.
setUnauthorizedHandler(() => {
  clearSignedInState();
  const current = router.currentRoute.value;
  if (current.matched.length > 0 && !current.meta.public) {
    void router.push({ name: "login", query: { redirect: current.fullPath } });
  }
});

document.documentElement.lang = i18n.global.locale.value;
app.mount("#app");
