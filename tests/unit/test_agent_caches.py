"""After a restart the server knows every agent's identity and which agents have work, without a
read per agent; an agent with a queued task still gets it on its first poll."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ADMIN_PASSWORD, enroll, login

pytestmark = pytest.mark.asyncio


@contextlib.asynccontextmanager
async def app_on(data_dir: Path, shared_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    from sdd.server.app import create_app
    from sdd.server.settings import Settings

    app = create_app(
        Settings(
            data_dir=data_dir,
            admin_password=ADMIN_PASSWORD,  # type: ignore[arg-type]
            secret_key="unit-tests-signing-key-of-32-chars+",  # type: ignore[arg-type]
            database_url=shared_env.get("SDD_DATABASE_URL"),
            redis_url=shared_env.get("SDD_REDIS_URL"),
            redis_prefix=shared_env.get("SDD_REDIS_PREFIX", "sdd"),
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def test_a_restarted_server_has_the_fleet_cached_and_still_delivers_queued_work(
    tmp_path: Path, shared_env: dict[str, str]
) -> None:
    async with app_on(tmp_path, shared_env) as before:
        admin = await login(before)
        busy = await enroll(before, admin, "busy")
        idle = await enroll(before, admin, "idle")
        session = (
            await before.post("/api/sessions", json={"agent_id": busy["X-Agent-Id"]}, headers=admin)
        ).json()
        assert session["agent_id"] == busy["X-Agent-Id"]
    async with app_on(tmp_path, shared_env) as after:
        ctx = after.app.state.context  # type: ignore[attr-defined]
        assert {busy["X-Agent-Id"], idle["X-Agent-Id"]} <= set(ctx.agent_identities)
        assert ctx.broker.known_idle(idle["X-Agent-Id"])
        assert not ctx.broker.known_idle(busy["X-Agent-Id"])
        tasks = (await after.post("/api/agent/tasks/poll?wait=0", headers=busy)).json()["tasks"]
        assert [t["session_id"] for t in tasks] == [session["id"]]
        # A task queued after the start wakes the idle agent's poll as before.
        admin = await login(after)
        queued = await after.post("/api/sessions", json={"agent_id": idle["X-Agent-Id"]}, headers=admin)
        assert queued.status_code == 201, queued.text
        tasks = (await after.post("/api/agent/tasks/poll?wait=0", headers=idle)).json()["tasks"]
        assert [t["session_id"] for t in tasks] == [queued.json()["id"]]


async def test_a_lost_wake_up_delays_a_task_by_one_sweep_and_never_loses_it(
    app_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdd.server.services import queue

    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    ctx = app_client.app.state.context  # type: ignore[attr-defined]
    assert (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"] == []
    assert ctx.broker.known_idle(agent["X-Agent-Id"])

    async def lost(agent_id: str) -> None:  # as when Redis drops the wake-up between replicas
        return None

    monkeypatch.setattr(ctx.broker, "notify_agent", lost)
    session = (await app_client.post("/api/sessions", json={}, headers=admin)).json()
    # The replica still believes the agent idle: its polls do not look...
    assert (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"] == []
    # ...until the sweep finds the queued task and wakes it, held poll included.
    held = asyncio.create_task(app_client.post("/api/agent/tasks/poll?wait=10", headers=agent))
    await asyncio.sleep(0.1)
    assert await queue.wake_idle_agents_with_tasks(ctx) == [agent["X-Agent-Id"]]
    tasks = (await asyncio.wait_for(held, 5)).json()["tasks"]
    assert [t["session_id"] for t in tasks] == [session["id"]]
    assert await queue.wake_idle_agents_with_tasks(ctx) == []


async def test_an_identity_read_before_a_revocation_is_not_cached_after_it(
    app_client: httpx.AsyncClient,
) -> None:
    """A cache fill whose read began before a forget (revoke, new credential) must not land after
    it, or the revoked agent would pass the fast path until the entry expired."""
    from sdd.server.services import agents as agent_service

    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    ctx = app_client.app.state.context  # type: ignore[attr-defined]
    agent_id = agent["X-Agent-Id"]
    ctx.agent_identities.clear()
    real_read = ctx.db.read

    def read_then_revoked_elsewhere() -> Any:
        # The forget of a revocation on another replica arrives while this read is under way.
        ctx.db.read = real_read
        ctx.broker.deliver_control(f"forget-agent:{agent_id}")
        return real_read()

    ctx.db.read = read_then_revoked_elsewhere
    identity = await agent_service._load_identity(ctx, agent_id)
    assert identity is not None and identity.id == agent_id  # this request may use what it read
    assert agent_id not in ctx.agent_identities  # but it is not cached past the forget
    await agent_service._load_identity(ctx, agent_id)
    assert agent_id in ctx.agent_identities  # a read begun after the forget is
