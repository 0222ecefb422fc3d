"""The agent's side of the API: register, heartbeat, long-poll, acknowledge, report."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Body, Query

from sdd.protocol import (
    AgentRegisterRequest,
    AgentRegisterResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    PollResponse,
    TaskResult,
)
from sdd.server.api.agent_fast_path import DEFAULT_WAIT, MAX_WAIT
from sdd.server.api.deps import Ctx, CurrentAgent, IdPath
from sdd.server.services import agents as agent_service
from sdd.server.services import queue
from sdd.server.services import sessions as session_service
from sdd.server.services.errors import NotFound

router = APIRouter(prefix="/agent", tags=["agent"])


@router.post("/register")
async def register(ctx: Ctx, body: AgentRegisterRequest) -> AgentRegisterResponse:
    return await agent_service.register(ctx, body)


@router.post("/heartbeat")
async def heartbeat(ctx: Ctx, agent: CurrentAgent, body: HeartbeatRequest) -> HeartbeatResponse:
    return await agent_service.heartbeat(ctx, agent, body)


@router.post("/tasks/poll")
async def poll(
    ctx: Ctx,
    agent: CurrentAgent,
    wait: float = Query(default=DEFAULT_WAIT, ge=0, le=MAX_WAIT),  # as the fast path reads it
    beat: HeartbeatRequest | None = Body(default=None),
) -> PollResponse:
    """Tasks waiting for this agent; held open up to `wait` seconds (and the server's
    poll timeout) until one arrives.

    The body, if any, is a heartbeat: an agent that polls with its heartbeat every heartbeat
    interval needs one connection to the server, not two. Its answer comes back in `heartbeat`
    (at once, without waiting, when the server wants sessions stopped)."""
    return await agent_service.heartbeat_and_poll(ctx, agent, beat, wait)


@router.post("/tasks/{task_id}/ack")
async def acknowledge(ctx: Ctx, agent: CurrentAgent, task_id: IdPath) -> dict[str, str]:
    changed = None
    async with ctx.db.write() as db:
        task = await queue.load_for_agent(db, agent.id, task_id)
        if task is None:
            raise NotFound(f"task {task_id!r} not found for this agent")
        if task.state == queue.LEASED:
            task.state = queue.ACKED
            changed = await session_service.on_task_acknowledged(ctx, db, task)
        state = task.state
    if changed is not None:
        await session_service.publish(ctx, [changed.id])
    return {"state": state}


@router.post("/tasks/{task_id}/result")
async def report(ctx: Ctx, agent: CurrentAgent, task_id: IdPath, body: TaskResult) -> dict[str, str]:
    """Idempotent: a result for a task already done (or cancelled) changes nothing."""
    changed = None
    async with ctx.db.write() as db:
        task = await queue.load_for_agent(db, agent.id, task_id)
        if task is None:
            raise NotFound(f"task {task_id!r} not found for this agent")
        if task.state in queue.OPEN_STATES:
            task.state = queue.DONE
            task.done_at = datetime.now(UTC)
            task.result = body.model_dump()
            changed = await session_service.on_task_result(
                ctx, db, task, body.ok, body.error, body.local_port
            )
        state = task.state
    if changed is not None:
        await session_service.publish(ctx, [changed.id])
    return {"state": state}
