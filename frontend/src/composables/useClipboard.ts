import { message } from "ant-design-vue";
import { useI18n } from "vue-i18n";

/** Copy text, with a confirmation. The async clipboard needs a secure context (HTTPS or
 * localhost); a server reached over plain HTTP on a LAN falls back to a hidden textarea. */
export function useClipboard(): { copy: (text: string) => Promise<boolean> } {
  const { t } = useI18n();

  function copyByTextarea(text: string): boolean {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    } finally {
      area.remove();
    }
  }

  async function copy(text: string): Promise<boolean> {
    let done = false;
    if (window.isSecureContext && navigator.clipboard) {
      done = await navigator.clipboard.writeText(text).then(
        () => true,
        () => false,
      );
    }
    if (!done) done = copyByTextarea(text);
    if (done) void message.success(t("common.copied"));
    else void message.error(t("common.copyFailed"));
    return done;
  }

  return { copy };
}
