"""Running a long command (npm, apt-get) with a live spinner, elapsed time and its latest output line.

npm install of code-server is silent for minutes at a time when piped, which looks exactly like a hang.
Showing the newest line of output keeps the person at the terminal informed, and the full output goes
to a log file so a failure can be diagnosed after the spinner is gone.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from sdd.install.errors import InstallError

TAIL_LINES = 25
# Compiler diagnostics end in lines like `|   ^~~~~`; show the newest line that says something instead.
_WORDY = re.compile(r"[A-Za-z]{3}")


class CommandResult:
    """How a command ended, and the last lines it printed (for error messages)."""

    def __init__(self, returncode: int, tail: list[str], log_path: Path) -> None:
        self.returncode = returncode
        self.tail = tail
        self.log_path = log_path

    @property
    def tail_text(self) -> str:
        return "\n".join(self.tail)


def _pump(stream: IO[str], log: IO[str], tail: collections.deque[str]) -> None:
    for line in stream:
        log.write(line)
        stripped = line.strip()
        if stripped:
            tail.append(stripped)


def run_with_live_status(
    argv: Sequence[str],
    *,
    label: str,
    console: Console,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 1800.0,
) -> CommandResult:
    """Run `argv` to completion while showing `label`, a spinner, elapsed time and the newest output line.

    The command runs in its own process group so that Ctrl-C or a timeout stops it and everything it
    spawned (npm runs node-gyp, which runs make, which runs g++) rather than orphaning the compilers.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[last]}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with log_path.open("w", encoding="utf-8", errors="replace") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise InstallError(f"could not start {argv[0]}: {exc}") from exc
        assert process.stdout is not None
        reader = threading.Thread(target=_pump, args=(process.stdout, log, tail), daemon=True)
        reader.start()
        started = time.monotonic()
        try:
            with progress:
                task = progress.add_task(label, total=None, last="")
                while process.poll() is None:
                    if time.monotonic() - started > timeout:
                        raise InstallError(f"{label} did not finish within {timeout / 60:.0f} minutes")
                    last = next((line for line in reversed(tail) if _WORDY.search(line)), "")
                    width = max(20, console.width - len(label) - 20)
                    progress.update(task, last=escape(last[:width]))
                    time.sleep(0.2)
        except BaseException:
            _stop_group(process)
            raise
        finally:
            reader.join(timeout=5)
    return CommandResult(process.returncode, list(tail), log_path)


def _stop_group(process: subprocess.Popen[str]) -> None:
    """Terminate the command's whole process group, escalating to SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
