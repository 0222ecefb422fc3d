"""The per-agent task queue: enqueue, lease by long-poll, acknowledge, complete.

QUEUED → LEASED (handed to the agent's poll) → ACKED (the agent confirmed it has it) → DONE,
or CANCELLED. A lease not acknowledged in time is handed out again; a result reported twice
changes nothing.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sdd.protocol import Task as TaskOut
from sdd.protocol import TaskKind
from sdd.server.models import Session, Task
from sdd.server.services.context import ServerContext

QUEUED, LEASED, ACKED, DONE, CANCELLED = "QUEUED", "LEASED", "ACKED", "DONE", "CANCELLED"
OPEN_STATES = (QUEUED, LEASED, ACKED)
MAX_BATCH = 50


def enqueue(
    db: AsyncSession, agent_id: str, session_id: str, kind: TaskKind, payload: dict[str, Any]
) -> Task:
    task = Task(
        agent_id=agent_id,
        session_id=session_id,
        kind=kind.value,
        payload=payload,
        state=QUEUED,
        delivery_count=0,
        created_at=datetime.now(UTC),
    )
    db.add(task)
    return task


def _deliverable(agent_id: str, now: datetime) -> Any:
    return (Task.agent_id == agent_id) & or_(
        Task.state == QUEUED, (Task.state == LEASED) & (Task.lease_expires_at < now)
    )


async def lease(ctx: ServerContext, agent_id: str) -> list[TaskOut]:
    """Hand out every task that is waiting for this agent (or whose lease ran out)."""
    now = datetime.now(UTC)
    if ctx.broker.known_idle(agent_id):
        return []
    wakes = ctx.broker.wakes(agent_id)
    # A cheap read first: an idle agent's poll never takes the write path.
    async with ctx.db.read() as db:
        open_state = await db.scalar(
            select(Task.state)
            .where(_deliverable(agent_id, now) | ((Task.agent_id == agent_id) & (Task.state == LEASED)))
            .order_by(Task.state.desc())  # QUEUED before LEASED
            .limit(1)
        )
        waiting = (
            await db.scalar(select(Task.id).where(_deliverable(agent_id, now)).limit(1))
            if open_state
            else None
        )
    if open_state is None:
        # Nothing queued and no lease that could run out: until a task is queued for this agent (which
        # wakes it through the broker), its polls need not ask the database.
        ctx.broker.mark_idle(agent_id, wakes)
    if waiting is None:
        return []
    async with ctx.db.write() as db:
        query = select(Task).where(_deliverable(agent_id, now)).order_by(Task.created_at).limit(MAX_BATCH)
        if not ctx.db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        tasks = (await db.execute(query)).scalars().all()
        expires = now + timedelta(seconds=ctx.settings.task_ack_timeout)
        out = []
        for task in tasks:
            task.state = LEASED
            task.lease_expires_at = expires
            task.delivery_count += 1
            if task.delivery_count == 1:
                ctx.metrics.observe_dispatch(task.kind, task.created_at, now)
            out.append(
                TaskOut(
                    id=task.id,
                    kind=TaskKind(task.kind),
                    session_id=task.session_id,
                    payload=task.payload,
                    delivery=task.delivery_count,
                )
            )
        return out


async def poll(ctx: ServerContext, agent_id: str, wait: float) -> list[TaskOut]:
    """Long-poll: return at once if tasks wait, else hold until one is queued or `wait` passes.
    While it waits it holds no database connection."""
    deadline = time.monotonic() + wait
    with ctx.broker.agent_waiter(agent_id) as waiter:
        while True:
            waiter.clear()
            tasks = await lease(ctx, agent_id)
            remaining = deadline - time.monotonic()
            if tasks or remaining <= 0 or ctx.shutting_down.is_set():
                return tasks
            try:
                await asyncio.wait_for(waiter.wait(), remaining)
            except TimeoutError:
                return []


async def wake_idle_agents_with_tasks(ctx: ServerContext) -> list[str]:
    """Wake the agents believed idle that have a task to hand out (queued, or a lease that ran
    out): their wake-up was lost (a Redis hiccup between replicas). One query for the whole
    fleet, run by the reconciler's sweep."""
    idle = ctx.broker.idle_agents()
    if not idle:
        return []
    now = datetime.now(UTC)
    deliverable = or_(Task.state == QUEUED, (Task.state == LEASED) & (Task.lease_expires_at < now))
    async with ctx.db.read() as db:
        waiting = set((await db.scalars(select(Task.agent_id).where(deliverable).distinct())).all())
    woken = sorted(idle & waiting)
    for agent_id in woken:
        ctx.broker.wake_local(agent_id)
    return woken


async def load_for_agent(db: AsyncSession, agent_id: str, task_id: str) -> Task | None:
    """The agent's task, with its session and then itself locked (always in that order, as every
    writer does, so concurrent writers wait for each other instead of deadlocking)."""
    task = await db.get(Task, task_id)
    # Another agent's task is reported as missing: an agent learns nothing about others' work.
    if task is None or task.agent_id != agent_id:
        return None
    await db.get(Session, task.session_id, with_for_update=True)
    await db.refresh(task, with_for_update=True)
    return task


async def cancel_unleased_start(db: AsyncSession, session_id: str) -> bool:
    """Cancel a start task no agent has seen. True if there was one."""
    result = await db.execute(
        update(Task)
        .where(
            Task.session_id == session_id, Task.kind == TaskKind.START_CODE_SERVER.value, Task.state == QUEUED
        )
        .values(state=CANCELLED, done_at=datetime.now(UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def cancel_open_tasks(db: AsyncSession, session_id: str) -> None:
    await db.execute(
        update(Task)
        .where(Task.session_id == session_id, Task.state.in_(OPEN_STATES))
        .values(state=CANCELLED, done_at=datetime.now(UTC))
    )
