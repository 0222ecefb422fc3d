"""The whole chain with real processes over real sockets: `sdd server`, `sdd agent --mock`, the mock
IDE and the mock tunnel."""

from __future__ import annotations

import concurrent.futures
import re
import signal
import time
from collections.abc import Callable

import httpx
import psutil
import pytest

from support import AgentProcess, Api, FakeAgent, ServerProcess, session_processes, wait_for

pytestmark = pytest.mark.integration

AgentFactory = Callable[..., AgentProcess]


def open_ide(url: str, password: str) -> str:
    """Log in to the IDE behind a session link, as a browser would; returns the page."""
    with httpx.Client(base_url=url, timeout=10, follow_redirects=True) as browser:
        login_page = browser.get("/")
        assert "password" in login_page.text.lower()
        response = browser.post("/login", data={"password": password})
        assert response.status_code == 200, response.text
        return response.text


def test_a_person_starts_uses_and_stops_a_session(
    server: ServerProcess, admin: Api, agent_factory: AgentFactory
) -> None:
    agent_factory(server, admin.enrollment_token(), "node-1")
    online = admin.wait_agent_online("node-1")
    assert online["cpu_percent"] >= 0 and online["memory_total"] > 0 and online["hostname"]

    created = admin.post("/api/sessions", json={"agent_id": online["id"]})
    assert created.status_code == 201, created.text
    session = admin.wait_session(created.json()["id"], "ACTIVE", "FAILED")
    assert session["status"] == "ACTIVE", session["status_reason"]
    assert session["url"] == f"http://127.0.0.1:{session['remote_port']}/"

    page = open_ide(session["url"], session["password"])
    assert "Mock Code Server is running..." in page
    with httpx.Client(base_url=session["url"], follow_redirects=True) as browser:
        wrong = browser.post("/login", data={"password": "not-the-password"})
        assert wrong.status_code == 401

    assert len(session_processes(session["id"])) >= 1
    stop = admin.post(f"/api/sessions/{session['id']}/stop")
    assert stop.status_code == 202
    stopped = admin.wait_session(session["id"], "STOPPED", "FAILED")
    assert stopped["status"] == "STOPPED" and stopped["url"] is None and stopped["password"] is None
    # The tunnel is closed and the IDE is gone.
    with pytest.raises(httpx.ConnectError):
        httpx.get(session["url"], timeout=2)
    wait_for(lambda: not session_processes(session["id"]), 10, what="IDE processes to exit")


def test_twenty_sessions_started_at_once_all_become_active_and_all_stop_cleanly(
    server: ServerProcess, admin: Api, agent_factory: AgentFactory
) -> None:
    agent = agent_factory(server, admin.enrollment_token(), "node-1")
    admin.wait_agent_online()
    idle = {p.pid for p in agent.descendants()}

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: admin.post("/api/sessions", json={}), range(20)))
    assert [r.status_code for r in responses] == [201] * 20
    ids = [r.json()["id"] for r in responses]
    sessions = [admin.wait_session(i, "ACTIVE", "FAILED", timeout=60) for i in ids]
    assert [s["status"] for s in sessions] == ["ACTIVE"] * 20, [s["status_reason"] for s in sessions]
    assert len({s["remote_port"] for s in sessions}) == 20
    assert len({s["password"] for s in sessions}) == 20
    for s in sessions[:3]:
        assert "Mock Code Server is running..." in open_ide(s["url"], s["password"])

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        stops = list(pool.map(lambda i: admin.post(f"/api/sessions/{i}/stop"), ids))
    assert [r.status_code for r in stops] == [202] * 20
    final = [admin.wait_session(i, "STOPPED", "FAILED", timeout=60) for i in ids]
    assert [s["status"] for s in final] == ["STOPPED"] * 20
    # Nothing is left behind: only the agent's own tunnel client remains.
    wait_for(lambda: {p.pid for p in agent.descendants()} <= idle, 15, what="session processes to exit")


def test_stopping_the_agent_leaves_no_process_behind(
    server: ServerProcess, admin: Api, agent_factory: AgentFactory
) -> None:
    agent = agent_factory(server, admin.enrollment_token(), "node-1")
    admin.wait_agent_online()
    session = admin.post("/api/sessions", json={}).json()
    admin.wait_session(session["id"], "ACTIVE")
    children = agent.descendants()
    assert len(children) >= 2  # the tunnel client and the IDE
    agent.stop()
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_a_restarted_agent_keeps_its_identity_without_a_token(
    server: ServerProcess, admin: Api, agent_factory: AgentFactory
) -> None:
    first = agent_factory(server, admin.enrollment_token(), "node-1")
    agent_id = admin.wait_agent_online("node-1")["id"]
    first.stop()
    credential = first.runtime_dir / "credential.json"
    assert credential.stat().st_mode & 0o777 == 0o600

    again = AgentProcess(server.url, first.runtime_dir, None, "node-1").start()
    try:
        admin.wait_agent_online("node-1")
        assert [a["id"] for a in admin.get("/api/agents").json()] == [agent_id]
    finally:
        again.stop()


def test_an_agent_that_stops_beating_goes_offline_and_its_sessions_come_back_with_it(
    server: ServerProcess, admin: Api, agent_factory: AgentFactory
) -> None:
    agent = agent_factory(server, admin.enrollment_token(), "node-1")
    admin.wait_agent_online("node-1")
    session = admin.post("/api/sessions", json={}).json()
    active = admin.wait_session(session["id"], "ACTIVE")
    assert agent.process is not None
    agent.process.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: admin.get("/api/agents").json()[0]["status"] == "OFFLINE", 15, what="OFFLINE")
        lost = admin.wait_session(session["id"], "LOST", timeout=10)
        assert "agent node-1 is offline" in lost["status_reason"]
        assert lost["password"] == active["password"]  # still the owner's, still reserved
    finally:
        agent.process.send_signal(signal.SIGCONT)
    admin.wait_agent_online("node-1")
    back = admin.wait_session(session["id"], "ACTIVE", timeout=15)
    assert back["status_reason"] is None and back["url"] == active["url"]
    assert "Mock Code Server is running..." in open_ide(back["url"], back["password"])


def test_the_agent_rides_out_a_server_restart(
    server: ServerProcess, admin: Api, agent_factory: AgentFactory
) -> None:
    agent = agent_factory(server, admin.enrollment_token(), "node-1")
    admin.wait_agent_online("node-1")
    server.stop()
    time.sleep(1.5)
    server.start()
    api = Api(server.url)
    api.wait_agent_online("node-1")
    session = api.post("/api/sessions", json={}).json()
    assert api.wait_session(session["id"], "ACTIVE", "FAILED")["status"] == "ACTIVE"
    assert agent.process is not None and agent.process.poll() is None


def test_people_cannot_see_or_stop_each_others_sessions(
    server: ServerProcess, admin: Api, agent_factory: AgentFactory
) -> None:
    agent_factory(server, admin.enrollment_token(), "node-1")
    admin.wait_agent_online()
    alice = admin.create_user("alice")
    bob = admin.create_user("bob")
    session = alice.post("/api/sessions", json={}).json()
    alice.wait_session(session["id"], "ACTIVE")
    assert bob.get(f"/api/sessions/{session['id']}").status_code == 404
    assert bob.post(f"/api/sessions/{session['id']}/stop").status_code == 404
    assert bob.get("/api/sessions").json() == []
    assert alice.session(session["id"])["status"] == "ACTIVE"


def test_an_agent_cannot_take_another_agents_tasks(server: ServerProcess, admin: Api) -> None:
    mine = FakeAgent(server.url, admin.enrollment_token(), "mine")
    other = FakeAgent(server.url, admin.enrollment_token(), "other")
    mine.heartbeat()
    other.heartbeat()
    admin.wait_agent_online("mine")
    session = admin.post("/api/sessions", json={"agent_id": mine.agent_id}).json()
    assert other.poll() == []
    task = mine.poll()[0]
    assert other.client.post(f"/api/agent/tasks/{task['id']}/ack").status_code == 404
    assert (
        other.client.post(
            f"/api/agent/tasks/{task['id']}/result", json={"ok": True, "local_port": 1}
        ).status_code
        == 404
    )
    assert admin.session(session["id"])["status"] == "PENDING"


def test_a_session_whose_agent_never_answers_fails_by_its_deadline(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(SDD_PENDING_TIMEOUT="1.5")
    admin = Api(server.url)
    silent = FakeAgent(server.url, admin.enrollment_token(), "silent")
    silent.heartbeat()
    admin.wait_agent_online("silent")
    session = admin.post("/api/sessions", json={}).json()
    failed = admin.wait_session(session["id"], "FAILED", timeout=10)
    assert re.search(r"did not pick up the start task within 1\.5 s", failed["status_reason"])


def test_bad_input_gets_the_documented_errors(server: ServerProcess, admin: Api) -> None:
    cases = [
        (admin.post("/api/sessions", json={"agent_id": "no-such-agent"}), 404),
        (admin.post("/api/sessions", json={"agent_id": 42}), 422),
        (admin.post("/api/sessions", json={"unexpected": 1}), 422),
        (
            admin.post("/api/sessions", content=b"{not json", headers={"content-type": "application/json"}),
            422,
        ),
        (admin.get("/api/sessions/nope"), 404),
        (admin.post("/api/sessions/nope/stop"), 404),
        (admin.post("/api/sessions", json={}), 409),  # no agent online
        (httpx.get(f"{server.url}/api/sessions"), 401),
        (admin.post("/api/auth/login", json={"username": "admin"}), 422),
    ]
    for response, expected in cases:
        assert response.status_code == expected, (response.request.url, response.text)
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]
