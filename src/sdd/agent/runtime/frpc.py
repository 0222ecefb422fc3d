"""One supervised frpc (or mock_frpc, which reads the same config) per agent, a proxy per session.

The main config `includes` a directory holding one file per session. Opening or closing a
session's tunnel is writing or deleting its file and asking frpc's admin API (loopback only, random
password) to reload: the other proxies keep serving. If frpc dies, the watchdog starts it again and
it reads the proxies still in the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from sdd.agent.runtime.base import ProxySpec, RuntimeFailed, TunnelRuntime
from sdd.agent.runtime.code_server import clean_environment
from sdd.agent.runtime.loopback import loopback_client
from sdd.agent.runtime.process import SupervisedProcess, free_loopback_port, is_process_group_of, kill_group
from sdd.protocol import FrpSettings

log = logging.getLogger(__name__)

ADMIN_USER = "sdd"
PROXY_READY_TIMEOUT = 15.0
WATCHDOG_SECONDS = 1.0


def proxy_name(session_id: str) -> str:
    return f"sdd-{session_id}"


class FrpcTunnel(TunnelRuntime):
    def __init__(
        self,
        command: Sequence[str],
        directory: Path,
        frp: FrpSettings,
        metadatas: dict[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.directory = directory
        self.proxies_dir = directory / "proxies"
        self.config_path = directory / "frpc.toml"
        self.frp = frp
        self.metadatas = metadatas or {}
        self._admin_port = 0
        self._admin_password = secrets.token_urlsafe(24)
        self._process: SupervisedProcess | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0

    # -- configuration --------------------------------------------------------------------

    def _main_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "serverAddr": self.frp.server_addr,
            "serverPort": self.frp.server_port,
            # Keep retrying when frps is away instead of exiting: the watchdog is not a retry loop.
            "loginFailExit": False,
            "webServer": {
                "addr": "127.0.0.1",
                "port": self._admin_port,
                "user": ADMIN_USER,
                "password": self._admin_password,
            },
            "includes": [str(self.proxies_dir / "*.toml")],
        }
        if self.frp.token:
            config["auth"] = {"method": "token", "token": self.frp.token}
        if self.metadatas:
            config["metadatas"] = dict(self.metadatas)
        return config

    def _write_private(self, path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.write_text(tomli_w.dumps(data))
        tmp.replace(path)

    def _proxy_config(self, proxy: ProxySpec) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": proxy_name(proxy.session_id),
            "localIP": "127.0.0.1",
            "localPort": proxy.local_port,
        }
        if self.frp.protocol == "http" and proxy.subdomain:
            entry.update(type="http", subdomain=proxy.subdomain)
        else:
            entry.update(type="tcp", remotePort=proxy.remote_port)
        return {"proxies": [entry]}

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.proxies_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        self._admin_port = free_loopback_port()
        self._write_private(self.config_path, self._main_config())
        await self._launch()
        self._watchdog = asyncio.create_task(self._watch())

    async def _launch(self) -> None:
        self._process = SupervisedProcess(
            [*self.command, "-c", str(self.config_path)],
            log_path=self.directory / "frpc.log",
            env=clean_environment(),
        )
        try:
            await self._process.start()
        except OSError as exc:
            raise RuntimeFailed(f"could not launch frpc ({self.command[0]}): {exc}") from exc
        # Recorded so that after a crash of the agent the next run can stop this frpc.
        self.state_path.write_text(json.dumps({"pgid": self._process.pid}))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeFailed(
                    f"frpc exited with status {self._process.poll()}:\n{self._process.log_tail()}"
                )
            if await self.health():
                return
            await asyncio.sleep(0.03)
        raise RuntimeFailed(f"frpc's admin API did not answer within 10 s:\n{self._process.log_tail()}")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCHDOG_SECONDS)
            if self._process is None or self._process.poll() is None:
                continue
            async with self._lock:
                log.warning("frpc exited with status %s; starting it again", self._process.poll())
                self.restarts += 1
                try:
                    await self._launch()
                except RuntimeFailed as exc:
                    log.error("restarting frpc failed: %s", exc)

    async def apply_settings(self, frp: FrpSettings, metadatas: dict[str, str] | None = None) -> None:
        """New frp settings from the server (or a new credential): rewrite the config and restart
        frpc."""
        metadatas = self.metadatas if metadatas is None else metadatas
        if frp == self.frp and metadatas == self.metadatas:
            return
        async with self._lock:
            self.frp = frp
            self.metadatas = metadatas
            self._write_private(self.config_path, self._main_config())
            if self._process is not None:
                await self._process.stop()
                await self._launch()

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._process is not None:
            await self._process.stop()

    def poll(self) -> int | None:
        return self._process.poll() if self._process else None

    # -- admin API ------------------------------------------------------------------------

    async def _admin(self, path: str) -> httpx.Response:
        return await loopback_client().get(
            f"http://127.0.0.1:{self._admin_port}{path}", auth=(ADMIN_USER, self._admin_password)
        )

    async def health(self) -> bool:
        try:
            return (await self._admin("/api/status")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _reload(self) -> None:
        try:
            response = await self._admin("/api/reload")
        except httpx.HTTPError as exc:
            raise RuntimeFailed(f"frpc's admin API is unreachable: {exc}") from exc
        if response.status_code != 200:
            raise RuntimeFailed(f"frpc refused to reload its config: {response.text.strip()}")

    async def proxy_status(self, session_id: str) -> dict[str, Any] | None:
        response = await self._admin("/api/status")
        name = proxy_name(session_id)
        for entries in response.json().values():
            for entry in entries or []:
                if entry.get("name") == name:
                    return dict(entry)
        return None

    # -- proxies --------------------------------------------------------------------------

    async def open(self, proxy: ProxySpec) -> None:
        path = self.proxies_dir / f"{proxy.session_id}.toml"
        async with self._lock:
            self._write_private(path, self._proxy_config(proxy))
            await self._reload()
        deadline = time.monotonic() + PROXY_READY_TIMEOUT
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                last = await self.proxy_status(proxy.session_id)
            if last is not None and last.get("status") == "running":
                return
            if last is not None and last.get("status") in ("start error", "check failed"):
                break
            await asyncio.sleep(0.02)
        await self.close(proxy.session_id)
        detail = (last or {}).get("err") or (last or {}).get("status") or "no status"
        raise RuntimeFailed(
            f"the tunnel for remote port {proxy.remote_port} did not open: {detail} "
            f"(frps at {self.frp.server_addr}:{self.frp.server_port})"
        )

    async def close(self, session_id: str) -> None:
        path = self.proxies_dir / f"{session_id}.toml"
        if not path.exists():
            return
        async with self._lock:
            path.unlink(missing_ok=True)
            with contextlib.suppress(RuntimeFailed):
                await self._reload()

    @property
    def state_path(self) -> Path:
        return self.directory / "state.json"

    def _stop_leftover(self) -> None:
        """Stop the frpc a crashed earlier run left behind (it would hold the session ports)."""
        try:
            pgid = int(json.loads(self.state_path.read_text())["pgid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if is_process_group_of(pgid, str(self.config_path)):
            log.warning("stopping the frpc (process group %s) left by an earlier run", pgid)
            kill_group(pgid, signal.SIGKILL)
        self.state_path.unlink(missing_ok=True)
