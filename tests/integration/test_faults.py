"""Faults survived, with real processes: SIGKILLed servers and agents, dying IDEs, revoked agents,
and frps admitting only what the control plane allows (docs/reliability.md lists each)."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import tomli_w

from sdd.install import find_frpc, find_frps
from sdd.server.frps import FrpsOptions, FrpsProcess
from support import AgentProcess, Api, ServerProcess, free_port, session_processes, wait_for

pytestmark = pytest.mark.integration

AgentFactory = Callable[..., AgentProcess]
FRPS, FRPC = find_frps(), find_frpc()
needs_frp = pytest.mark.skipif(FRPS is None or FRPC is None, reason="run `sdd runtime install` first")


def test_a_server_killed_while_sessions_start_converges_after_restart(
    server: ServerProcess, admin: Api, agent_factory: AgentFactory
) -> None:
    agent_factory(server, admin.enrollment_token(), "node")
    admin.wait_agent_online()
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        ids = [r.json()["id"] for r in pool.map(lambda _: admin.post("/api/sessions", json={}), range(20))]
    server.kill()  # SIGKILL, mid-start
    time.sleep(1)
    server.start()
    api = Api(server.url)
    final = [api.wait_session(i, "ACTIVE", "FAILED", timeout=90) for i in ids]
    for session in final:
        assert session["status"] == "ACTIVE" or session["status_reason"], session
    # No session ends with two IDEs, and every ACTIVE one has exactly one.
    for session in final:
        ides = [p for p in session_processes(session["id"]) if "mock_code_server" in " ".join(p.cmdline())]
        assert len(ides) == (1 if session["status"] == "ACTIVE" else 0), session
    assert sum(s["status"] == "ACTIVE" for s in final) >= 1


def test_a_killed_agent_stops_what_it_left_running_and_the_server_agrees(
    server: ServerProcess, admin: Api, agent_factory: AgentFactory
) -> None:
    first = agent_factory(server, admin.enrollment_token(), "node")
    admin.wait_agent_online()
    ids = [admin.post("/api/sessions", json={}).json()["id"] for _ in range(2)]
    sessions = [admin.wait_session(i, "ACTIVE") for i in ids]
    left = [p for i in ids for p in session_processes(i)] + [
        p for p in first.descendants() if "mock_frpc" in " ".join(p.cmdline())
    ]
    assert len(left) >= 3
    first.kill()  # SIGKILL: the IDEs and frpc are orphaned
    assert all(p.is_running() for p in left)

    again = AgentProcess(server.url, first.runtime_dir, None, "node").start()
    try:
        _gone, alive = psutil.wait_procs(left, timeout=20)
        assert alive == []
        for session in sessions:
            failed = admin.wait_session(session["id"], "FAILED", timeout=30)
            assert "no longer running" in failed["status_reason"]
        # The node serves new sessions on the same ports' range again.
        fresh = admin.post("/api/sessions", json={}).json()
        assert admin.wait_session(fresh["id"], "ACTIVE", "FAILED")["status"] == "ACTIVE"
    finally:
        again.stop()


def test_an_ide_that_dies_under_a_session_is_reported_with_its_exit_status(
    server: ServerProcess, admin: Api, agent_factory: AgentFactory
) -> None:
    agent_factory(server, admin.enrollment_token(), "node")
    admin.wait_agent_online()
    session = admin.post("/api/sessions", json={}).json()
    admin.wait_session(session["id"], "ACTIVE")
    (ide,) = [p for p in session_processes(session["id"]) if "mock_code_server" in " ".join(p.cmdline())]
    ide.send_signal(signal.SIGKILL)
    failed = admin.wait_session(session["id"], "FAILED", timeout=10)
    assert "exited with status -9" in failed["status_reason"]


# -- frps admits only enrolled agents, and only their sessions' ports -------------------------

PLUGIN_SECRET = "plugin-secret-for-tests"
FRP_TOKEN = "frp-token-for-tests"


@pytest.fixture
def guarded(tmp_path: Path, shared_env: dict[str, str]) -> Iterator[tuple[ServerProcess, FrpsProcess]]:
    """A server and a real frps that asks it (through the plugin hook) before admitting anything."""
    assert FRPS is not None
    server_port = free_port()
    options = FrpsOptions(
        "127.0.0.1", free_port(), FRP_TOKEN, 26000, 26999,
        plugin_addr=f"127.0.0.1:{server_port}", plugin_secret=PLUGIN_SECRET,
    )  # fmt: skip
    frps = FrpsProcess(FRPS.argv, tmp_path / "frps", options).start()
    env = shared_env | {
        "SDD_FRP_SERVER_PORT": str(options.bind_port),
        "SDD_FRP_TOKEN": FRP_TOKEN,
        "SDD_FRP_PLUGIN_SECRET": PLUGIN_SECRET,
        "SDD_REMOTE_PORT_MIN": "26000",
        "SDD_REMOTE_PORT_MAX": "26999",
    }
    server = ServerProcess(tmp_path / "server", port=server_port, env=env).start()
    yield server, frps
    server.stop()
    frps.stop()


def rogue_frpc(
    tmp_path: Path, frps: FrpsProcess, remote_port: int, metadatas: dict[str, str]
) -> subprocess.Popen[bytes]:
    assert FRPC is not None
    config = tmp_path / f"rogue-{remote_port}.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "serverAddr": "127.0.0.1",
                "serverPort": frps.options.bind_port,
                "loginFailExit": False,
                "auth": {"method": "token", "token": FRP_TOKEN},
                "metadatas": metadatas,
                "proxies": [
                    {
                        "name": f"rogue-{remote_port}",
                        "type": "tcp",
                        "localIP": "127.0.0.1",
                        "localPort": frps.options.bind_port,
                        "remotePort": remote_port,
                    }
                ],
            }
        )
    )
    log = (tmp_path / f"rogue-{remote_port}.log").open("wb")
    return subprocess.Popen([*FRPC.argv, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)


def refused(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.HTTPError:
        return True
    return False


@needs_frp
def test_frps_admits_only_enrolled_agents_and_only_their_sessions_ports(
    tmp_path: Path, guarded: tuple[ServerProcess, FrpsProcess], agent_factory: AgentFactory
) -> None:
    server, frps = guarded
    admin = Api(server.url)
    agent = agent_factory(server, admin.enrollment_token(), "node", tunnel="real")
    agent_id = admin.wait_agent_online()["id"]
    session = admin.post("/api/sessions", json={}).json()
    active = admin.wait_session(session["id"], "ACTIVE", "FAILED")
    assert active["status"] == "ACTIVE", active["status_reason"]
    assert httpx.get(f"{active['url']}healthz", timeout=5).status_code == 200

    secret = json.loads((agent.runtime_dir / "credential.json").read_text())["credential"]
    stranger = rogue_frpc(tmp_path, frps, 26990, {"agent_id": "nobody", "credential": "sdda_guess"})
    insider = rogue_frpc(tmp_path, frps, 26991, {"agent_id": agent_id, "credential": secret})
    try:
        wait_for(
            lambda: "not an enrolled SDD agent" in (tmp_path / "rogue-26990.log").read_text(),
            15,
            what="frps to refuse an unenrolled frpc",
        )
        wait_for(
            lambda: "not allocated to a live session" in (tmp_path / "rogue-26991.log").read_text(),
            15,
            what="frps to refuse a port the agent was not given",
        )
        assert refused(26990) and refused(26991)
    finally:
        stranger.kill()
        insider.kill()

    # Revoked: the credential dies at once, the session fails, the agent exits, frps refuses it.
    assert admin.client.delete(f"/api/agents/{agent_id}").status_code == 204
    failed = admin.wait_session(session["id"], "FAILED", timeout=10)
    assert "revoked" in failed["status_reason"]
    assert agent.process is not None and agent.process.wait(30) == 3
    again = rogue_frpc(tmp_path, frps, 26992, {"agent_id": agent_id, "credential": secret})
    try:
        wait_for(lambda: "revoked" in (tmp_path / "rogue-26992.log").read_text(), 15, what="refusal")
    finally:
        again.kill()


def test_no_secret_appears_in_any_log_file(
    tmp_path: Path, server: ServerProcess, admin: Api, agent_factory: AgentFactory
) -> None:
    from support import ADMIN_PASSWORD

    token = admin.enrollment_token()
    agent = agent_factory(server, token, "node")
    admin.wait_agent_online()
    alice = admin.create_user("alice", "alice-password-123")
    admin.client.post("/api/auth/login", json={"username": "alice", "password": "a-wrong-guess-123"})
    sessions = [alice.post("/api/sessions", json={}).json() for _ in range(3)]
    sessions = [alice.wait_session(s["id"], "ACTIVE") for s in sessions]
    for s in sessions:
        assert (
            "Mock Code Server is running..."
            in httpx.post(
                f"{s['url']}login", data={"password": s["password"]}, follow_redirects=True, timeout=10
            ).text
        )
    alice.post(f"/api/sessions/{sessions[0]['id']}/stop")
    alice.wait_session(sessions[0]["id"], "STOPPED")
    agent.stop()
    server.stop()

    credential = json.loads((agent.runtime_dir / "credential.json").read_text())["credential"]
    secrets = {
        "admin password": ADMIN_PASSWORD,
        "user password": "alice-password-123",
        "a wrong guess": "a-wrong-guess-123",
        "enrollment token": token,
        "agent credential": credential,
        "login token": alice.client.headers["Authorization"].removeprefix("Bearer "),
    } | {f"session password {i}": s["password"] for i, s in enumerate(sessions)}
    logs = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".log"]
    assert len(logs) >= 5, logs  # server, agent, frpc, and each IDE
    for log in logs:
        text = log.read_text(errors="replace")
        for what, secret in secrets.items():
            assert secret not in text, f"{what} appears in {log}"
