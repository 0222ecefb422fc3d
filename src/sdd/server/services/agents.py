"""Agents: enrollment, registration, credentials, heartbeats and the reconciliation of what a node
reports running with what the server wants running."""

from __future__ import annotations

import logging
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
    SessionStatus,
)
from sdd.server.models import Agent, AuditEvent, EnrollmentToken, Session, User, new_id
from sdd.server.services import sessions as session_service
from sdd.server.services.context import ServerContext
from sdd.server.services.errors import Forbidden, NotFound, Unauthorized
from sdd.server.services.security import (
    hash_secret,
    new_agent_credential,
    new_enrollment_token,
    secret_matches,
)
from sdd.server.services.views import agent_out

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
    log.info("agent %s (%s) registered as %s", request.name, request.hostname, agent.id)
    return AgentRegisterResponse(agent_id=agent.id, credential=credential, settings=ctx.agent_settings())


async def authenticate(ctx: ServerContext, authorization: str | None) -> Agent:
    """The agent behind an `Authorization: Bearer <agent id>:<credential>` header."""
    refused = Unauthorized("agent credential missing or invalid; register again with an enrollment token")
    if not authorization or not authorization.startswith("Bearer "):
        raise refused
    agent_id, _, credential = authorization.removeprefix("Bearer ").partition(":")
    if not agent_id or not credential or len(agent_id) > 64:
        raise refused
    async with ctx.db.read() as db:
        agent = await db.get(Agent, agent_id)
    if agent is None or not secret_matches(credential, agent.credential_hash):
        raise refused
    if agent.revoked_at is not None:
        raise Forbidden("this agent has been revoked by an admin")
    return agent


async def heartbeat(ctx: ServerContext, agent: Agent, beat: HeartbeatRequest) -> HeartbeatResponse:
    first_beat = agent.id not in ctx.presence.beats
    ctx.presence.record(agent.id, beat.metrics, len(beat.sessions), beat.version)
    stop, lost = await _reconcile(ctx, agent, beat)
    for session_id in lost:
        await session_service.fail_session(
            ctx,
            session_id,
            f"the IDE is no longer running on agent {agent.name} (it exited, or the node restarted)",
            actor=f"agent:{agent.name}",
            only_if={SessionStatus.ACTIVE},
        )
    if first_beat:
        await ctx.publish_agent(agent_out(agent, ctx.presence))
    return HeartbeatResponse(settings=ctx.agent_settings(), stop_sessions=stop)


async def _reconcile(ctx: ServerContext, agent: Agent, beat: HeartbeatRequest) -> tuple[list[str], list[str]]:
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
    return stop, lost
