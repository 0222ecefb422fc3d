/** Names for the server's shapes. They are generated from its OpenAPI document (`npm run gen:api`),
 * never typed by hand. */
import type { components } from "./schema";

type Schemas = components["schemas"];

export type AgentOut = Schemas["AgentOut"];
export type AgentStatus = Schemas["AgentStatus"];
export type SessionOut = Schemas["SessionOut"];
export type SessionStatus = Schemas["SessionStatus"];
export type UserOut = Schemas["UserOut"];
export type Role = Schemas["Role"];
export type ServerInfo = Schemas["ServerInfo"];
export type EnrollmentTokenOut = Schemas["EnrollmentTokenOut"];
export type EnrollmentTokenCreated = Schemas["EnrollmentTokenCreated"];
export type CreateEnrollmentTokenRequest = Schemas["CreateEnrollmentTokenRequest"];
export type CreateUserRequest = Schemas["CreateUserRequest"];
export type UpdateUserRequest = Schemas["UpdateUserRequest"];
export type AuditEventOut = Schemas["AuditEventOut"];

/** One message of `GET /api/events`. The stream is not described by the OpenAPI document, so
 * its envelope is spelled here, around the generated shapes it carries (sdd.protocol's
 * AgentEvent and SessionEvent). */
export type LiveEvent = { type: "agent"; agent: AgentOut } | { type: "session"; session: SessionOut };

/** Sessions that hold (or are about to hold) an IDE on an agent: they can be stopped. */
export const LIVE_SESSION_STATUSES: readonly SessionStatus[] = ["PENDING", "STARTING", "ACTIVE", "LOST", "STOPPING"];
