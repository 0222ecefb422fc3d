import { ApiError } from "@/api/client";

import { i18n } from ".";

/** A message fit to show a person, whatever was thrown: the server's own `detail` when it
 * answered, a hint to check the server when nothing answered. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.status === 0 ? i18n.global.t("errors.network") : error.detail;
  if (error instanceof Error) return error.message;
  return String(error);
}
