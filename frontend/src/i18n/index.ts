/** The UI's languages. The browser's language decides until the person picks one; the pick is
 * remembered in localStorage. Ant Design's own texts follow through ConfigProvider (App.vue). */
import { createI18n } from "vue-i18n";

import en from "./en";
import zhCN from "./zh-CN";

export const LOCALES = [
  { value: "en", label: "English" },
  { value: "zh-CN", label: "简体中文" },
] as const;

export type Locale = (typeof LOCALES)[number]["value"];

const LOCALE_KEY = "sdd.locale";

function isLocale(value: unknown): value is Locale {
  return LOCALES.some((l) => l.value === value);
}

/** The remembered pick, else the browser's language (any zh* is Simplified Chinese), else English. */
export function detectLocale(): Locale {
  const picked = localStorage.getItem(LOCALE_KEY);
  if (isLocale(picked)) return picked;
  const preferred = navigator.languages?.[0] ?? navigator.language ?? "";
  return /^zh\b/i.test(preferred) ? "zh-CN" : "en";
}

export const i18n = createI18n({
  legacy: false,
  locale: detectLocale(),
  fallbackLocale: "en",
  messages: { en, "zh-CN": zhCN },
});

export function currentLocale(): Locale {
  return i18n.global.locale.value as Locale;
}

export function setLocale(locale: Locale): void {
  i18n.global.locale.value = locale;
  localStorage.setItem(LOCALE_KEY, locale);
  document.documentElement.lang = locale;
}
