"""The agent's side of the API in one process: the long-poll (and the heartbeat it carries), task
leases, acknowledgements and results, and what a heartbeat makes the server do."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from conftest import enroll, login

pytestmark = pytest.mark.asyncio


async def test_a_task_reaches_a_waiting_poll_in_milliseconds(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    poll = asyncio.create_task(app_client.post("/api/agent/tasks/poll?wait=10", headers=agent))
    await asyncio.sleep(0.2)
    created = time.monotonic()
    await app_client.post("/api/sessions", json={}, headers=admin)
    tasks = (await poll).json()["tasks"]
    assert time.monotonic() - created < 1.0
    assert [t["kind"] for t in tasks] == ["start_code_server"]
    assert tasks[0]["delivery"] == 1 and len(tasks[0]["payload"]["password"]) >= 20


async def test_an_empty_poll_returns_empty_after_its_wait(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    started = time.monotonic()
    response = await app_client.post("/api/agent/tasks/poll?wait=0.3", headers=agent)
    assert response.json() == {"tasks": [], "heartbeat": None}
    assert 0.25 <= time.monotonic() - started < 3


async def test_a_poll_can_carry_the_heartbeat(app_client: httpx.AsyncClient) -> None:
    """One connection per agent: the long-poll carries the heartbeat and answers it."""
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    started = time.monotonic()
    response = await app_client.post(
        "/api/agent/tasks/poll?wait=0.3", json={"metrics": {"cpu_percent": 77.0}}, headers=agent
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tasks"] == [] and body["heartbeat"]["stop_sessions"] == []
    assert body["heartbeat"]["settings"]["heartbeat_interval"] > 0
    assert 0.25 <= time.monotonic() - started < 3  # it still waited for tasks
    listed = (await app_client.get("/api/agents", headers=admin)).json()
    assert [(a["status"], a["cpu_percent"]) for a in listed] == [("ONLINE", 77.0)]


async def test_a_poll_whose_heartbeat_lists_unwanted_sessions_answers_at_once(
    app_client: httpx.AsyncClient,
) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    started = time.monotonic()
    response = await app_client.post(
        "/api/agent/tasks/poll?wait=10",
        json={"metrics": {}, "sessions": [{"session_id": "deadbeef", "local_port": 1234, "healthy": True}]},
        headers=agent,
    )
    assert response.json()["heartbeat"]["stop_sessions"] == ["deadbeef"]
    assert time.monotonic() - started < 5


async def test_a_poll_with_a_malformed_heartbeat_is_a_422_with_the_reason(
    app_client: httpx.AsyncClient,
) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    response = await app_client.post(
        "/api/agent/tasks/poll?wait=0", json={"metrics": {"cpu_percent": "lots"}}, headers=agent
    )
    assert response.status_code == 422
    assert "cpu_percent" in response.json()["detail"]


async def test_an_unacknowledged_lease_is_delivered_again(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    app_client.app.state.context.settings.task_ack_timeout = 0.3  # type: ignore[attr-defined]
    await app_client.post("/api/sessions", json={}, headers=admin)
    first = (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"]
    assert (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"] == []
    await asyncio.sleep(0.4)
    again = (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"]
    assert [t["id"] for t in again] == [first[0]["id"]] and again[0]["delivery"] == 2


async def test_an_acknowledged_lease_is_not_delivered_again(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    app_client.app.state.context.settings.task_ack_timeout = 0.2  # type: ignore[attr-defined]
    session = (await app_client.post("/api/sessions", json={}, headers=admin)).json()
    task = (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"][0]
    assert (await app_client.post(f"/api/agent/tasks/{task['id']}/ack", headers=agent)).json() == {
        "state": "ACKED"
    }
    await asyncio.sleep(0.3)
    assert (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"] == []
    status = (await app_client.get(f"/api/sessions/{session['id']}", headers=admin)).json()["status"]
    assert status == "STARTING"


async def test_a_result_reported_twice_changes_nothing(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    session = (await app_client.post("/api/sessions", json={}, headers=admin)).json()
    task = (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"][0]
    ok = {"ok": True, "local_port": 4321}
    assert (
        await app_client.post(f"/api/agent/tasks/{task['id']}/result", json=ok, headers=agent)
    ).status_code == 200
    active = (await app_client.get(f"/api/sessions/{session['id']}", headers=admin)).json()
    assert active["status"] == "ACTIVE" and active["url"] == f"http://127.0.0.1:{session['remote_port']}/"
    # The same task failing afterwards (a confused or replayed report) does not undo it.
    failed = {"ok": False, "error": "boom"}
    response = await app_client.post(f"/api/agent/tasks/{task['id']}/result", json=failed, headers=agent)
    assert response.json() == {"state": "DONE"}
    assert (await app_client.get(f"/api/sessions/{session['id']}", headers=admin)).json() == active


async def test_a_failed_start_records_the_reason(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    session = (await app_client.post("/api/sessions", json={}, headers=admin)).json()
    task = (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"][0]
    await app_client.post(
        f"/api/agent/tasks/{task['id']}/result",
        json={"ok": False, "error": "exit status 3: no such file"},
        headers=agent,
    )
    failed = (await app_client.get(f"/api/sessions/{session['id']}", headers=admin)).json()
    assert failed["status"] == "FAILED"
    assert failed["status_reason"] == "the IDE failed to start: exit status 3: no such file"
    assert failed["password"] is None and failed["url"] is None


async def test_an_agent_cannot_take_or_report_another_agents_task(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    mine = await enroll(app_client, admin, "mine")
    other = await enroll(app_client, admin, "other")
    await app_client.post("/api/sessions", json={"agent_id": mine["X-Agent-Id"]}, headers=admin)
    assert (await app_client.post("/api/agent/tasks/poll?wait=0", headers=other)).json()["tasks"] == []
    task = (await app_client.post("/api/agent/tasks/poll?wait=0", headers=mine)).json()["tasks"][0]
    for path, body in (
        (f"/api/agent/tasks/{task['id']}/ack", None),
        (f"/api/agent/tasks/{task['id']}/result", {"ok": True, "local_port": 1}),
    ):
        response = await app_client.post(path, json=body, headers=other)
        assert response.status_code == 404


async def test_the_heartbeat_asks_a_node_to_stop_sessions_it_should_not_run(
    app_client: httpx.AsyncClient,
) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    beat = await app_client.post(
        "/api/agent/heartbeat",
        json={"metrics": {}, "sessions": [{"session_id": "deadbeef", "local_port": 1234, "healthy": True}]},
        headers=agent,
    )
    assert beat.json()["stop_sessions"] == ["deadbeef"]


async def test_an_active_session_the_node_no_longer_runs_fails_with_a_reason(
    app_client: httpx.AsyncClient,
) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin, "box")
    session = (await app_client.post("/api/sessions", json={}, headers=admin)).json()
    task = (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"][0]
    await app_client.post(
        f"/api/agent/tasks/{task['id']}/result", json={"ok": True, "local_port": 9}, headers=agent
    )
    # Reported running: fine. Then missing (after the settle interval): FAILED with the reason.
    running = [{"session_id": session["id"], "local_port": 9, "healthy": True}]
    await app_client.post("/api/agent/heartbeat", json={"metrics": {}, "sessions": running}, headers=agent)
    assert (await app_client.get(f"/api/sessions/{session['id']}", headers=admin)).json()[
        "status"
    ] == "ACTIVE"
    await asyncio.sleep(0.6)
    await app_client.post("/api/agent/heartbeat", json={"metrics": {}, "sessions": []}, headers=agent)
    # The reconciler's sweep (one query for every agent) notices.
    from sdd.server.services.agents import sweep_missing_sessions

    assert await sweep_missing_sessions(app_client.app.state.context) == [session["id"]]  # type: ignore[attr-defined]
    failed = (await app_client.get(f"/api/sessions/{session['id']}", headers=admin)).json()
    assert failed["status"] == "FAILED" and "no longer running on agent box" in failed["status_reason"]
