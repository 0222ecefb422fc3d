import { afterEach, beforeEach, vi } from "vitest";

import { setUnauthorizedHandler } from "@/api/client";
import { i18n } from "@/i18n";

// jsdom lacks these; Ant Design Vue's responsive parts ask for them.
Object.defineProperty(window, "matchMedia", {
  writable: true,
  value: (query: string) => ({
    matches: false,
    media: query,
    onchange: null,
    addListener: () => {},
    removeListener: () => {},
    addEventListener: () => {},
    removeEventListener: () => {},
    dispatchEvent: () => false,
  }),
});

// jsdom cannot style pseudo-elements and says so on every table; the plain element's style does.
const computedStyle = window.getComputedStyle.bind(window);
window.getComputedStyle = (element: Element) => computedStyle(element);

if (!("ResizeObserver" in window)) {
  class NoResizeObserver {
    observe(): void {}
    unobserve(): void {}
    disconnect(): void {}
  }
  Object.assign(window, { ResizeObserver: NoResizeObserver });
}

beforeEach(() => {
  localStorage.clear();
  i18n.global.locale.value = "en";
  setUnauthorizedHandler(() => {});
});

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
  document.body.innerHTML = "";
});
