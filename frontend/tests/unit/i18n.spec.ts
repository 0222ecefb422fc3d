import { flushPromises } from "@vue/test-utils";
import { afterEach, describe, expect, it, vi } from "vitest";

import LanguageSwitch from "@/components/LanguageSwitch.vue";
import en from "@/i18n/en";
import { detectLocale, i18n, setLocale } from "@/i18n";
import zhCN from "@/i18n/zh-CN";

import { freshPinia, mountPage } from "./mountApp";

function keys(messages: object, prefix = ""): string[] {
  return Object.entries(messages).flatMap(([key, value]) =>
    typeof value === "object" ? keys(value as object, `${prefix}${key}.`) : [`${prefix}${key}`],
  );
}

function browserLanguage(language: string) {
  vi.spyOn(navigator, "language", "get").mockReturnValue(language);
  vi.spyOn(navigator, "languages", "get").mockReturnValue([language]);
}

describe("languages", () => {
  afterEach(() => {
    document.documentElement.lang = "";
  });

  it("follows a Chinese browser", () => {
    browserLanguage("zh-TW");
    expect(detectLocale()).toBe("zh-CN");
  });

  it("falls back to English for any other browser language", () => {
    browserLanguage("de-DE");
    expect(detectLocale()).toBe("en");
  });

  it("remembers the person's pick over the browser's language", () => {
    browserLanguage("zh-CN");
    setLocale("en");
    expect(detectLocale()).toBe("en");
    expect(localStorage.getItem("sdd.locale")).toBe("en");
  });

  it("has every English text in Chinese too", () => {
    expect(keys(zhCN).sort()).toEqual(keys(en).sort());
  });

  it("switches the whole UI from the language menu", async () => {
    const page = mountPage(LanguageSwitch, freshPinia());
    expect(page.text()).toContain("English");

    await page.get('[data-testid="language-switch"]').trigger("click");
    await flushPromises();
    const chinese = document.querySelector<HTMLElement>('[data-testid="language-zh-CN"]');
    expect(chinese).not.toBeNull();
    chinese!.click();
    await flushPromises();

    expect(i18n.global.locale.value).toBe("zh-CN");
    expect(i18n.global.t("nav.sessions")).toBe("会话");
    expect(page.text()).toContain("简体中文");
    expect(localStorage.getItem("sdd.locale")).toBe("zh-CN");
    expect(document.documentElement.lang).toBe("zh-CN");
  });
});
