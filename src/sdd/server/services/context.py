"""The server's long-lived parts, made once per process and handed to every request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from sdd.protocol import AgentEvent, AgentOut, AgentSettings, FrpSettings, SessionEvent, SessionOut
from sdd.server.db import Database
from sdd.server.models import Agent
from sdd.server.services.broker import LocalBroker
from sdd.server.services.lifecycle import Deadlines
from sdd.server.services.metrics import ServerMetrics
from sdd.server.services.presence import PresenceTable
from sdd.server.services.ratelimit import LoginThrottle
from sdd.server.services.security import TokenSigner
from sdd.server.settings import Settings

AUDIENCE_EVERYONE = "*"


def event_message(audience: str, events: Sequence[BaseModel]) -> str:
    """A broker message: who may hear it (a user id, or everyone), a newline, then the events as
    ready-to-send server-sent-event frames. The event stream forwards the frames as they are:
    at 10,000 agents a browser is sent ~2,000 agent events a second, too many to parse and
    re-serialise one by one."""
    frames = "".join(f"data: {event.model_dump_json()}\n\n" for event in events)
    return f"{audience}\n{frames}"


FORGET_AGENT = "forget-agent"


@dataclass(frozen=True)
class AgentIdentity:
    """Who an authenticated agent is: what its requests need, cheap to keep in memory."""

    id: str
    name: str
    credential_hash: str
    revoked: bool
    expires_at: float
    """time.monotonic() after which the database is asked again."""


@dataclass
class ServerContext:
    settings: Settings
    db: Database
    broker: LocalBroker
    signer: TokenSigner
    presence: PresenceTable = field(init=False)
    shutting_down: asyncio.Event = field(init=False)
    agent_identities: dict[str, AgentIdentity] = field(default_factory=dict)
    """Authenticated agents, cached briefly (services/agents.py)."""
    forgotten: dict[str, int] = field(default_factory=dict)
    """How many times each agent's identity was forgotten: a cache fill whose database read began
    before a forget must not land after it (see agents._cache_identity)."""
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    _agent_settings: AgentSettings | None = field(default=None, init=False, repr=False)
    agent_rows: dict[str, Agent] = field(default_factory=dict)
    """Agents' rows as of their first heartbeat here, for building live events without a read."""
    deadlines: Deadlines = field(init=False)

    def __post_init__(self) -> None:
        # Set when the server begins to stop: held long-polls and event streams return at once
        # instead of holding the shutdown up until they time out.
        self.shutting_down = asyncio.Event()
        self.presence = PresenceTable(offline_timeout=self.settings.offline_timeout)
        self.broker.on_control(self._on_control)
        self.deadlines = Deadlines(
            pending=self.settings.pending_timeout,
            starting=self.settings.start_timeout,
            stopping=self.settings.stop_timeout,
            lost=self.settings.lost_timeout,
        )

    def _on_control(self, message: str) -> None:
        kind, _, value = message.partition(":")
        if kind == FORGET_AGENT:
            self.forgotten[value] = self.forgotten.get(value, 0) + 1
            self.agent_identities.pop(value, None)
            self.agent_rows.pop(value, None)

    async def forget_agent(self, agent_id: str) -> None:
        """Drop the cached identity of an agent on every replica (after a revoke or new credential)."""
        await self.broker.publish_control(f"{FORGET_AGENT}:{agent_id}")

    def begin_shutdown(self) -> None:
        self.shutting_down.set()
        self.broker.wake_all()

    def agent_settings(self) -> AgentSettings:
        """What every heartbeat hands back: built once, since settings do not change while running."""
        if self._agent_settings is None:
            self._agent_settings = self._build_agent_settings()
        return self._agent_settings

    def _build_agent_settings(self) -> AgentSettings:
        s = self.settings
        return AgentSettings(
            heartbeat_interval=s.heartbeat_interval,
            poll_timeout=s.poll_timeout,
            frp=FrpSettings(
                server_addr=s.frp_server_addr,
                server_port=s.frp_server_port,
                token=s.frp_token.get_secret_value() if s.frp_token else None,
                public_host=s.frp_public_host,
                subdomain_host=s.frp_subdomain_host,
                vhost_http_port=s.frp_vhost_http_port,
                protocol="http" if s.frp_subdomain_host else "tcp",
            ),
        )

    async def publish_session(self, session: SessionOut) -> None:
        """Only the session's owner (and admins) hear of it: it carries the IDE password."""
        await self.broker.publish(event_message(session.owner_id, [SessionEvent(session=session)]))

    async def publish_agents(self, agents: list[AgentOut]) -> None:
        """Agents' live metrics, for everyone: one broker message for the lot."""
        if agents:
            await self.broker.publish(event_message(AUDIENCE_EVERYONE, [AgentEvent(agent=a) for a in agents]))
