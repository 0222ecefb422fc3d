"""Database rows as the API shows them (the shapes live in sdd.protocol)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sdd.protocol import LIVE_SESSION_STATUSES, AgentOut, SessionOut, SessionStatus
from sdd.server.models import Agent, Session, User
from sdd.server.services.presence import PresenceTable


def agent_out(agent: Agent, presence: PresenceTable) -> AgentOut:
    last_seen, metrics, running, version = presence.newest(agent)
    return AgentOut(
        id=agent.id,
        name=agent.name,
        hostname=agent.hostname,
        status=presence.status(last_seen, agent.revoked_at is not None),
        cpu_percent=metrics.cpu_percent,
        memory_percent=metrics.memory_percent,
        memory_total=metrics.memory_total,
        memory_used=metrics.memory_used,
        disk_percent=metrics.disk_percent,
        load_1=metrics.load_1,
        running_sessions=running,
        last_seen=last_seen,
        version=version,
        created_at=agent.created_at,
    )


def session_out(
    session: Session, agent_name: str, owner_username: str, *, reveal_password: bool
) -> SessionOut:
    live = SessionStatus(session.status) in LIVE_SESSION_STATUSES
    return SessionOut(
        id=session.id,
        agent_id=session.agent_id,
        agent_name=agent_name,
        owner_id=session.owner_id,
        owner_username=owner_username,
        status=SessionStatus(session.status),
        status_reason=session.status_reason,
        url=session.url,
        password=session.password if reveal_password and live else None,
        remote_port=session.remote_port if live else None,
        created_at=session.created_at,
        updated_at=session.updated_at,
        deadline_at=session.deadline_at,
    )


async def session_views(db: AsyncSession, sessions: Sequence[Session]) -> list[SessionOut]:
    """Sessions with their agent's and owner's names, for their owner (or an admin)."""
    agent_ids = {s.agent_id for s in sessions}
    owner_ids = {s.owner_id for s in sessions}
    agent_rows = await db.execute(select(Agent.id, Agent.name).where(Agent.id.in_(agent_ids)))
    owner_rows = await db.execute(select(User.id, User.username).where(User.id.in_(owner_ids)))
    agents = {agent_id: name for agent_id, name in agent_rows}
    owners = {user_id: name for user_id, name in owner_rows}
    return [
        session_out(s, agents.get(s.agent_id, "?"), owners.get(s.owner_id, "?"), reveal_password=True)
        for s in sessions
    ]


async def live_session_counts(db: AsyncSession) -> dict[str, int]:
    rows = await db.execute(
        select(Session.agent_id, func.count())
        .where(Session.status.in_([s.value for s in LIVE_SESSION_STATUSES]))
        .group_by(Session.agent_id)
    )
    return {agent_id: count for agent_id, count in rows}
