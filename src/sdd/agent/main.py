"""The agent's main loop: register, long-poll tasks (each poll carrying a heartbeat when one is
due), run them, report.

It only ever dials out, so it works behind NAT. When the server is away it backs off (capped
exponential with full jitter, so a fleet of agents does not return in one wave).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from sdd import __version__
from sdd.agent.identity import Credential, Identity
from sdd.agent.metrics import MetricsSampler
from sdd.agent.runtime.base import RuntimeFailed
from sdd.agent.runtime.code_server import CodeServerIde
from sdd.agent.runtime.frpc import FrpcTunnel
from sdd.agent.runtime.loopback import close_loopback_client
from sdd.agent.sessions import SessionManager
from sdd.protocol import (
    AgentRegisterRequest,
    AgentRegisterResponse,
    AgentSettings,
    HeartbeatRequest,
    HeartbeatResponse,
    PollResponse,
    StartCodeServerPayload,
    StopCodeServerPayload,
    Task,
    TaskKind,
    TaskResult,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class CredentialRejected(Exception):
    """The server no longer accepts this agent's credential."""


class AgentRevoked(Exception):
    """An admin revoked this agent: it must not keep knocking."""


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = random.uniform(0, min(self.cap, self.base * 2**self.attempt))  # noqa: S311
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class AgentOptions:
    server: str
    runtime_dir: Path
    enrollment_token: str | None = None
    name: str = field(default_factory=lambda: _default_name())
    ide_command: Sequence[str] = ()
    frpc_command: Sequence[str] = ()


def _default_name() -> str:
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())[:63]
    return name.strip("-._") or "agent"


def mock_ide_command() -> list[str]:
    return [sys.executable, "-m", "sdd.mock_bin.mock_code_server"]


def mock_frpc_command() -> list[str]:
    return [sys.executable, "-m", "sdd.mock_bin.mock_frpc"]


class Agent:
    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.server = options.server.rstrip("/")
        self.runtime_dir = options.runtime_dir
        self.identity = Identity(self.runtime_dir)
        self.credential: Credential | None = None
        self.settings: AgentSettings | None = None
        self.metrics = MetricsSampler(self.runtime_dir)
        self.http = httpx.AsyncClient(
            base_url=self.server,
            timeout=httpx.Timeout(15.0),
            headers={"User-Agent": f"sdd-agent/{__version__}"},
        )
        self.tunnel: FrpcTunnel | None = None
        self.manager: SessionManager | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.stopping = asyncio.Event()
        self.revoked = False
        self._next_beat = 0.0  # monotonic time the next heartbeat is due

    # -- talking to the server --------------------------------------------------------------

    async def _call(
        self, method: str, path: str, *, json: Any = None, request_timeout: float | None = None
    ) -> Any:
        assert self.credential is not None
        response = await self.http.request(
            method,
            path,
            json=json,
            headers={"Authorization": self.credential.header},
            timeout=request_timeout if request_timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        if response.status_code == 401:
            raise CredentialRejected(response.text)
        if response.status_code == 403:
            raise AgentRevoked(response.json().get("detail", response.text))
        response.raise_for_status()
        return response.json()

    async def register(self) -> None:
        """Use the saved credential if the server still takes it, else enrol with the token."""
        saved = self.identity.load(self.server)
        if saved is not None:
            self.credential = saved
            try:
                await self._heartbeat_once()
                log.info("resumed as agent %s", saved.agent_id)
                return
            except CredentialRejected:
                log.warning("the saved credential was rejected; registering again")
        if not self.options.enrollment_token:
            raise SystemExit(
                "this node has no valid agent credential: run `sdd agent` with --enrollment-token "
                "(an admin creates one on the Agents page or with POST /api/enrollment-tokens)"
            )
        request = AgentRegisterRequest(
            enrollment_token=self.options.enrollment_token,
            node_key=self.identity.node_key(),
            name=self.options.name,
            hostname=socket.gethostname()[:255] or "unknown",
            version=__version__,
        )
        response = await self.http.post("/api/agent/register", json=request.model_dump())
        if response.status_code in (401, 403, 422):
            raise SystemExit(f"registration refused: {response.json().get('detail', response.text)}")
        response.raise_for_status()
        registered = AgentRegisterResponse.model_validate(response.json())
        self.credential = Credential(self.server, registered.agent_id, registered.credential)
        self.identity.save(self.credential)
        self.settings = registered.settings
        log.info("registered as agent %s", registered.agent_id)

    async def _beat(self) -> HeartbeatRequest:
        sessions = await self.manager.report() if self.manager else []
        return HeartbeatRequest(metrics=self.metrics.sample(), sessions=sessions, version=__version__)

    async def _heartbeat_once(self) -> HeartbeatResponse:
        beat = await self._beat()
        reply = HeartbeatResponse.model_validate(
            await self._call("POST", "/api/agent/heartbeat", json=beat.model_dump(mode="json"))
        )
        await self._apply(reply)
        return reply

    async def _apply(self, reply: HeartbeatResponse) -> None:
        self.settings = reply.settings
        if self.tunnel is not None:
            await self.tunnel.apply_settings(reply.settings.frp)
        for session_id in reply.stop_sessions:
            if self.manager is not None and session_id in self.manager.running:
                log.info("the server no longer wants session %s; stopping it", session_id)
                self._spawn(self.manager.stop(session_id))

    def _metadatas(self) -> dict[str, str]:
        """frps's plugin hook asks the server who a frpc is: it carries the agent's credential."""
        assert self.credential is not None
        return {"agent_id": self.credential.agent_id, "credential": self.credential.secret}

    # -- loops ----------------------------------------------------------------------------

    async def _resilient(
        self, name: str, step: Callable[[], Awaitable[T]], pause: Callable[[], float]
    ) -> None:
        """Run `step` forever: pause after success, back off with jitter after failure."""
        backoff = Backoff()
        while not self.stopping.is_set():
            try:
                await step()
                backoff.reset()
                delay = pause()
            except CredentialRejected:
                log.warning("%s: credential rejected; registering again", name)
                self.identity.credential_path.unlink(missing_ok=True)
                try:
                    await self.register()
                    if self.tunnel is not None and self.settings is not None:
                        await self.tunnel.apply_settings(self.settings.frp, self._metadatas())
                    continue
                except (httpx.HTTPError, CredentialRejected) as exc:
                    log.warning("%s: registering again failed: %s", name, exc)
                    delay = backoff.next_delay()
            except AgentRevoked as exc:
                log.error(
                    "this agent was revoked by an admin (%s); stopping. Enrol the node again with a "
                    "new agent identity (delete %s) if it should serve sessions.",
                    exc,
                    self.runtime_dir,
                )
                self.revoked = True
                self.stopping.set()
                return
            except (httpx.HTTPError, ValueError) as exc:
                delay = backoff.next_delay()
                log.warning("%s: server unreachable or erring (%s); retrying in %.1f s", name, exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _sync_once(self) -> None:
        """One long-poll for tasks. It carries the heartbeat when one is due and waits at most until
        the next one is, so a single connection serves both (half the sockets on the server)."""
        assert self.settings is not None
        started = time.monotonic()
        beat = await self._beat() if started >= self._next_beat else None
        interval = self.settings.heartbeat_interval
        wait = min(self.settings.poll_timeout, interval if beat else max(0.0, self._next_beat - started))
        reply = PollResponse.model_validate(
            await self._call(
                "POST",
                f"/api/agent/tasks/poll?wait={wait:.3f}",
                json=beat.model_dump(mode="json") if beat else None,
                request_timeout=wait + 15,
            )
        )
        if beat is not None and reply.heartbeat is None:
            # A server older than the combined poll ignored the beat: send it on its own.
            reply.heartbeat = HeartbeatResponse.model_validate(
                await self._call("POST", "/api/agent/heartbeat", json=beat.model_dump(mode="json"))
            )
        if beat is not None:
            # Only a beat the server took counts: after a failure the next poll carries one again.
            self._next_beat = started + interval
        if reply.heartbeat is not None:
            await self._apply(reply.heartbeat)
        for task in reply.tasks:
            if task.id in self._tasks:
                # Delivered again (our ack was lost): it is already running here.
                self._spawn(self._acknowledge(task))
                continue
            self._tasks[task.id] = self._spawn(self._run_task(task))

    async def _sync_loop(self) -> None:
        await self._resilient("poll", self._sync_once, lambda: 0.0)

    def _spawn(self, coroutine: Awaitable[T]) -> asyncio.Task[T]:
        task: asyncio.Task[T] = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- tasks ----------------------------------------------------------------------------

    async def _acknowledge(self, task: Task) -> None:
        with contextlib.suppress(httpx.HTTPError, CredentialRejected, AgentRevoked):
            await self._call("POST", f"/api/agent/tasks/{task.id}/ack")

    async def _run_task(self, task: Task) -> None:
        assert self.manager is not None
        ack = self._spawn(self._acknowledge(task))
        result: TaskResult
        try:
            if task.kind is TaskKind.START_CODE_SERVER:
                start = StartCodeServerPayload.model_validate(task.payload)
                port = await self.manager.start(start)
                result = TaskResult(ok=True, local_port=port)
            else:
                stop = StopCodeServerPayload.model_validate(task.payload)
                await self.manager.stop(stop.session_id)
                result = TaskResult(ok=True)
        except RuntimeFailed as exc:
            result = TaskResult(ok=False, error=str(exc)[-8000:])
        except Exception as exc:
            log.exception("task %s (%s) failed", task.id, task.kind)
            result = TaskResult(ok=False, error=f"{type(exc).__name__}: {exc}"[-8000:])
        await ack
        await self._report(task, result)

    async def _report(self, task: Task, result: TaskResult) -> None:
        """Report until the server has it: the report is idempotent, so retrying is safe."""
        backoff = Backoff()
        while not self.stopping.is_set():
            try:
                await self._call("POST", f"/api/agent/tasks/{task.id}/result", json=result.model_dump())
                return
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 404:
                    return  # the server no longer knows this task; nothing to report to
                delay = backoff.next_delay()
            except (httpx.HTTPError, CredentialRejected) as exc:
                delay = backoff.next_delay()
                log.warning("reporting task %s failed (%s); retrying in %.1f s", task.id, exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    # -- run ------------------------------------------------------------------------------

    async def _register_until_done(self) -> None:
        backoff = Backoff()
        while True:
            try:
                await self.register()
                return
            except (httpx.HTTPError, ValueError) as exc:
                delay = backoff.next_delay()
                log.warning("cannot reach the server at %s (%s); retrying in %.1f s", self.server, exc, delay)
                await asyncio.sleep(delay)

    async def run(self) -> None:
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        await self._register_until_done()
        assert self.settings is not None
        self.tunnel = FrpcTunnel(
            self.options.frpc_command or mock_frpc_command(),
            self.runtime_dir / "frpc",
            self.settings.frp,
            self._metadatas(),
        )
        self.manager = SessionManager(
            self.runtime_dir / "sessions",
            self.tunnel,
            lambda: CodeServerIde(self.options.ide_command or mock_ide_command()),
        )
        leftovers = self.manager.clean_up_leftovers()
        if leftovers:
            log.warning(
                "stopped %d session(s) left by a previous run: %s", len(leftovers), ", ".join(leftovers)
            )
        for stale in self.tunnel.proxies_dir.glob("*.toml") if self.tunnel.proxies_dir.exists() else []:
            stale.unlink()
        await self.tunnel.start()
        log.info("agent ready: server %s, runtime dir %s", self.server, self.runtime_dir)
        loops = [asyncio.create_task(self._sync_loop())]
        try:
            await self.stopping.wait()
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.shutdown()

    async def shutdown(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.manager is not None:
            await self.manager.stop_all()
        if self.tunnel is not None:
            await self.tunnel.stop()
        await self.http.aclose()
        await close_loopback_client()
