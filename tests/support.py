"""Real processes for the integration tests: `sdd server` and `sdd agent`, over real sockets.

Which database the servers use comes from SDD_TEST_DATABASE_URL (unset: a fresh SQLite file per
server), so the same tests run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

from sdd.up import stop_process

T = TypeVar("T")

ADMIN_PASSWORD = "admin-password-for-tests"
SDD = [sys.executable, "-m", "sdd.cli"]

# Fast clocks, so lifecycle tests take seconds, not minutes.
FAST = {
    "SDD_HEARTBEAT_INTERVAL": "0.5",
    "SDD_OFFLINE_AFTER_BEATS": "4",
    "SDD_PRESENCE_FLUSH_INTERVAL": "0.25",
    "SDD_RECONCILE_INTERVAL": "0.2",
    "SDD_POLL_TIMEOUT": "10",
}


def _admin_dsn(url: str) -> tuple[str, str]:
    """(a plain asyncpg DSN to the server's admin database, the database name in `url`)."""
    parsed = httpx.URL(url.replace("postgresql+asyncpg://", "http://"))
    name = parsed.path.lstrip("/")
    dsn = str(parsed.copy_with(path="/postgres")).replace("http://", "postgresql://")
    return dsn, name


def _postgres(url: str, statement: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        dsn, _ = _admin_dsn(url)
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


@contextlib.contextmanager
def fresh_database() -> Iterator[str | None]:
    """A new, empty PostgreSQL database for one test when SDD_TEST_DATABASE_URL names a PostgreSQL
    server (dropped afterwards); None, meaning SQLite in the data dir, otherwise."""
    base = os.environ.get("SDD_TEST_DATABASE_URL")
    if not base or not base.startswith("postgresql"):
        yield base
        return
    name = f"sdd_test_{os.urandom(6).hex()}"
    _postgres(base, f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        _postgres(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    check: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


@dataclass
class ServerProcess:
    data_dir: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        env = (
            os.environ
            | FAST
            | {
                "SDD_DATA_DIR": str(self.data_dir),
                "SDD_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "SDD_SECRET_KEY": "integration-tests-signing-key-32-chars-long",
            }
            | self.env
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [*SDD, "server", "--port", str(self.port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        wait_for(self._healthy, 30, what=f"server on {self.url}")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
        return httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200

    def log(self) -> str:
        return (self.data_dir / "server.log").read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class AgentProcess:
    server_url: str
    runtime_dir: Path
    token: str | None
    name: str = "agent"
    ide: str = "mock"
    tunnel: str = "mock"
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        args = [
            *SDD,
            "agent",
            "--server",
            self.server_url,
            "--runtime-dir",
            str(self.runtime_dir),
            "--name",
            self.name,
            "--ide",
            self.ide,
            "--tunnel",
            self.tunnel,
        ]
        if self.token:
            args += ["--enrollment-token", self.token]
        log = (self.runtime_dir / "stdout.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SDD_")}
        self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def log(self) -> str:
        return (self.runtime_dir / "stdout.log").read_text(errors="replace")[-5000:]

    def descendants(self) -> list[psutil.Process]:
        """Every process this agent started, however deep."""
        assert self.process is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            return psutil.Process(self.process.pid).children(recursive=True)
        return []

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def session_processes(session_id: str) -> list[psutil.Process]:
    """Every process on this machine whose command line names the session (its IDE, mostly)."""
    found = []
    for process in psutil.process_iter():
        try:
            if session_id in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            pass
    return found


class Api:
    """A signed-in person talking to a server."""

    def __init__(self, url: str, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=30)
        response = self.client.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.patch(path, **kw)

    def enrollment_token(self, **body: Any) -> str:
        response = self.post("/api/enrollment-tokens", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def create_user(self, username: str, password: str = "password-123", role: str = "user") -> Api:
        response = self.post("/api/users", json={"username": username, "password": password, "role": role})
        assert response.status_code == 201, response.text
        return Api(self.url, username, password)

    def session(self, session_id: str) -> dict[str, Any]:
        response = self.get(f"/api/sessions/{session_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_session(self, session_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
        return wait_for(
            lambda: (s := self.session(session_id))["status"] in statuses and s,
            timeout,
            what=f"session {session_id} to reach {'/'.join(statuses)}",
        )

    def wait_agent_online(self, name: str | None = None, timeout: float = 30) -> dict[str, Any]:
        def online() -> dict[str, Any] | None:
            for agent in self.get("/api/agents").json():
                if agent["status"] == "ONLINE" and (name is None or agent["name"] == name):
                    return dict(agent)
            return None

        return wait_for(online, timeout, what=f"agent {name or ''} ONLINE")


class FakeAgent:
    """The agent protocol spoken by hand, for tests that need an agent to misbehave."""

    def __init__(self, url: str, token: str, name: str = "fake") -> None:
        self.client = httpx.Client(base_url=url, timeout=30)
        response = self.client.post(
            "/api/agent/register",
            json={
                "enrollment_token": token,
                "node_key": os.urandom(16).hex(),
                "name": name,
                "hostname": name,
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        self.agent_id: str = body["agent_id"]
        self.client.headers["Authorization"] = f"Bearer {self.agent_id}:{body['credential']}"

    def heartbeat(self, sessions: list[dict[str, Any]] | None = None) -> httpx.Response:
        return self.client.post("/api/agent/heartbeat", json={"metrics": {}, "sessions": sessions or []})

    def poll(self, wait: float = 0) -> list[dict[str, Any]]:
        response = self.client.post(f"/api/agent/tasks/poll?wait={wait}")
        assert response.status_code == 200, response.text
        return list(response.json()["tasks"])


@contextlib.contextmanager
def running(*processes: ServerProcess | AgentProcess) -> Iterator[None]:
    try:
        yield
    finally:
        for process in reversed(processes):
            process.stop()
