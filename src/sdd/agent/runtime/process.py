"""One supervised external process: started in its own process group with its output in a log
file, stopped with SIGTERM to the whole group and SIGKILL after a grace period, so its children go
with it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

LOG_TAIL_LINES = 20


class SupervisedProcess:
    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    def poll(self) -> int | None:
        """None while it runs, else its exit status."""
        if self._process is None:
            return None
        return self._process.returncode

    async def wait(self) -> int:
        assert self._process is not None
        return await self._process.wait()

    async def stop(self, grace: float = 5.0) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            kill_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                kill_group(process.pid, signal.SIGKILL)
                await process.wait()
        # The leader may be gone while children it left behind still hold the group.
        kill_group(process.pid, signal.SIGKILL)
        return process.returncode

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return tail(self.log_path, lines)


def kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def is_process_group_of(pgid: int, marker: str) -> bool:
    """Whether a process group still runs what we started: its leader's command line holds
    `marker`. A pid recorded before a reboot may belong to anything now."""
    import psutil

    if pgid <= 1 or pgid == os.getpgid(0) or not group_alive(pgid):
        return False
    try:
        return marker in " ".join(psutil.Process(pgid).cmdline())
    except psutil.Error:
        return False


def free_loopback_port() -> int:
    """A port free on 127.0.0.1 right now (another program may take it before we bind: callers retry)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
