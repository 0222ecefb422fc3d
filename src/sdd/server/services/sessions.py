"""Sessions: create (schedule, allocate a tunnel port, queue the start), stop, fail, and the
outcomes agents report."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sdd.protocol import (
    LIVE_SESSION_STATUSES,
    AgentStatus,
    SessionOut,
    SessionStatus,
    StartCodeServerPayload,
    StopCodeServerPayload,
    TaskKind,
)
from sdd.server.models import Agent, AuditEvent, Session, Task, User, new_id
from sdd.server.services import queue
from sdd.server.services.context import ServerContext
from sdd.server.services.errors import Conflict, NotFound, TooManyRequests
from sdd.server.services.lifecycle import transition
from sdd.server.services.security import generate_password
from sdd.server.services.views import agent_out, live_session_counts, session_out

log = logging.getLogger(__name__)

S = SessionStatus
LIVE = [s.value for s in LIVE_SESSION_STATUSES]
PORT_ATTEMPTS = 20


def _now() -> datetime:
    return datetime.now(UTC)


async def _choose_agent(ctx: ServerContext, db: AsyncSession, agent_id: str | None) -> Agent:
    if agent_id is not None:
        agent = await db.get(Agent, agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id!r} not found; GET /api/agents lists the agents")
        status = agent_out(agent, ctx.presence).status
        if status is AgentStatus.REVOKED:
            raise Conflict(f"agent {agent.name} has been revoked; choose another agent")
        if status is not AgentStatus.ONLINE:
            raise Conflict(
                f"agent {agent.name} is OFFLINE (no heartbeat for over {ctx.settings.offline_timeout:g} s); "
                "start its `sdd agent` or choose another agent"
            )
        return agent
    agents = (await db.execute(select(Agent).where(Agent.revoked_at.is_(None)))).scalars().all()
    online = [a for a in agents if agent_out(a, ctx.presence).status is AgentStatus.ONLINE]
    if not online:
        raise Conflict(
            "no agent is online; enrol a node with an enrollment token (`sdd agent --server URL "
            "--enrollment-token TOKEN`) or start a stopped one"
        )
    counts = await live_session_counts(db)
    # Least loaded: fewest live sessions, then lowest CPU.
    return min(online, key=lambda a: (counts.get(a.id, 0), ctx.presence.newest(a)[1].cpu_percent, a.id))


async def _free_port(ctx: ServerContext, db: AsyncSession) -> int:
    used = set(
        (await db.execute(select(Session.remote_port).where(Session.status.in_(LIVE)))).scalars().all()
    )
    low, high = ctx.settings.remote_port_min, ctx.settings.remote_port_max
    free_count = high - low + 1 - len(used)
    if free_count <= 0:
        raise Conflict(
            f"every tunnel port in {low}-{high} is in use by a live session; stop a session or widen "
            "SDD_REMOTE_PORT_MIN/SDD_REMOTE_PORT_MAX"
        )
    # Random rather than lowest-free, so concurrent creators (other replicas) rarely collide;
    # the unique index settles the collisions that remain.
    while True:
        port = low + secrets.randbelow(high - low + 1)
        if port not in used:
            return port


async def create_session(ctx: ServerContext, user: User, agent_id: str | None) -> SessionOut:
    for _attempt in range(PORT_ATTEMPTS):
        try:
            async with ctx.db.write() as db:
                live = await db.scalar(
                    select(func.count()).where(Session.owner_id == user.id, Session.status.in_(LIVE))
                )
                if (live or 0) >= ctx.settings.max_sessions_per_user:
                    raise TooManyRequests(
                        f"you have {live} live sessions, the most allowed "
                        f"(SDD_MAX_SESSIONS_PER_USER={ctx.settings.max_sessions_per_user}); stop one first"
                    )
                agent = await _choose_agent(ctx, db, agent_id)
                now = _now()
                session = Session(
                    id=new_id(),
                    owner_id=user.id,
                    agent_id=agent.id,
                    status=S.PENDING.value,
                    remote_port=await _free_port(ctx, db),
                    password=generate_password(),
                    created_at=now,
                    updated_at=now,
                    deadline_at=now + timedelta(seconds=ctx.settings.pending_timeout),
                )
                if ctx.settings.frp_subdomain_host:
                    session.subdomain = f"sdd-{session.id}"
                db.add(session)
                await db.flush()
                payload = StartCodeServerPayload(
                    session_id=session.id,
                    password=session.password,
                    remote_port=session.remote_port or 0,
                    subdomain=session.subdomain,
                )
                queue.enqueue(db, agent.id, session.id, TaskKind.START_CODE_SERVER, payload.model_dump())
                db.add(
                    AuditEvent(
                        actor=user.username,
                        action="session.start",
                        target=session.id,
                        detail=f"agent={agent.name}",
                    )
                )
                view = session_out(session, agent.name, user.username, reveal_password=True)
        except IntegrityError:
            log.info("tunnel port collision while creating a session; trying another port")
            continue
        await ctx.broker.notify_agent(agent.id)
        await ctx.publish_session(view)
        return view
    raise Conflict("could not allocate a free tunnel port after several attempts; try again")


async def load_visible(db: AsyncSession, user: User, session_id: str, *, for_update: bool = False) -> Session:
    """A session its owner or an admin may see; anyone else gets the same 404 as for a missing one,
    so ids of other people's sessions cannot be probed."""
    session = await db.get(Session, session_id, with_for_update=for_update)
    if session is None or (session.owner_id != user.id and user.role != "admin"):
        raise NotFound(f"session {session_id!r} not found")
    return session


async def _view(db: AsyncSession, session: Session) -> SessionOut:
    agent_name = await db.scalar(select(Agent.name).where(Agent.id == session.agent_id)) or "?"
    owner = await db.scalar(select(User.username).where(User.id == session.owner_id)) or "?"
    return session_out(session, agent_name, owner, reveal_password=True)


async def stop_session(ctx: ServerContext, user: User, session_id: str) -> SessionOut:
    notify: str | None = None
    async with ctx.db.write() as db:
        session = await load_visible(db, user, session_id, for_update=True)
        status = S(session.status)
        now = _now()
        if status.is_final:
            raise Conflict(f"session {session_id} is already {status.value}")
        if status is S.PENDING and await queue.cancel_unleased_start(db, session.id):
            # The agent never saw it: nothing runs, so nothing needs stopping.
            transition(
                session, S.STOPPED, now=now, deadlines=ctx.deadlines, reason="stopped before it started"
            )
        elif status is not S.STOPPING:
            transition(session, S.STOPPING, now=now, deadlines=ctx.deadlines)
            payload = StopCodeServerPayload(session_id=session.id)
            queue.enqueue(db, session.agent_id, session.id, TaskKind.STOP_CODE_SERVER, payload.model_dump())
            notify = session.agent_id
        db.add(AuditEvent(actor=user.username, action="session.stop", target=session.id))
        view = await _view(db, session)
    if notify:
        await ctx.broker.notify_agent(notify)
    await ctx.publish_session(view)
    return view


async def fail_session(
    ctx: ServerContext,
    session_id: str,
    reason: str,
    *,
    actor: str,
    only_if: set[SessionStatus] | None = None,
    of_agent: str | None = None,
) -> SessionOut | None:
    """Move a live session to FAILED. Returns None if it was already final (or not in only_if, or
    not on agent `of_agent` when that is given: an agent's word counts only for its own sessions)."""
    async with ctx.db.write() as db:
        session = await db.get(Session, session_id, with_for_update=True)
        if session is None or (of_agent is not None and session.agent_id != of_agent):
            if of_agent is not None:
                return None
            raise NotFound(f"session {session_id!r} not found")
        status = S(session.status)
        if status.is_final or (only_if is not None and status not in only_if):
            return None
        transition(session, S.FAILED, now=_now(), deadlines=ctx.deadlines, reason=reason)
        await queue.cancel_open_tasks(db, session.id)
        db.add(AuditEvent(actor=actor, action="session.fail", target=session.id, detail=reason[:500]))
        view = await _view(db, session)
    await ctx.publish_session(view)
    return view


async def on_task_acknowledged(ctx: ServerContext, db: AsyncSession, task: Task) -> Session | None:
    """The agent has the start task: the session is STARTING."""
    if task.kind != TaskKind.START_CODE_SERVER.value:
        return None
    session = await db.get(Session, task.session_id, with_for_update=True)
    if session is None or session.status != S.PENDING.value:
        return None
    transition(session, S.STARTING, now=_now(), deadlines=ctx.deadlines)
    return session


def session_url(ctx: ServerContext, session: Session) -> str:
    s = ctx.settings
    if session.subdomain and s.frp_subdomain_host:
        port = "" if s.frp_vhost_http_port == 80 else f":{s.frp_vhost_http_port}"
        return f"http://{session.subdomain}.{s.frp_subdomain_host}{port}/"
    return f"http://{s.frp_public_host}:{session.remote_port}/"


async def on_task_result(
    ctx: ServerContext, db: AsyncSession, task: Task, ok: bool, error: str | None, local_port: int | None
) -> Session | None:
    """Apply a task's outcome to its session. Returns the session if it changed."""
    session = await db.get(Session, task.session_id, with_for_update=True)
    if session is None:
        return None
    status = S(session.status)
    now = _now()
    if task.kind == TaskKind.START_CODE_SERVER.value:
        if status not in (S.PENDING, S.STARTING):
            # Stopped or failed meanwhile: the stop task or the heartbeat reconciliation cleans up.
            return None
        if ok:
            if status is S.PENDING:
                transition(session, S.STARTING, now=now, deadlines=ctx.deadlines)
            session.local_port = local_port
            session.url = session_url(ctx, session)
            transition(session, S.ACTIVE, now=now, deadlines=ctx.deadlines)
            ctx.metrics.observe_start(session.created_at, now)
        else:
            transition(
                session,
                S.FAILED,
                now=now,
                deadlines=ctx.deadlines,
                reason=f"the IDE failed to start: {error or 'no reason given'}",
            )
        return session
    if status is not S.STOPPING:
        return None
    if ok:
        transition(session, S.STOPPED, now=now, deadlines=ctx.deadlines)
    else:
        transition(
            session,
            S.FAILED,
            now=now,
            deadlines=ctx.deadlines,
            reason=f"stopping failed on the node: {error or 'no reason given'}",
        )
    return session


async def publish(ctx: ServerContext, session_ids: list[str]) -> None:
    if not session_ids:
        return
    async with ctx.db.read() as db:
        for session_id in session_ids:
            session = await db.get(Session, session_id)
            if session is not None:
                await ctx.publish_session(await _view(db, session))


async def mark_lost(ctx: ServerContext, session_id: str, reason: str) -> bool:
    async with ctx.db.write() as db:
        session = await db.get(Session, session_id, with_for_update=True)
        if session is None or session.status != S.ACTIVE.value:
            return False
        transition(session, S.LOST, now=_now(), deadlines=ctx.deadlines, reason=reason)
        view = await _view(db, session)
    await ctx.publish_session(view)
    return True


async def mark_back(ctx: ServerContext, session_id: str, agent_id: str) -> bool:
    """The agent is back and still runs the session: ACTIVE again."""
    async with ctx.db.write() as db:
        session = await db.get(Session, session_id, with_for_update=True)
        if session is None or session.status != S.LOST.value or session.agent_id != agent_id:
            return False
        transition(session, S.ACTIVE, now=_now(), deadlines=ctx.deadlines)
        session.url = session_url(ctx, session)
        view = await _view(db, session)
    await ctx.publish_session(view)
    return True
