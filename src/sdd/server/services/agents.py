"""Agents: enrollment, registration, credentials, heartbeats and the reconciliation of what a node
reports running with what the server wants running."""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from sdd.protocol import (
    LIVE_SESSION_STATUSES,
    AgentRegisterRequest,
    AgentRegisterResponse,
    CreateEnrollmentTokenRequest,
    EnrollmentTokenCreated,
    EnrollmentTokenOut,
    HeartbeatRequest,
    HeartbeatResponse,
    PollResponse,
    SessionStatus,
)
from sdd.server.models import Agent, AuditEvent, EnrollmentToken, Session, Task, User, new_id
from sdd.server.services import queue
from sdd.server.services import sessions as session_service
from sdd.server.services.context import AgentIdentity, ServerContext
from sdd.server.services.errors import Forbidden, NotFound, Unauthorized
from sdd.server.services.security import (
    hash_secret,
    new_agent_credential,
    new_enrollment_token,
    secret_matches,
)

log = logging.getLogger(__name__)

LIVE = [s.value for s in LIVE_SESSION_STATUSES]


def token_out(token: EnrollmentToken) -> EnrollmentTokenOut:
    return EnrollmentTokenOut(
        id=token.id,
        note=token.note,
        created_at=token.created_at,
        expires_at=token.expires_at,
        single_use=token.single_use,
        use_count=token.use_count,
        revoked=token.revoked_at is not None,
    )


async def create_enrollment_token(
    ctx: ServerContext, admin: User, request: CreateEnrollmentTokenRequest, server_url: str
) -> EnrollmentTokenCreated:
    secret = new_enrollment_token()
    now = datetime.now(UTC)
    async with ctx.db.write() as db:
        token = EnrollmentToken(
            id=new_id(),
            token_hash=hash_secret(secret),
            note=request.note,
            created_by=admin.id,
            created_at=now,
            expires_at=now + timedelta(seconds=request.expires_in_seconds),
            single_use=request.single_use,
            use_count=0,
        )
        db.add(token)
        db.add(AuditEvent(actor=admin.username, action="enrollment_token.create", target=token.id))
    return EnrollmentTokenCreated(
        **token_out(token).model_dump(),
        token=secret,
        agent_command=f"sdd agent --server {server_url} --enrollment-token {secret}",
    )


async def list_enrollment_tokens(ctx: ServerContext) -> list[EnrollmentTokenOut]:
    async with ctx.db.read() as db:
        tokens = (await db.execute(select(EnrollmentToken).order_by(EnrollmentToken.created_at))).scalars()
        return [token_out(t) for t in tokens]


async def revoke_enrollment_token(ctx: ServerContext, admin: User, token_id: str) -> EnrollmentTokenOut:
    async with ctx.db.write() as db:
        token = await db.get(EnrollmentToken, token_id)
        if token is None:
            raise NotFound(f"enrollment token {token_id!r} not found")
        if token.revoked_at is None:
            token.revoked_at = datetime.now(UTC)
            db.add(AuditEvent(actor=admin.username, action="enrollment_token.revoke", target=token.id))
        return token_out(token)


async def register(ctx: ServerContext, request: AgentRegisterRequest) -> AgentRegisterResponse:
    credential = new_agent_credential()
    now = datetime.now(UTC)
    async with ctx.db.write() as db:
        token = await db.scalar(
            select(EnrollmentToken).where(EnrollmentToken.token_hash == hash_secret(request.enrollment_token))
        )
        # One message for every kind of bad token: a caller learns nothing about which exist.
        refused = Unauthorized("enrollment token is invalid, expired or revoked; ask an admin for a new one")
        if token is None or token.revoked_at is not None or token.expires_at <= now:
            raise refused
        node_key_hash = hash_secret(request.node_key)
        agent = await db.scalar(select(Agent).where(Agent.node_key_hash == node_key_hash))
        if agent is not None and agent.revoked_at is not None:
            raise Forbidden("this node's agent has been revoked by an admin; it cannot register again")
        if token.single_use and token.use_count > 0 and agent is None:
            raise refused
        if agent is None:
            agent = Agent(
                id=new_id(), node_key_hash=node_key_hash, metrics={}, running_sessions=0, created_at=now
            )
            db.add(agent)
            token.use_count += 1
            action = "agent.register"
        else:
            # The same node again (say its credential file was lost): same identity, new credential.
            action = "agent.reregister"
        agent.name = request.name
        agent.hostname = request.hostname
        agent.version = request.version
        agent.credential_hash = hash_secret(credential)
        agent.enrollment_token_id = token.id
        db.add(AuditEvent(actor=f"agent:{request.name}", action=action, target=agent.id))
        forgotten = ctx.forgotten.get(agent.id, 0)
    await ctx.forget_agent(agent.id)  # on every replica (a cached credential is stale); +1 here
    _cache_identity(ctx, agent.id, agent.name, agent.credential_hash, False, forgotten + 1)
    if action == "agent.register":
        # A new agent has no task: its first polls need not look (a task queued for it wakes it).
        ctx.broker.mark_idle(agent.id, 0)
    log.info("agent %s (%s) registered as %s", request.name, request.hostname, agent.id)
    return AgentRegisterResponse(agent_id=agent.id, credential=credential, settings=ctx.agent_settings())


# Revocation and new credentials clear the cache at once (a control message), so entries may live
# long; each lives a random while, so a fleet that enrolled together does not expire together and
# send a wave of reads.
AUTH_CACHE_SECONDS = (300.0, 600.0)


async def _load_identity(ctx: ServerContext, agent_id: str) -> AgentIdentity | None:
    forgotten = ctx.forgotten.get(agent_id, 0)
    async with ctx.db.read() as db:
        row = (
            await db.execute(
                select(Agent.id, Agent.name, Agent.credential_hash, Agent.revoked_at).where(
                    Agent.id == agent_id
                )
            )
        ).one_or_none()
    if row is None:
        ctx.agent_identities.pop(agent_id, None)
        return None
    return _cache_identity(ctx, row.id, row.name, row.credential_hash, row.revoked_at is not None, forgotten)


def _cache_identity(
    ctx: ServerContext, agent_id: str, name: str, credential_hash: str, revoked: bool, forgotten: int
) -> AgentIdentity:
    """Cache what was read, unless the agent was forgotten (revoked, new credential) since the read
    began (`forgotten` is the count expected now): a stale identity must not outlive its forget."""
    expires_at = time.monotonic() + random.uniform(*AUTH_CACHE_SECONDS)  # noqa: S311 (spread, not a secret)
    identity = AgentIdentity(agent_id, name, credential_hash, revoked, expires_at)
    if ctx.forgotten.get(agent_id, 0) == forgotten:
        ctx.agent_identities[agent_id] = identity
    return identity


async def warm_caches(ctx: ServerContext) -> int:
    """At start-up: every agent's identity, and which agents have no open task, in two queries.

    After a restart the whole fleet reconnects within seconds; without this, each agent's first
    poll would read the database twice (its credential, its queue), thousands of reads queueing for
    the connection pool while the agents wait. Returns the number of agents cached."""
    forgotten = dict(ctx.forgotten)
    async with ctx.db.read() as db:
        rows = (await db.execute(select(Agent.id, Agent.name, Agent.credential_hash, Agent.revoked_at))).all()
        wakes = {row.id: ctx.broker.wakes(row.id) for row in rows}
        open_tasks = select(Task.agent_id).where(Task.state.in_(queue.OPEN_STATES)).distinct()
        busy = set((await db.scalars(open_tasks)).all())
    for row in rows:
        revoked = row.revoked_at is not None
        _cache_identity(ctx, row.id, row.name, row.credential_hash, revoked, forgotten.get(row.id, 0))
        if row.id not in busy:
            # A task queued since `wakes` was read bumped the counter: then this mark is refused.
            ctx.broker.mark_idle(row.id, wakes[row.id])
    return len(rows)


def _parse_agent_header(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.startswith("Bearer "):
        return None
    agent_id, _, credential = authorization.removeprefix("Bearer ").partition(":")
    if not agent_id or not credential or len(agent_id) > 64:
        return None
    return agent_id, credential


def cached_identity(ctx: ServerContext, authorization: str | None) -> AgentIdentity | None:
    """The agent behind the header, from the cache alone: a fresh cached identity whose credential
    matches and which is not revoked. None means "ask `authenticate`" (it reads the database, or
    refuses), never "refused"."""
    parsed = _parse_agent_header(authorization)
    if parsed is None:
        return None
    identity = ctx.agent_identities.get(parsed[0])
    if (
        identity is None
        or identity.revoked
        or time.monotonic() >= identity.expires_at
        or not secret_matches(parsed[1], identity.credential_hash)
    ):
        return None
    return identity


async def authenticate(ctx: ServerContext, authorization: str | None) -> AgentIdentity:
    """The agent behind an `Authorization: Bearer <agent id>:<credential>` header.

    Identities are cached for a short while, so heartbeats and polls do not read the database to
    authenticate; a credential that does not match the cached one is checked against the database
    before it is refused (it may have just been rotated on another replica)."""
    cached = cached_identity(ctx, authorization)
    if cached is not None:
        return cached
    refused = Unauthorized("agent credential missing or invalid; register again with an enrollment token")
    parsed = _parse_agent_header(authorization)
    if parsed is None:
        raise refused
    agent_id, credential = parsed
    identity = ctx.agent_identities.get(agent_id)
    fresh = identity is not None and time.monotonic() < identity.expires_at
    if identity is None or not fresh or not secret_matches(credential, identity.credential_hash):
        identity = await _load_identity(ctx, agent_id)
    if identity is None or not secret_matches(credential, identity.credential_hash):
        raise refused
    if identity.revoked:
        raise Forbidden("this agent has been revoked by an admin")
    return identity


RECONCILE_EVERY_BEATS = 6


async def heartbeat(ctx: ServerContext, agent: AgentIdentity, beat: HeartbeatRequest) -> HeartbeatResponse:
    ctx.metrics.heartbeats.inc()
    previous = ctx.presence.beats.get(agent.id)
    reported = frozenset(s.session_id for s in beat.sessions)
    current = ctx.presence.record(agent.id, beat.metrics, len(beat.sessions), beat.version, reported)
    # Comparing with the database costs a query. A node running nothing has nothing to stop, and
    # the ACTIVE sessions it no longer runs are found by the reconciler's sweep (one query for all
    # agents): an idle agent's beat touches no database. A node running sessions is compared when
    # what it runs changed, and every few beats in any case.
    changed = previous is None or previous.sessions != reported
    # An agent back from being offline is compared at once: its LOST sessions may be ACTIVE again.
    returning = previous is not None and (current.last_seen - previous.last_seen).total_seconds() > (
        ctx.settings.offline_timeout
    )
    due = returning or previous is None or previous.beats_since_reconcile + 1 >= RECONCILE_EVERY_BEATS
    if reported and (changed or due):
        stop, lost = await _reconcile(ctx, agent, beat)
    else:
        current.beats_since_reconcile = 0 if previous is None else previous.beats_since_reconcile + 1
        stop, lost = [], []
    for session_id in lost:
        await session_service.fail_session(
            ctx,
            session_id,
            f"the IDE is no longer running on agent {agent.name} (it exited, or the node restarted)",
            actor=f"agent:{agent.name}",
            only_if={SessionStatus.ACTIVE},
            of_agent=agent.id,
        )
    for running in beat.sessions:
        if not running.healthy and running.exit_status is not None:
            # The IDE died under a running session. Policy: report, do not restart (a restarted IDE
            # would lose the person's unsaved state silently); they start a new session.
            await session_service.fail_session(
                ctx,
                running.session_id,
                f"the IDE exited with status {running.exit_status} on agent {agent.name}; "
                "its log is in the agent's runtime dir (sessions/<id>/ide.log)",
                actor=f"agent:{agent.name}",
                only_if={SessionStatus.ACTIVE},
                of_agent=agent.id,
            )
    # The UI hears of this beat at the next presence flush (every SDD_PRESENCE_FLUSH_INTERVAL), which
    # publishes the fleet's beats in batches: a reconnecting fleet's first beats read nothing here.
    return HeartbeatResponse(settings=ctx.agent_settings(), stop_sessions=stop)


async def heartbeat_and_poll(
    ctx: ServerContext, agent: AgentIdentity, beat: HeartbeatRequest | None, wait: float
) -> PollResponse:
    """A poll that carries the agent's heartbeat (see the poll endpoint)."""
    reply = await heartbeat(ctx, agent, beat) if beat is not None else None
    if reply is not None and reply.stop_sessions:
        wait = 0.0  # the node should hear about sessions to stop now, not when a task comes
    tasks = await queue.poll(ctx, agent.id, min(wait, ctx.settings.poll_timeout))
    return PollResponse(tasks=tasks, heartbeat=reply)


async def _reconcile(
    ctx: ServerContext, agent: AgentIdentity, beat: HeartbeatRequest
) -> tuple[list[str], list[str]]:
    """Compare what the node runs with what the server wants.

    Returns (sessions the node must stop, ACTIVE sessions the node no longer runs)."""
    reported = {s.session_id for s in beat.sessions}
    async with ctx.db.read() as db:
        rows = (
            await db.execute(
                select(Session.id, Session.status, Session.updated_at).where(
                    Session.agent_id == agent.id, Session.status.in_(LIVE)
                )
            )
        ).all()
    stop = sorted(reported - {row.id for row in rows})
    # A session that turned ACTIVE after this beat was sent is not missing: give it one interval.
    settle = datetime.now(UTC) - timedelta(seconds=ctx.settings.heartbeat_interval)
    lost = sorted(
        row.id
        for row in rows
        if row.status == SessionStatus.ACTIVE.value and row.id not in reported and row.updated_at < settle
    )
    back = [row.id for row in rows if row.status == SessionStatus.LOST.value and row.id in reported]
    for session_id in back:
        await session_service.mark_back(ctx, session_id, agent.id)
    return stop, lost


async def revoke_agent(ctx: ServerContext, admin: User, agent_id: str) -> None:
    """Revoke an agent: its credential stops working on every replica at once, frps turns its frpc
    away, and its live sessions fail with the reason."""
    async with ctx.db.write() as db:
        agent = await db.get(Agent, agent_id, with_for_update=True)
        if agent is None:
            raise NotFound(f"agent {agent_id!r} not found")
        if agent.revoked_at is not None:
            return
        agent.revoked_at = datetime.now(UTC)
        db.add(AuditEvent(actor=admin.username, action="agent.revoke", target=agent.id, detail=agent.name))
        live = (
            (
                await db.execute(
                    select(Session.id).where(Session.agent_id == agent.id, Session.status.in_(LIVE))
                )
            )
            .scalars()
            .all()
        )
        name = agent.name
    await ctx.forget_agent(agent_id)
    ctx.presence.forget(agent_id)
    for session_id in live:
        await session_service.fail_session(
            ctx, session_id, f"agent {name} was revoked by {admin.username}", actor=admin.username
        )


async def sweep_missing_sessions(ctx: ServerContext) -> list[str]:
    """Fail ACTIVE sessions that their agent's latest heartbeat (to this replica) no longer lists:
    one query for the whole fleet, instead of one per heartbeat."""
    async with ctx.db.read() as db:
        rows = (
            await db.execute(
                select(Session.id, Session.agent_id, Session.updated_at, Agent.name)
                .join(Agent, Agent.id == Session.agent_id)
                .where(Session.status.in_([SessionStatus.ACTIVE.value, SessionStatus.LOST.value]))
            )
        ).all()
    grace = timedelta(seconds=ctx.settings.heartbeat_interval)
    failed = []
    for row in rows:
        beat = ctx.presence.beats.get(row.agent_id)
        # Only a beat sent well after the session turned ACTIVE can say it is missing.
        if beat is None or row.id in beat.sessions or beat.last_seen < row.updated_at + grace:
            continue
        done = await session_service.fail_session(
            ctx,
            row.id,
            f"the IDE is no longer running on agent {row.name} (it exited, or the node restarted)",
            actor=f"agent:{row.name}",
            only_if={SessionStatus.ACTIVE, SessionStatus.LOST},
            of_agent=row.agent_id,
        )
        if done is not None:
            failed.append(row.id)
    return failed


async def mark_sessions_of_offline_agents(ctx: ServerContext) -> list[str]:
    """ACTIVE sessions whose agent went OFFLINE become LOST (with the reason): the link will not
    work until the node is back, and the person should see why."""
    cutoff = datetime.now(UTC) - timedelta(seconds=ctx.settings.offline_timeout)
    async with ctx.db.read() as db:
        rows = (
            await db.execute(
                select(Session.id, Agent.id.label("agent_id"), Agent.name, Agent.last_seen)
                .join(Agent, Agent.id == Session.agent_id)
                .where(Session.status == SessionStatus.ACTIVE.value)
            )
        ).all()
    lost = []
    for row in rows:
        beat = ctx.presence.beats.get(row.agent_id)
        last_seen = max(filter(None, (row.last_seen, beat.last_seen if beat else None)), default=None)
        if last_seen is not None and last_seen >= cutoff:
            continue
        since = f"since {last_seen:%Y-%m-%d %H:%M:%S} UTC" if last_seen else "yet"
        changed = await session_service.mark_lost(
            ctx,
            row.id,
            f"agent {row.name} is offline (no heartbeat {since}); the session comes back when the node does",
        )
        if changed:
            lost.append(row.id)
    return lost
