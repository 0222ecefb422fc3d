"""`sdd up`: the server and a local agent on this machine, on the embedded defaults.

Both run as child processes of this one; stopping `sdd up` (Ctrl-C or SIGTERM) stops both. The
admin password is generated on first start and kept 0600 in the data dir, so it can be shown again.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sdd.agent.identity import write_private

READY_TIMEOUT = 60.0


def _admin_password(data_dir: Path) -> str:
    path = data_dir / "admin_password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(15)
    write_private(path, password)
    return password


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


def _stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_up(*, port: int, host: str, data_dir: Path, mock: bool) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    password = _admin_password(data_dir)
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{connect_host}:{port}"
    env = os.environ | {
        "SDD_DATA_DIR": str(data_dir / "server"),
        "SDD_ADMIN_PASSWORD": password,
        "SDD_PUBLIC_URL": os.environ.get("SDD_PUBLIC_URL", url),
    }
    sdd = [sys.executable, "-m", "sdd.cli"]
    server = subprocess.Popen([*sdd, "server", "--host", host, "--port", str(port)], env=env)
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
        agent_cmd = [
            *sdd,
            "agent",
            "--server",
            url,
            "--runtime-dir",
            str(data_dir / "agent"),
            "--name",
            "local",
        ]
        if mock:
            agent_cmd.append("--mock")
        agent_env = {k: v for k, v in os.environ.items() if not k.startswith("SDD_")}
        agent = subprocess.Popen([*agent_cmd, "--enrollment-token", token], env=agent_env)
        runtimes = "mock IDE + mock tunnel" if mock or not _real_installed() else "code-server + frp"
        print(
            f"\n  SDD is up: {url}\n  Sign in as admin / {password}\n  Runtimes: {runtimes}\n"
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
            time.sleep(0.2)
        return 0
    finally:
        if agent is not None:
            _stop(agent)
        _stop(server)


def _real_installed() -> bool:
    try:
        from sdd.install import find_code_server, find_frpc
    except ImportError:
        return False
    return bool(find_code_server() and find_frpc())
