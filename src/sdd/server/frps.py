"""A frps (frp's server side) for SDD: its config, written from the server's settings, and a
supervised process for `sdd up` and the tests. In production frps runs on a public host; its
config comes from the same function (`sdd frps-config` prints it)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w


@dataclass(frozen=True)
class FrpsOptions:
    bind_addr: str
    bind_port: int
    token: str | None
    port_min: int
    port_max: int
    proxy_bind_addr: str | None = None
    """Where session ports listen (default: bind_addr)."""
    subdomain_host: str | None = None
    vhost_http_port: int | None = None
    plugin_addr: str | None = None
    """host:port where frps reaches the SDD server, for the server-plugin hook."""
    plugin_secret: str | None = None


def frps_config(options: FrpsOptions) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bindAddr": options.bind_addr,
        "bindPort": options.bind_port,
        # Only the ports SDD hands out can be opened, whatever a frpc asks for.
        "allowPorts": [{"start": options.port_min, "end": options.port_max}],
    }
    if options.proxy_bind_addr:
        config["proxyBindAddr"] = options.proxy_bind_addr
    if options.token:
        config["auth"] = {"method": "token", "token": options.token}
    if options.subdomain_host:
        config["subDomainHost"] = options.subdomain_host
        config["vhostHTTPPort"] = options.vhost_http_port or 80
    if options.plugin_addr and options.plugin_secret:
        config["httpPlugins"] = [
            {
                "name": "sdd",
                "addr": options.plugin_addr,
                "path": f"/api/frp/plugin/{options.plugin_secret}",
                "ops": ["Login", "NewProxy", "Ping"],
            }
        ]
    return config


def write_frps_config(path: Path, options: FrpsOptions) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(tomli_w.dumps(frps_config(options)))
    os.replace(tmp, path)


class FrpsProcess:
    """A local frps, for `sdd up` and the tests."""

    def __init__(self, command: Sequence[str], directory: Path, options: FrpsOptions) -> None:
        self.command = list(command)
        self.directory = directory
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "frps.log"

    def start(self, timeout: float = 10.0) -> FrpsProcess:
        config = self.directory / "frps.toml"
        write_frps_config(config, self.options)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.command, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"frps exited with status {self.process.returncode}: {self.log_tail()}")
            if _listening(self.options.bind_addr, self.options.bind_port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"frps did not listen on {self.options.bind_addr}:{self.options.bind_port}")

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _listening(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
