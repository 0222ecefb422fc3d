"""Enforces every lifecycle deadline, so no session stays PENDING, STARTING or STOPPING forever,
whatever crashed in between."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from sqlalchemy import select

from sdd.protocol import SessionStatus
from sdd.server.models import Agent, Session
from sdd.server.services import agents as agent_service
from sdd.server.services import queue
from sdd.server.services import sessions as session_service
from sdd.server.services.context import ServerContext

log = logging.getLogger(__name__)

TRANSIENT = [
    SessionStatus.PENDING.value,
    SessionStatus.STARTING.value,
    SessionStatus.STOPPING.value,
    SessionStatus.LOST.value,
]


async def enforce_deadlines(ctx: ServerContext) -> list[str]:
    """Fail every session whose deadline has passed. Returns their ids."""
    now = datetime.now(UTC)
    async with ctx.db.read() as db:
        rows = (
            await db.execute(
                select(Session.id, Session.status, Agent.name)
                .join(Agent, Agent.id == Session.agent_id)
                .where(Session.status.in_(TRANSIENT), Session.deadline_at < now)
            )
        ).all()
    failed = []
    for row in rows:
        status = SessionStatus(row.status)
        reason = ctx.deadlines.expiry_reason(status, row.name)
        # only_if: the session may have moved on since the read; then its deadline is not ours.
        if await session_service.fail_session(ctx, row.id, reason, actor="reconciler", only_if={status}):
            log.warning("session %s failed: %s", row.id, reason)
            failed.append(row.id)
    return failed


async def run_reconciler(ctx: ServerContext) -> None:
    last_sweep = 0.0
    while True:
        await asyncio.sleep(ctx.settings.reconcile_interval)
        try:
            await enforce_deadlines(ctx)
        except Exception:
            log.exception("reconciling sessions failed; will retry")
        if time.monotonic() - last_sweep < ctx.settings.heartbeat_interval:
            continue
        last_sweep = time.monotonic()
        # Each sweep on its own: one failing must not keep the others (lost wake-ups!) from running.
        for sweep in (
            agent_service.sweep_missing_sessions,
            agent_service.mark_sessions_of_offline_agents,
            _wake_idle_agents_with_tasks,
        ):
            try:
                await sweep(ctx)
            except Exception:
                log.exception("%s failed; will retry", sweep.__name__)


async def _wake_idle_agents_with_tasks(ctx: ServerContext) -> None:
    woken = await queue.wake_idle_agents_with_tasks(ctx)
    if woken:
        log.warning("woke %d agent(s) whose task wake-up was lost", len(woken))
