from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from support import ADMIN_PASSWORD, AgentProcess, Api, ServerProcess, fresh_database


@pytest.fixture
def database_url() -> Iterator[str | None]:
    """This test's database: a fresh PostgreSQL database when SDD_TEST_DATABASE_URL is set, else
    None (each server keeps SQLite in its data dir)."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def shared_env(database_url: str | None) -> dict[str, str]:
    """Settings every server of one test shares: its database and, when SDD_TEST_REDIS_URL is
    set, Redis with channels of its own."""
    env = {}
    if database_url:
        env["SDD_DATABASE_URL"] = database_url
    redis_url = os.environ.get("SDD_TEST_REDIS_URL")
    if redis_url:
        env |= {"SDD_REDIS_URL": redis_url, "SDD_REDIS_PREFIX": f"sdd-test-{os.urandom(4).hex()}"}
    return env


@pytest.fixture
def server_factory(tmp_path: Path, shared_env: dict[str, str]) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(name: str = "server", **env: str) -> ServerProcess:
        process = ServerProcess(tmp_path / name, env=shared_env | env).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()


@pytest.fixture
def admin(server: ServerProcess) -> Api:
    return Api(server.url)


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(
        server: ServerProcess,
        token: str | None,
        name: str = "agent",
        *,
        ide: str = "mock",
        tunnel: str = "mock",
    ) -> AgentProcess:
        process = AgentProcess(server.url, tmp_path / f"agent-{name}", token, name, ide, tunnel).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


# -- in-process app, for API behaviour that needs no other process ---------------------------


@pytest.fixture
async def app_client(tmp_path: Path, shared_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    from sdd.server.app import create_app
    from sdd.server.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "data",
        admin_password=ADMIN_PASSWORD,  # type: ignore[arg-type]
        secret_key="unit-tests-signing-key-of-32-chars+",  # type: ignore[arg-type]
        database_url=shared_env.get("SDD_DATABASE_URL"),
        redis_url=shared_env.get("SDD_REDIS_URL"),
        redis_prefix=shared_env.get("SDD_REDIS_PREFIX", "sdd"),
        heartbeat_interval=0.5,
    )
    app = create_app(settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app)
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://test")
        )
        client.app = app  # type: ignore[attr-defined]
        yield client


async def login(
    client: httpx.AsyncClient, username: str = "admin", password: str = ADMIN_PASSWORD
) -> dict[str, str]:
    response = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def enroll(client: httpx.AsyncClient, admin: dict[str, str], name: str = "node") -> dict[str, str]:
    """Register an agent by hand and send a first heartbeat; returns its auth header + id."""
    token = (await client.post("/api/enrollment-tokens", json={}, headers=admin)).json()["token"]
    response = await client.post(
        "/api/agent/register",
        json={"enrollment_token": token, "node_key": os.urandom(16).hex(), "name": name, "hostname": name},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    headers = {
        "Authorization": f"Bearer {body['agent_id']}:{body['credential']}",
        "X-Agent-Id": body["agent_id"],
    }
    beat = await client.post("/api/agent/heartbeat", json={"metrics": {"cpu_percent": 12.5}}, headers=headers)
    assert beat.status_code == 200, beat.text
    return headers
