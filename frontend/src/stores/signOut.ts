import { useAgentsStore } from "./agents";
import { useAuthStore } from "./auth";
import { useEnrollmentTokensStore } from "./enrollmentTokens";
import { useLiveStore } from "./live";
import { useSessionsStore } from "./sessions";
import { useUsersStore } from "./users";

/** Drop everything the signed-in user could see, so the next one starts clean. */
export function clearSignedInState(): void {
  useLiveStore().stop();
  useAuthStore().forget();
  useAgentsStore().reset();
  useSessionsStore().reset();
  useEnrollmentTokensStore().reset();
  useUsersStore().reset();
}
