"""mock_frpc reads frpc 0.65's TOML, forwards each tcp proxy's remote port, and answers frpc's admin API.

Each test runs the real program in a child process and talks to it over real sockets.
"""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A local service to tunnel to: echoes every byte back until the peer closes."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), EchoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def proxy_toml(name: str, local_port: int, remote_port: int, proxy_type: str = "tcp") -> str:
    extra = 'subdomain = "demo"\n' if proxy_type == "http" else f"remotePort = {remote_port}\n"
    return (
        f'[[proxies]]\nname = "{name}"\ntype = "{proxy_type}"\n'
        f'localIP = "127.0.0.1"\nlocalPort = {local_port}\n{extra}'
    )


def main_toml(admin_port: int, includes: list[str], proxies: str = "") -> str:
    quoted = ", ".join(f'"{pattern}"' for pattern in includes)
    return f"""serverAddr = "127.0.0.1"
serverPort = 7000
loginFailExit = false
auth.method = "token"
auth.token = "tunnel-token"
log.to = "console"
log.level = "info"
transport.poolCount = 1
webServer.addr = "127.0.0.1"
webServer.port = {admin_port}
webServer.user = "{ADMIN_USER}"
webServer.password = "{ADMIN_PASSWORD}"
includes = [{quoted}]

[metadatas]
agent = "node-1"

{proxies}"""


class Frpc:
    """A running mock_frpc and a client for its admin API."""

    def __init__(self, config: Path, admin_port: int, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sdd.mock_bin.mock_frpc", "-c", str(config)],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.admin = httpx.Client(
            base_url=f"http://127.0.0.1:{admin_port}", auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=5
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """The admin API answers only once every configured proxy has been tried."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"mock_frpc exited: {self.process.communicate()[1]}")
            try:
                self.admin.get("/healthz")
                return
            except httpx.TransportError:
                time.sleep(0.02)
        raise AssertionError("mock_frpc admin API never answered")

    def status(self) -> dict[str, dict[str, str]]:
        response = self.admin.get("/api/status")
        assert response.status_code == 200
        return {entry["name"]: entry for entries in response.json().values() for entry in entries}

    def close(self) -> None:
        self.admin.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)


@pytest.fixture
def start_frpc(tmp_path: Path) -> Iterator[Callable[..., Frpc]]:
    started: list[Frpc] = []

    def start(config: Path, admin_port: int, env: dict[str, str] | None = None) -> Frpc:
        frpc = Frpc(config, admin_port, cwd=tmp_path, env=env)
        started.append(frpc)
        return frpc

    try:
        yield start
    finally:
        for frpc in started:
            frpc.close()


def echo_through(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        return conn.recv(65536)


def test_forwards_tcp_both_ways_to_the_local_port(
    tmp_path: Path, echo_port: int, start_frpc: Callable[..., Frpc]
) -> None:
    admin_port, remote_port = free_port(), free_port()
    config = tmp_path / "frpc.toml"
    config.write_text(main_toml(admin_port, [], proxy_toml("ide", echo_port, remote_port)))
    start_frpc(config, admin_port)

    assert echo_through(remote_port, b"hello through the tunnel") == b"hello through the tunnel"


def test_reload_adds_and_removes_included_proxies_and_keeps_other_connections_open(
    tmp_path: Path, echo_port: int, start_frpc: Callable[..., Frpc]
) -> None:
    admin_port, kept_port, removed_port, added_port = (free_port() for _ in range(4))
    include_dir = tmp_path / "proxies.d"
    include_dir.mkdir()
    (include_dir / "kept.toml").write_text(proxy_toml("kept", echo_port, kept_port))
    (include_dir / "removed.toml").write_text(proxy_toml("removed", echo_port, removed_port))
    config = tmp_path / "frpc.toml"
    config.write_text(main_toml(admin_port, [f"{include_dir}/*.toml"]))
    frpc = start_frpc(config, admin_port)

    with socket.create_connection(("127.0.0.1", kept_port), timeout=5) as open_conn:
        open_conn.sendall(b"before")
        assert open_conn.recv(100) == b"before"

        (include_dir / "removed.toml").unlink()
        (include_dir / "added.toml").write_text(proxy_toml("added", echo_port, added_port))
        reload = frpc.admin.get("/api/reload")

        assert reload.status_code == 200
        assert set(frpc.status()) == {"kept", "added"}
        assert echo_through(added_port, b"new") == b"new"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", removed_port), timeout=5)
        open_conn.sendall(b"after")
        assert open_conn.recv(100) == b"after"


def test_reload_restarts_a_changed_proxy_on_its_new_port(
    tmp_path: Path, echo_port: int, start_frpc: Callable[..., Frpc]
) -> None:
    admin_port, old_port, new_port = free_port(), free_port(), free_port()
    config = tmp_path / "frpc.toml"
    config.write_text(main_toml(admin_port, [], proxy_toml("ide", echo_port, old_port)))
    frpc = start_frpc(config, admin_port)

    config.write_text(main_toml(admin_port, [], proxy_toml("ide", echo_port, new_port)))
    assert frpc.admin.get("/api/reload").status_code == 200

    assert frpc.status()["ide"]["remote_addr"] == f"127.0.0.1:{new_port}"
    assert echo_through(new_port, b"moved") == b"moved"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", old_port), timeout=5)


def test_reload_of_a_broken_config_answers_400_and_keeps_the_running_proxies(
    tmp_path: Path, echo_port: int, start_frpc: Callable[..., Frpc]
) -> None:
    admin_port, remote_port = free_port(), free_port()
    config = tmp_path / "frpc.toml"
    config.write_text(main_toml(admin_port, [], proxy_toml("ide", echo_port, remote_port)))
    frpc = start_frpc(config, admin_port)

    config.write_text("serverAddr = [unterminated\n")
    reload = frpc.admin.get("/api/reload")

    assert reload.status_code == 400
    assert "frpc.toml" in reload.text
    assert frpc.status()["ide"]["status"] == "running"
    assert echo_through(remote_port, b"still here") == b"still here"


def test_admin_api_requires_the_configured_basic_auth(
    tmp_path: Path, start_frpc: Callable[..., Frpc]
) -> None:
    admin_port = free_port()
    config = tmp_path / "frpc.toml"
    config.write_text(main_toml(admin_port, []))
    start_frpc(config, admin_port)
    base = f"http://127.0.0.1:{admin_port}"

    wrong = httpx.get(f"{base}/api/status", auth=(ADMIN_USER, "guess"))
    missing = httpx.get(f"{base}/api/reload")
    right = httpx.get(f"{base}/api/status", auth=(ADMIN_USER, ADMIN_PASSWORD))

    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Basic")
    assert missing.status_code == 401
    assert right.status_code == 200
    assert httpx.get(f"{base}/healthz").status_code == 200


def test_status_lists_proxies_in_frpc_shape(
    tmp_path: Path, echo_port: int, start_frpc: Callable[..., Frpc]
) -> None:
    admin_port, port_a, port_b = free_port(), free_port(), free_port()
    config = tmp_path / "frpc.toml"
    proxies = proxy_toml("b-ide", echo_port, port_b) + proxy_toml("a-ide", echo_port, port_a)
    config.write_text(main_toml(admin_port, [], proxies))
    frpc = start_frpc(config, admin_port)

    body = frpc.admin.get("/api/status").json()

    assert list(body) == ["tcp"]
    assert [entry["name"] for entry in body["tcp"]] == ["a-ide", "b-ide"]
    assert body["tcp"][0] == {
        "name": "a-ide",
        "type": "tcp",
        "status": "running",
        "err": "",
        "local_addr": f"127.0.0.1:{echo_port}",
        "plugin": "",
        "remote_addr": f"127.0.0.1:{port_a}",
    }


def test_taken_remote_port_is_a_start_error_and_other_proxies_keep_working(
    tmp_path: Path, echo_port: int, start_frpc: Callable[..., Frpc]
) -> None:
    admin_port, free_remote = free_port(), free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        config = tmp_path / "frpc.toml"
        proxies = proxy_toml("blocked", echo_port, taken) + proxy_toml("fine", echo_port, free_remote)
        config.write_text(main_toml(admin_port, [], proxies))
        frpc = start_frpc(config, admin_port)

        status = frpc.status()

        assert status["blocked"]["status"] == "start error"
        assert "in use" in status["blocked"]["err"].lower()
        assert status["blocked"]["remote_addr"] == ""
        assert status["fine"]["status"] == "running"
        assert echo_through(free_remote, b"ok") == b"ok"


def test_start_error_is_retried_until_the_port_is_free(
    tmp_path: Path, echo_port: int, start_frpc: Callable[..., Frpc]
) -> None:
    admin_port = free_port()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    config = tmp_path / "frpc.toml"
    config.write_text(main_toml(admin_port, [], proxy_toml("late", echo_port, taken)))
    frpc = start_frpc(config, admin_port, env={"MOCK_FRPC_RETRY_SECONDS": "0.1"})
    assert frpc.status()["late"]["status"] == "start error"

    squatter.close()
    deadline = time.monotonic() + 5
    while frpc.status()["late"]["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.05)

    assert frpc.status()["late"]["status"] == "running"
    assert echo_through(taken, b"late") == b"late"


def test_http_proxy_is_a_start_error_in_the_mock(
    tmp_path: Path, echo_port: int, start_frpc: Callable[..., Frpc]
) -> None:
    admin_port = free_port()
    config = tmp_path / "frpc.toml"
    config.write_text(main_toml(admin_port, [], proxy_toml("web", echo_port, 0, proxy_type="http")))
    frpc = start_frpc(config, admin_port)

    entry = frpc.admin.get("/api/status").json()["http"][0]

    assert entry["status"] == "start error"
    assert "not supported by mock_frpc" in entry["err"]


def test_connection_to_a_dead_local_port_is_just_closed(
    tmp_path: Path, start_frpc: Callable[..., Frpc]
) -> None:
    admin_port, remote_port, dead_port = free_port(), free_port(), free_port()
    config = tmp_path / "frpc.toml"
    config.write_text(main_toml(admin_port, [], proxy_toml("ide", dead_port, remote_port)))
    start_frpc(config, admin_port)

    with socket.create_connection(("127.0.0.1", remote_port), timeout=5) as conn:
        assert conn.recv(100) == b""


def test_relative_includes_resolve_against_the_working_directory_like_frpc(
    tmp_path: Path, echo_port: int, start_frpc: Callable[..., Frpc]
) -> None:
    admin_port, remote_port = free_port(), free_port()
    (tmp_path / "proxies.d").mkdir()
    (tmp_path / "proxies.d" / "ide.toml").write_text(proxy_toml("ide", echo_port, remote_port))
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "frpc.toml"
    config.write_text(main_toml(admin_port, ["proxies.d/*.toml"]))  # the fixture runs it in tmp_path
    frpc = start_frpc(config, admin_port)

    assert frpc.status()["ide"]["status"] == "running"


def test_config_error_at_start_exits_1_with_a_message(tmp_path: Path) -> None:
    config = tmp_path / "frpc.toml"
    config.write_text('[[proxies]]\nname = "ide"\ntype = "tcp"\nremotePort = 6000\n')

    result = subprocess.run(
        [sys.executable, "-m", "sdd.mock_bin.mock_frpc", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=10,
    )

    assert result.returncode == 1
    assert "localPort" in result.stderr


def test_sigterm_exits_0(tmp_path: Path, echo_port: int, start_frpc: Callable[..., Frpc]) -> None:
    admin_port, remote_port = free_port(), free_port()
    config = tmp_path / "frpc.toml"
    config.write_text(main_toml(admin_port, [], proxy_toml("ide", echo_port, remote_port)))
    frpc = start_frpc(config, admin_port)

    frpc.process.send_signal(signal.SIGTERM)

    assert frpc.process.wait(timeout=10) == 0
    _, err = frpc.process.communicate(timeout=10)
    assert "tunnel-token" not in err
    assert ADMIN_PASSWORD not in err
