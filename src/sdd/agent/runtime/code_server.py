"""code-server (or mock_code_server, which takes the same command line) for one session."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

import httpx

from sdd.agent.runtime.base import IdeRuntime, IdeSpec, RuntimeFailed
from sdd.agent.runtime.loopback import loopback_client
from sdd.agent.runtime.process import SupervisedProcess

HEALTH_POLL_SECONDS = 0.03


def clean_environment() -> dict[str, str]:
    """The agent's environment minus its own settings (which may hold secrets)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SDD_") and k != "PASSWORD"}


class CodeServerIde(IdeRuntime):
    def __init__(
        self, command: Sequence[str], *, ready_timeout: float = 60.0, stop_grace: float = 5.0
    ) -> None:
        self.command = list(command)
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self._process: SupervisedProcess | None = None
        self._port: int | None = None

    def argv(self, spec: IdeSpec) -> list[str]:
        d = spec.session_dir
        return [
            *self.command,
            "--bind-addr", f"127.0.0.1:{spec.local_port}",
            "--auth", "password",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            "--user-data-dir", str(d / "user-data"),
            "--extensions-dir", str(d / "extensions"),
            "--config", str(d / "config.yaml"),
            # Browsers share cookies across the ports of one host: without a suffix, two sessions
            # behind the same frps host would log each other out.
            "--cookie-suffix", spec.session_id,
            str(d / "workspace"),
        ]  # fmt: skip

    async def start(self, spec: IdeSpec) -> None:
        for sub in ("user-data", "extensions", "workspace"):
            (spec.session_dir / sub).mkdir(parents=True, exist_ok=True)
        # The password travels in the environment, never in a file or on the command line.
        (spec.session_dir / "config.yaml").write_text("auth: password\n")
        # code-server keeps some state outside --user-data-dir (a heartbeat file, logs, a default
        # config): give each session its own XDG homes so sessions never share or leak files.
        env = clean_environment() | {
            "PASSWORD": spec.password,
            "XDG_DATA_HOME": str(spec.session_dir / "xdg-data"),
            "XDG_CONFIG_HOME": str(spec.session_dir / "xdg-config"),
            "XDG_CACHE_HOME": str(spec.session_dir / "xdg-cache"),
        }
        self._port = spec.local_port
        self._process = SupervisedProcess(
            self.argv(spec),
            log_path=spec.session_dir / "ide.log",
            env=env,
            cwd=spec.session_dir / "workspace",
        )
        try:
            await self._process.start()
        except OSError as exc:
            raise RuntimeFailed(f"could not launch the IDE ({self.command[0]}): {exc}") from exc
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            status = self._process.poll()
            if status is not None:
                raise RuntimeFailed(
                    f"the IDE exited with status {status} before answering; its last output:\n"
                    f"{self._process.log_tail()}"
                )
            if await self._answers():
                return
            await asyncio.sleep(HEALTH_POLL_SECONDS)
        tail = self._process.log_tail()
        await self.stop()
        raise RuntimeFailed(
            f"the IDE did not answer /healthz within {self.ready_timeout:g} s; its last output:\n{tail}"
        )

    async def _answers(self) -> bool:
        try:
            response = await loopback_client().get(f"http://127.0.0.1:{self._port}/healthz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def stop(self) -> None:
        if self._process is not None:
            await self._process.stop(self.stop_grace)

    def poll(self) -> int | None:
        return self._process.poll() if self._process else None

    async def health(self) -> bool:
        if self.poll() is not None or self._port is None:
            return False
        return await self._answers()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None
