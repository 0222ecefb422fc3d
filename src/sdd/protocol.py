"""The one wire contract of SDD.

The server, the agent, the CLI, the tests and (through the OpenAPI document) the web UI all speak
these models. Change a shape here and every side sees it; never re-type a payload elsewhere.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

PROTOCOL_VERSION = 1

# Prefix of every agent credential, so a leaked one is recognisable in a secret scanner.
AGENT_CREDENTIAL_PREFIX = "sdda_"
ENROLLMENT_TOKEN_PREFIX = "sdde_"  # noqa: S105 (a prefix, not a secret)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
"""Names of users and agents: safe in a path, a subdomain-ish label, a log line."""
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""Ids the server hands out (agents, sessions, tasks, users, tokens)."""


def _no_nul(value: str | None) -> str | None:
    # PostgreSQL cannot store NUL in text: refused here with a 422, not a 500 from the database.
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = AfterValidator(_no_nul)
"""Free text that is stored or looked up: anything but NUL."""


class Role(enum.StrEnum):
    ADMIN = "admin"
    USER = "user"


class AgentStatus(enum.StrEnum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    REVOKED = "REVOKED"


class SessionStatus(enum.StrEnum):
    PENDING = "PENDING"
    STARTING = "STARTING"
    ACTIVE = "ACTIVE"
    LOST = "LOST"
    """Its agent is offline: the IDE may still run; ACTIVE again when the node reports it."""
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (SessionStatus.STOPPED, SessionStatus.FAILED)


LIVE_SESSION_STATUSES = (
    SessionStatus.PENDING,
    SessionStatus.STARTING,
    SessionStatus.ACTIVE,
    SessionStatus.LOST,
    SessionStatus.STOPPING,
)


class TaskKind(enum.StrEnum):
    START_CODE_SERVER = "start_code_server"
    STOP_CODE_SERVER = "stop_code_server"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --------------------------------------------------------------------------------------------
# People: auth, users
# --------------------------------------------------------------------------------------------


class LoginRequest(_Model):
    username: Annotated[str, Field(min_length=1, max_length=64), Text]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class TokenResponse(_Out):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_at: datetime


class RegisterUserRequest(_Model):
    username: Annotated[str, Field(pattern=NAME_PATTERN)]
    password: Annotated[str, Field(min_length=8, max_length=256)]


class CreateUserRequest(RegisterUserRequest):
    role: Role = Role.USER


class UpdateUserRequest(_Model):
    role: Role | None = None
    is_active: bool | None = None
    password: Annotated[str | None, Field(min_length=8, max_length=256)] = None


class UserOut(_Out):
    id: str
    username: str
    role: Role
    is_active: bool
    created_at: datetime


class ServerInfo(_Out):
    """What the login page needs before anyone signs in."""

    version: str
    registration_open: bool


# --------------------------------------------------------------------------------------------
# Agents and enrollment
# --------------------------------------------------------------------------------------------


class Metrics(_Model):
    # Infinity or NaN would be stored as JSON PostgreSQL refuses, failing a whole presence flush.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    cpu_percent: Annotated[float, Field(ge=0, le=100)] = 0.0
    cpu_count: Annotated[int, Field(ge=0)] = 0
    memory_percent: Annotated[float, Field(ge=0, le=100)] = 0.0
    memory_total: Annotated[int, Field(ge=0)] = 0
    memory_used: Annotated[int, Field(ge=0)] = 0
    disk_percent: Annotated[float, Field(ge=0, le=100)] = 0.0
    disk_total: Annotated[int, Field(ge=0)] = 0
    disk_used: Annotated[int, Field(ge=0)] = 0
    load_1: Annotated[float, Field(ge=0)] = 0.0
    load_5: Annotated[float, Field(ge=0)] = 0.0
    load_15: Annotated[float, Field(ge=0)] = 0.0
    agent_rss: Annotated[int, Field(ge=0)] = 0
    agent_cpu_percent: Annotated[float, Field(ge=0)] = 0.0


class AgentOut(_Out):
    id: str
    name: str
    hostname: str
    status: AgentStatus
    cpu_percent: float
    memory_percent: float
    memory_total: int
    memory_used: int
    disk_percent: float
    load_1: float
    running_sessions: int
    last_seen: datetime | None
    version: str
    created_at: datetime


class CreateEnrollmentTokenRequest(_Model):
    note: Annotated[str, Field(max_length=200), Text] = ""
    expires_in_seconds: Annotated[int, Field(ge=60, le=365 * 24 * 3600)] = 7 * 24 * 3600
    single_use: bool = False


class EnrollmentTokenOut(_Out):
    id: str
    note: str
    created_at: datetime
    expires_at: datetime
    single_use: bool
    use_count: int
    revoked: bool


class EnrollmentTokenCreated(EnrollmentTokenOut):
    token: str
    """Shown once: the server keeps only its hash."""
    agent_command: str
    """A ready-to-paste command line that enrols a node with this token."""


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------


class CreateSessionRequest(_Model):
    agent_id: Annotated[str | None, Field(pattern=ID_PATTERN)] = None


class SessionOut(_Out):
    id: str
    agent_id: str
    agent_name: str
    owner_id: str
    owner_username: str
    status: SessionStatus
    status_reason: str | None
    url: str | None
    password: str | None
    """The IDE's password: only its owner and admins ever receive it."""
    remote_port: int | None
    created_at: datetime
    updated_at: datetime
    deadline_at: datetime | None
    """When a session in a transient state fails if it has not moved on."""


class ForceFailRequest(_Model):
    reason: Annotated[str, Field(min_length=1, max_length=500), Text] = "forced to FAILED by an admin"


# --------------------------------------------------------------------------------------------
# Live events (server-sent events at /api/events)
# --------------------------------------------------------------------------------------------


class AgentEvent(_Out):
    type: Literal["agent"] = "agent"
    agent: AgentOut


class SessionEvent(_Out):
    type: Literal["session"] = "session"
    session: SessionOut


Event = Annotated[AgentEvent | SessionEvent, Field(discriminator="type")]


# --------------------------------------------------------------------------------------------
# The agent's side of the wire (/api/agent/*)
# --------------------------------------------------------------------------------------------


class FrpSettings(_Out):
    """Everything an agent needs to open tunnels: handed out by the server, never configured on
    the node."""

    server_addr: str
    server_port: int
    token: str | None = None
    public_host: str
    """The host name or address in session links."""
    subdomain_host: str | None = None
    """When set, sessions get `http` proxies at <subdomain>.<subdomain_host>:<vhost_http_port>."""
    vhost_http_port: int = 80
    protocol: Literal["tcp", "http"] = "tcp"


class AgentSettings(_Out):
    heartbeat_interval: float
    poll_timeout: float
    frp: FrpSettings


class AgentRegisterRequest(_Model):
    enrollment_token: Annotated[str, Field(min_length=8, max_length=200), Text]
    node_key: Annotated[str, Field(min_length=16, max_length=128), Text]
    """A random key the node keeps in its runtime dir: registering again with it keeps the
    agent's identity."""
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    hostname: Annotated[str, Field(min_length=1, max_length=255), Text]
    version: Annotated[str, Field(max_length=64), Text] = ""


class AgentRegisterResponse(_Out):
    agent_id: str
    credential: str
    """The agent's own secret; the server keeps only its hash."""
    settings: AgentSettings


class RunningSession(_Model):
    session_id: Annotated[str, Field(pattern=ID_PATTERN)]
    local_port: Annotated[int, Field(ge=1, le=65535)]
    healthy: bool
    exit_status: int | None = None
    """Set when the IDE has exited (healthy is then false): reported once, then dropped."""


class HeartbeatRequest(_Model):
    metrics: Metrics
    sessions: Annotated[list[RunningSession], Field(max_length=1000)] = []
    version: Annotated[str, Field(max_length=64), Text] = ""


class HeartbeatResponse(_Out):
    settings: AgentSettings
    stop_sessions: list[str] = []
    """Sessions the node runs that the server wants gone (stopped, failed or unknown)."""


class StartCodeServerPayload(_Out):
    session_id: str
    password: str
    remote_port: int
    subdomain: str | None = None


class StopCodeServerPayload(_Out):
    session_id: str


class Task(_Out):
    id: str
    kind: TaskKind
    session_id: str
    payload: dict[str, object]
    delivery: int
    """How many times this task has been handed out: > 1 means an earlier lease was not
    acknowledged, so the agent must treat it as possibly already seen."""


class PollResponse(_Out):
    tasks: list[Task]
    heartbeat: HeartbeatResponse | None = None
    """The heartbeat's answer, when the poll carried one."""


class TaskResult(_Model):
    ok: bool
    error: Annotated[str | None, Field(max_length=8000), Text] = None
    local_port: Annotated[int | None, Field(ge=1, le=65535)] = None


class AuditEventOut(_Out):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str


class ErrorOut(_Out):
    detail: str
