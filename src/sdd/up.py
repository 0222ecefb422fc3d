"""`sdd up`: the server, a local frps (when real frp is installed) and a local agent on this
machine, on the embedded defaults.

All run as child processes of this one; stopping `sdd up` (Ctrl-C or SIGTERM) stops them all. The
admin password and the frps token are generated on first start and kept 0600 in the data dir, so
they survive restarts and can be shown again.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sdd.agent.identity import write_private
from sdd.install import find_code_server, find_frpc, find_frps
from sdd.server.frps import FrpsOptions, FrpsProcess

READY_TIMEOUT = 60.0
PORT_MIN, PORT_MAX = 20000, 20999


def _kept_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(15)
    write_private(path, value)
    return value


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            found: int = sock.getsockname()[1]
            return found
    raise SystemExit("no free port for frps")


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}; see the output above")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server did not answer at {url} within {READY_TIMEOUT:g} s")


def _enrollment_token(url: str, password: str) -> str:
    login = httpx.post(f"{url}/api/auth/login", json={"username": "admin", "password": password}, timeout=10)
    if login.status_code != 200:
        raise SystemExit(
            "cannot sign in as admin with the password in the data dir's admin_password file; "
            "if you changed it, update that file"
        )
    token = httpx.post(
        f"{url}/api/enrollment-tokens",
        json={"note": "sdd up: local agent", "expires_in_seconds": 600, "single_use": True},
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        timeout=10,
    )
    token.raise_for_status()
    return str(token.json()["token"])


def stop_process(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_up(*, port: int, host: str, data_dir: Path, mock: bool) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    password = _kept_secret(data_dir / "admin_password")
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{connect_host}:{port}"
    server_env = os.environ | {
        "SDD_DATA_DIR": str(data_dir / "server"),
        "SDD_ADMIN_PASSWORD": password,
        "SDD_PUBLIC_URL": os.environ.get("SDD_PUBLIC_URL", url),
    }
    frps_program = None if mock else find_frps()
    frps: FrpsProcess | None = None
    if frps_program is not None:
        options = FrpsOptions(
            bind_addr="127.0.0.1",
            bind_port=_free_port(7000),
            token=_kept_secret(data_dir / "frps_token"),
            port_min=PORT_MIN,
            port_max=PORT_MAX,
            # Session links are for this machine unless the server itself listens wider.
            proxy_bind_addr=host if host not in ("127.0.0.1", "localhost") else "127.0.0.1",
            # frps asks the server before admitting a frpc or opening a proxy.
            plugin_addr=f"{connect_host}:{port}",
            plugin_secret=_kept_secret(data_dir / "frp_plugin_secret"),
        )
        frps = FrpsProcess(frps_program.argv, data_dir / "frps", options).start()
        server_env |= {
            "SDD_FRP_SERVER_ADDR": options.bind_addr,
            "SDD_FRP_SERVER_PORT": str(options.bind_port),
            "SDD_FRP_TOKEN": options.token or "",
            "SDD_FRP_PLUGIN_SECRET": options.plugin_secret or "",
            "SDD_FRP_PUBLIC_HOST": connect_host,
            "SDD_REMOTE_PORT_MIN": str(PORT_MIN),
            "SDD_REMOTE_PORT_MAX": str(PORT_MAX),
        }
    sdd = [sys.executable, "-m", "sdd.cli"]
    server = subprocess.Popen([*sdd, "server", "--host", host, "--port", str(port)], env=server_env)
    agent: subprocess.Popen[bytes] | None = None
    stopping = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        _wait_ready(url, server)
        token = _enrollment_token(url, password)
        ide = "mock" if mock or find_code_server() is None else "real"
        tunnel = "real" if frps is not None and find_frpc() is not None else "mock"
        agent_cmd = [
            *sdd,
            "agent",
            "--server",
            url,
            "--runtime-dir",
            str(data_dir / "agent"),
            "--name",
            "local",
            "--ide",
            ide,
            "--tunnel",
            tunnel,
        ]
        agent_env = {k: v for k, v in os.environ.items() if not k.startswith("SDD_")}
        agent = subprocess.Popen([*agent_cmd, "--enrollment-token", token], env=agent_env)
        ide_text = "code-server" if ide == "real" else "mock IDE (mock_code_server)"
        tunnel_text = "frp (local frps)" if tunnel == "real" else "mock tunnel (mock_frpc)"
        print(
            f"\n  SDD is up: {url}\n  Sign in as admin / {password}\n  Runtimes: {ide_text} + {tunnel_text}\n"
            f"  Data: {data_dir}\n  Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping:
            if server.poll() is not None:
                print(f"the server exited with status {server.returncode}", file=sys.stderr)
                return 1
            if agent.poll() is not None:
                print(f"the local agent exited with status {agent.returncode}", file=sys.stderr)
                return 1
            if frps is not None and frps.process is not None and frps.process.poll() is not None:
                print(
                    f"frps exited with status {frps.process.returncode}: {frps.log_tail()}", file=sys.stderr
                )
                return 1
            time.sleep(0.2)
        return 0
    finally:
        if agent is not None:
            stop_process(agent)
        stop_process(server)
        if frps is not None:
            frps.stop()
