"""The sessions this node runs: start (IDE, then tunnel), stop (tunnel, then IDE), report.

Starting and stopping one session are serialised by a per-session lock, so a stop that arrives
while the start is still booting waits for it and then undoes it. Starting a session that runs
already, or stopping one that does not, is a no-op: tasks may be delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sdd.agent.runtime.base import IdeRuntime, IdeSpec, ProxySpec, RuntimeFailed, TunnelRuntime
from sdd.agent.runtime.process import free_loopback_port, is_process_group_of, kill_group
from sdd.protocol import RunningSession, StartCodeServerPayload

log = logging.getLogger(__name__)

PORT_ATTEMPTS = 3


@dataclass
class RunningIde:
    session_id: str
    local_port: int
    ide: IdeRuntime


class SessionManager:
    def __init__(self, sessions_dir: Path, tunnel: TunnelRuntime, make_ide: Callable[[], IdeRuntime]) -> None:
        self.sessions_dir = sessions_dir
        self.tunnel = tunnel
        self.make_ide = make_ide
        self.running: dict[str, RunningIde] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def session_dir(self, session_id: str) -> Path:
        # Ids come from the server: refuse anything that is not a plain name, so no path escapes.
        if not session_id.isalnum():
            raise RuntimeFailed(f"refusing a session id that is not alphanumeric: {session_id!r}")
        return self.sessions_dir / session_id

    async def start(self, payload: StartCodeServerPayload) -> int:
        """Run the session's IDE and open its tunnel; returns the IDE's local port."""
        sid = payload.session_id
        directory = self.session_dir(sid)
        async with self._locks[sid]:
            if sid in self.running:
                return self.running[sid].local_port
            began = time.perf_counter()
            last_error: RuntimeFailed | None = None
            for _attempt in range(PORT_ATTEMPTS):
                ide = self.make_ide()
                port = free_loopback_port()
                try:
                    await ide.start(IdeSpec(sid, payload.password, port, directory))
                except RuntimeFailed as exc:
                    # Another program may have taken the port between our pick and the IDE's bind.
                    await ide.stop()
                    last_error = exc
                    continue
                break
            else:
                assert last_error is not None
                raise last_error
            ide_ready = time.perf_counter()
            try:
                await self.tunnel.open(ProxySpec(sid, port, payload.remote_port, payload.subdomain))
            except BaseException:
                await ide.stop()
                raise
            self.running[sid] = RunningIde(sid, port, ide)
            self._save_state(sid, port, ide.pid)
            log.info(
                "session %s running on local port %s, remote port %s "
                "(IDE ready in %.0f ms, tunnel in %.0f ms)",
                sid,
                port,
                payload.remote_port,
                (ide_ready - began) * 1000,
                (time.perf_counter() - ide_ready) * 1000,
            )
            return port

    async def stop(self, session_id: str) -> None:
        self.session_dir(session_id)
        async with self._locks[session_id]:
            await self.tunnel.close(session_id)
            running = self.running.pop(session_id, None)
            if running is not None:
                await running.ide.stop()
            (self.session_dir(session_id) / "state.json").unlink(missing_ok=True)
        self._locks.pop(session_id, None)
        log.info("session %s stopped", session_id)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(sid) for sid in list(self.running)), return_exceptions=True)

    async def report(self) -> list[RunningSession]:
        """What runs now, for the heartbeat. An IDE that exited is reported as not healthy once,
        then dropped (its tunnel closed): the server decides what becomes of the session."""
        out = []
        for sid, running in list(self.running.items()):
            status = running.ide.poll()
            alive = status is None
            out.append(
                RunningSession(
                    session_id=sid, local_port=running.local_port, healthy=alive, exit_status=status
                )
            )
            if not alive:
                log.warning("the IDE of session %s exited with status %s", sid, running.ide.poll())
                await self.stop(sid)
        return out

    # -- state kept on disk, for cleaning up after a crash of the agent -----------------------

    def _save_state(self, session_id: str, port: int, pid: int | None) -> None:
        state = {"session_id": session_id, "local_port": port, "pgid": pid}
        (self.session_dir(session_id) / "state.json").write_text(json.dumps(state))

    def clean_up_leftovers(self) -> list[str]:
        """After a crash, stop the IDEs a previous run of this agent left running and drop their
        proxy files. The server then sees those sessions missing and fails them with a reason:
        the policy is to stop, not to re-adopt (docs/architecture.md says why)."""
        cleaned = []
        for state_file in self.sessions_dir.glob("*/state.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                state = json.loads(state_file.read_text())
                pgid = state.get("pgid")
                if isinstance(pgid, int) and is_process_group_of(pgid, str(state["session_id"])):
                    kill_group(pgid, signal.SIGKILL)
                cleaned.append(str(state["session_id"]))
            state_file.unlink(missing_ok=True)
        return cleaned
