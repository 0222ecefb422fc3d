"""The HTTP API in one process: who may do what, and the documented errors for bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from conftest import enroll, login

pytestmark = pytest.mark.asyncio


async def make_user(client: httpx.AsyncClient, admin: dict[str, str], name: str) -> dict[str, str]:
    response = await client.post(
        "/api/users", json={"username": name, "password": "password-1"}, headers=admin
    )
    assert response.status_code == 201, response.text
    return await login(client, name, "password-1")


# -- auth ---------------------------------------------------------------------------------


async def test_health_needs_no_login(app_client: httpx.AsyncClient) -> None:
    assert (await app_client.get("/api/health")).status_code == 200


async def test_login_and_me(app_client: httpx.AsyncClient) -> None:
    headers = await login(app_client)
    me = (await app_client.get("/api/auth/me", headers=headers)).json()
    assert me["username"] == "admin" and me["role"] == "admin"


@pytest.mark.parametrize(("username", "password"), [("admin", "wrong"), ("nobody", "whatever")])
async def test_a_bad_login_says_the_same_whatever_was_wrong(
    app_client: httpx.AsyncClient, username: str, password: str
) -> None:
    response = await app_client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 401
    assert response.json() == {"detail": "wrong username or password"}


async def test_endpoints_refuse_anonymous_callers(app_client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/agents"),
        ("GET", "/api/sessions"),
        ("POST", "/api/sessions"),
        ("GET", "/api/auth/me"),
        ("POST", "/api/enrollment-tokens"),
        ("GET", "/api/users"),
        ("GET", "/api/events"),
    ]:
        response = await app_client.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert "detail" in response.json()


async def test_logout_revokes_the_token(app_client: httpx.AsyncClient) -> None:
    headers = await login(app_client)
    assert (await app_client.post("/api/auth/logout", headers=headers)).status_code == 204
    assert (await app_client.get("/api/auth/me", headers=headers)).status_code == 401


async def test_disabling_a_user_ends_their_access_at_once(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    bob = await make_user(app_client, admin, "bob")
    users = (await app_client.get("/api/users", headers=admin)).json()
    bob_id = next(u["id"] for u in users if u["username"] == "bob")
    await app_client.patch(f"/api/users/{bob_id}", json={"is_active": False}, headers=admin)
    assert (await app_client.get("/api/auth/me", headers=bob)).status_code == 401


async def test_registration_is_closed_by_default(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post("/api/auth/register", json={"username": "eve", "password": "password-1"})
    assert response.status_code == 403
    assert "ask an admin" in response.json()["detail"]


async def test_only_admins_manage_users_and_tokens(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    bob = await make_user(app_client, admin, "bob")
    for method, path in [
        ("GET", "/api/users"),
        ("POST", "/api/enrollment-tokens"),
        ("GET", "/api/enrollment-tokens"),
        ("GET", "/api/sessions?all=true"),
    ]:
        response = await app_client.request(method, path, headers=bob, json={} if method == "POST" else None)
        if path.endswith("all=true"):
            assert response.status_code == 200 and response.json() == []
        else:
            assert response.status_code == 403, (method, path)


async def test_a_taken_username_is_a_409(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    await make_user(app_client, admin, "bob")
    response = await app_client.post(
        "/api/users", json={"username": "bob", "password": "password-2"}, headers=admin
    )
    assert response.status_code == 409 and "taken" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "../etc", "password": "password-1"},
        {"username": "ok", "password": "short"},
        {"username": "ok", "password": 12345678},
        {"username": "ok"},
    ],
)
async def test_bad_user_input_is_a_422_with_the_field(
    app_client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    admin = await login(app_client)
    response = await app_client.post("/api/users", json=body, headers=admin)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("invalid input: ")


async def test_an_oversized_body_is_a_413(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(
        "/api/auth/login", content=b"x" * 200_000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_unknown_api_paths_are_json_404s(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/api/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")


# -- agents and enrollment ----------------------------------------------------------------


async def test_an_agent_registers_and_shows_online_with_its_metrics(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    await enroll(app_client, admin, "box")
    agents = (await app_client.get("/api/agents", headers=admin)).json()
    assert [(a["name"], a["status"], a["cpu_percent"]) for a in agents] == [("box", "ONLINE", 12.5)]


async def test_a_bad_enrollment_token_is_refused(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(
        "/api/agent/register",
        json={
            "enrollment_token": "sdde_not-a-real-token",
            "node_key": "k" * 32,
            "name": "x",
            "hostname": "x",
        },
    )
    assert response.status_code == 401
    assert "ask an admin" in response.json()["detail"]


async def test_a_single_use_token_enrols_one_node(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    token = (await app_client.post("/api/enrollment-tokens", json={"single_use": True}, headers=admin)).json()
    body = {"enrollment_token": token["token"], "name": "a", "hostname": "a"}
    first = await app_client.post("/api/agent/register", json=body | {"node_key": "1" * 32})
    again = await app_client.post("/api/agent/register", json=body | {"node_key": "1" * 32})
    other = await app_client.post("/api/agent/register", json=body | {"node_key": "2" * 32})
    assert first.status_code == 200 and again.status_code == 200 and other.status_code == 401
    # The same node registering again keeps its identity, with a fresh credential.
    assert first.json()["agent_id"] == again.json()["agent_id"]
    assert first.json()["credential"] != again.json()["credential"]


async def test_a_revoked_enrollment_token_enrols_nobody(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    token = (await app_client.post("/api/enrollment-tokens", json={}, headers=admin)).json()
    assert (await app_client.delete(f"/api/enrollment-tokens/{token['id']}", headers=admin)).json()["revoked"]
    response = await app_client.post(
        "/api/agent/register",
        json={"enrollment_token": token["token"], "node_key": "3" * 32, "name": "a", "hostname": "a"},
    )
    assert response.status_code == 401


async def test_the_token_comes_with_a_ready_command(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    token = (await app_client.post("/api/enrollment-tokens", json={"note": "lab"}, headers=admin)).json()
    assert token["agent_command"] == f"sdd agent --server http://test --enrollment-token {token['token']}"
    listed = (await app_client.get("/api/enrollment-tokens", headers=admin)).json()
    assert "token" not in listed[0] and listed[0]["note"] == "lab"


async def test_agent_endpoints_refuse_a_bad_credential(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    forged = {"Authorization": f"Bearer {agent['X-Agent-Id']}:sdda_forged"}
    for path in ("/api/agent/heartbeat", "/api/agent/tasks/poll"):
        response = await app_client.post(path, json={"metrics": {}}, headers=forged)
        assert response.status_code == 401
    # A person's login token is not an agent credential either.
    assert (await app_client.post("/api/agent/tasks/poll", headers=admin)).status_code == 401


# -- sessions -----------------------------------------------------------------------------


async def test_no_online_agent_is_a_409_that_says_how_to_enrol(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    response = await app_client.post("/api/sessions", json={}, headers=admin)
    assert response.status_code == 409
    assert "enrollment token" in response.json()["detail"]


async def test_an_unknown_agent_is_a_404(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    response = await app_client.post("/api/sessions", json={"agent_id": "nope"}, headers=admin)
    assert response.status_code == 404 and "not found" in response.json()["detail"]


async def test_an_offline_agent_is_a_409(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    ctx = app_client.app.state.context  # type: ignore[attr-defined]
    ctx.presence.beats.clear()  # as if its heartbeats stopped long ago
    response = await app_client.post("/api/sessions", json={"agent_id": agent["X-Agent-Id"]}, headers=admin)
    assert response.status_code == 409 and "OFFLINE" in response.json()["detail"]


async def test_a_session_is_created_pending_with_a_port_and_a_password(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    response = await app_client.post("/api/sessions", json={}, headers=admin)
    assert response.status_code == 201
    session = response.json()
    assert session["status"] == "PENDING" and session["agent_id"] == agent["X-Agent-Id"]
    assert 20000 <= session["remote_port"] <= 20999
    assert len(session["password"]) >= 20


async def test_the_least_loaded_agent_is_chosen(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    first = await enroll(app_client, admin, "one")
    second = await enroll(app_client, admin, "two")
    chosen = [
        (await app_client.post("/api/sessions", json={}, headers=admin)).json()["agent_id"] for _ in range(4)
    ]
    assert sorted(chosen) == sorted([first["X-Agent-Id"], second["X-Agent-Id"]] * 2)


async def test_people_see_and_stop_only_their_own_sessions(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    await enroll(app_client, admin)
    alice = await make_user(app_client, admin, "alice")
    bob = await make_user(app_client, admin, "bob")
    session = (await app_client.post("/api/sessions", json={}, headers=alice)).json()
    assert (await app_client.get(f"/api/sessions/{session['id']}", headers=bob)).status_code == 404
    assert (await app_client.post(f"/api/sessions/{session['id']}/stop", headers=bob)).status_code == 404
    assert (await app_client.get("/api/sessions", headers=bob)).json() == []
    # ...while an admin sees everyone's.
    assert (await app_client.get(f"/api/sessions/{session['id']}", headers=admin)).status_code == 200
    everyone = (await app_client.get("/api/sessions?all=true", headers=admin)).json()
    assert [s["id"] for s in everyone] == [session["id"]]


async def test_stopping_a_session_no_agent_picked_up_ends_it_at_once(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    await enroll(app_client, admin)
    session = (await app_client.post("/api/sessions", json={}, headers=admin)).json()
    stopped = await app_client.post(f"/api/sessions/{session['id']}/stop", headers=admin)
    assert stopped.status_code == 202 and stopped.json()["status"] == "STOPPED"
    again = await app_client.post(f"/api/sessions/{session['id']}/stop", headers=admin)
    assert again.status_code == 409 and "already STOPPED" in again.json()["detail"]


async def test_a_user_may_hold_only_so_many_sessions(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    await enroll(app_client, admin)
    app_client.app.state.context.settings.max_sessions_per_user = 2  # type: ignore[attr-defined]
    for _ in range(2):
        assert (await app_client.post("/api/sessions", json={}, headers=admin)).status_code == 201
    response = await app_client.post("/api/sessions", json={}, headers=admin)
    assert response.status_code == 429 and "stop one first" in response.json()["detail"]


async def test_an_exhausted_port_range_is_a_409(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    await enroll(app_client, admin)
    settings = app_client.app.state.context.settings  # type: ignore[attr-defined]
    settings.remote_port_min = settings.remote_port_max = 20500
    assert (await app_client.post("/api/sessions", json={}, headers=admin)).status_code == 201
    response = await app_client.post("/api/sessions", json={}, headers=admin)
    assert response.status_code == 409 and "SDD_REMOTE_PORT" in response.json()["detail"]


async def test_concurrent_creations_get_distinct_ports(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    await enroll(app_client, admin)
    settings = app_client.app.state.context.settings  # type: ignore[attr-defined]
    settings.remote_port_min, settings.remote_port_max = 21000, 21019  # 20 ports for 20 sessions
    responses = await asyncio.gather(
        *(app_client.post("/api/sessions", json={}, headers=admin) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [201] * 20
    assert len({r.json()["remote_port"] for r in responses}) == 20


async def test_a_session_nobody_picks_up_fails_at_its_deadline(app_client: httpx.AsyncClient) -> None:
    from sdd.server.services.reconciler import enforce_deadlines

    admin = await login(app_client)
    agent = await enroll(app_client, admin, "box")
    ctx = app_client.app.state.context  # type: ignore[attr-defined]
    ctx.settings.pending_timeout = 0.1
    session = (await app_client.post("/api/sessions", json={}, headers=admin)).json()
    await asyncio.sleep(0.2)
    assert session["id"] in await enforce_deadlines(ctx)
    failed = (await app_client.get(f"/api/sessions/{session['id']}", headers=admin)).json()
    assert failed["status"] == "FAILED" and "did not pick up the start task" in failed["status_reason"]
    # Its task is cancelled: an agent coming back later does not start a dead session.
    assert (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"] == []


async def test_admin_can_force_a_stuck_session_to_failed(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    await enroll(app_client, admin)
    session = (await app_client.post("/api/sessions", json={}, headers=admin)).json()
    response = await app_client.post(
        f"/api/sessions/{session['id']}/fail", json={"reason": "stuck"}, headers=admin
    )
    assert response.status_code == 200
    assert response.json()["status"] == "FAILED" and response.json()["status_reason"] == "stuck"


async def test_metrics_are_for_admins_and_count_what_happens(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    bob = await make_user(app_client, admin, "bob")
    assert (await app_client.get("/metrics")).status_code == 401
    assert (await app_client.get("/metrics", headers=bob)).status_code == 403
    session = (await app_client.post("/api/sessions", json={}, headers=admin)).json()
    task = (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"][0]
    await app_client.post(
        f"/api/agent/tasks/{task['id']}/result", json={"ok": True, "local_port": 9}, headers=agent
    )
    text = (await app_client.get("/metrics", headers=admin)).text
    assert 'sdd_sessions{status="ACTIVE"} 1.0' in text
    assert "sdd_agents_online 1.0" in text
    assert 'sdd_task_dispatch_seconds_count{kind="start_code_server"} 1.0' in text
    assert "sdd_session_start_seconds_count 1.0" in text
    assert "sdd_heartbeats_total 1.0" in text
    assert session["id"]


async def test_metrics_show_open_event_streams_and_events_a_slow_one_lost(
    app_client: httpx.AsyncClient,
) -> None:
    from sdd.server.services.broker import EVENT_QUEUE_SIZE

    admin = await login(app_client)
    broker = app_client.app.state.context.broker  # type: ignore[attr-defined]
    async with broker.subscribe():  # a browser that reads nothing
        for _ in range(EVENT_QUEUE_SIZE + 3):
            broker.deliver_local("*\ndata: {}\n\n")
        text = (await app_client.get("/metrics", headers=admin)).text
    assert "sdd_event_streams 1.0" in text
    assert "sdd_events_dropped_total 3.0" in text


async def test_a_scraper_reads_metrics_with_its_token(app_client: httpx.AsyncClient) -> None:
    from pydantic import SecretStr

    app_client.app.state.context.settings.metrics_token = SecretStr("scrape-token")  # type: ignore[attr-defined]
    assert (
        await app_client.get("/metrics", headers={"Authorization": "Bearer scrape-token"})
    ).status_code == 200
    assert (await app_client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401


async def test_an_oversized_chunked_body_is_a_413_too(app_client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"x" * 4096

    response = await app_client.post(
        "/api/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "over" in response.json()["detail"]


async def test_repeated_failed_logins_are_throttled_per_account(app_client: httpx.AsyncClient) -> None:
    for _ in range(10):
        wrong = await app_client.post("/api/auth/login", json={"username": "admin", "password": "nope"})
        assert wrong.status_code == 401
    throttled = await app_client.post("/api/auth/login", json={"username": "admin", "password": "nope"})
    assert throttled.status_code == 429 and "try again in" in throttled.json()["detail"]
    # Even the right password waits: the throttle is checked before the password.
    right = await app_client.post(
        "/api/auth/login", json={"username": "admin", "password": "admin-password-for-tests"}
    )
    assert right.status_code == 429


async def test_the_audit_log_records_who_did_what_for_admins_only(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    await enroll(app_client, admin, "box")
    bob = await make_user(app_client, admin, "bob")
    await app_client.post("/api/auth/login", json={"username": "bob", "password": "wrong-one"})
    session = (await app_client.post("/api/sessions", json={}, headers=bob)).json()
    await app_client.post(f"/api/sessions/{session['id']}/stop", headers=bob)
    assert (await app_client.get("/api/audit", headers=bob)).status_code == 403
    events = (await app_client.get("/api/audit?limit=50", headers=admin)).json()
    seen = {(e["actor"], e["action"]) for e in events}
    assert {
        ("admin", "auth.login"),
        ("admin", "user.create"),
        ("bob", "auth.login_failed"),
        ("bob", "session.start"),
        ("bob", "session.stop"),
        ("agent:box", "agent.register"),
    } <= seen
    stops = (await app_client.get("/api/audit?action=session.stop", headers=admin)).json()
    assert [e["target"] for e in stops] == [session["id"]]
    # No secret ever lands in the audit log.
    text = str(events)
    assert session["password"] not in text and "password-1" not in text


async def test_an_out_of_range_number_is_a_422_not_a_crash(app_client: httpx.AsyncClient) -> None:
    # Found by schemathesis: a page cursor past the 32-bit id column was a 500 (PostgreSQL; 64 bits on SQLite).
    admin = await login(app_client)
    for cursor in ("1982837827821808941793280", "9223372036854775806"):
        response = await app_client.get(f"/api/audit?before={cursor}", headers=admin)
        assert response.status_code == 422


async def test_text_the_database_cannot_store_is_a_422_not_a_500(app_client: httpx.AsyncClient) -> None:
    """PostgreSQL refuses NUL in text: such input is turned away with a reason before it gets there
    (schemathesis found the 500 on POST /api/sessions)."""
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    cases = [
        ("POST", "/api/sessions", {"agent_id": "a\u0000b"}, admin, "agent_id"),
        ("POST", "/api/enrollment-tokens", {"note": "lab\u0000"}, admin, "note"),
        ("POST", "/api/auth/login", {"username": "ad\u0000min", "password": "x"}, {}, "username"),
        ("POST", "/api/agent/heartbeat", {"metrics": {}, "version": "1\u0000"}, agent, "version"),
        ("POST", "/api/agent/tasks/poll?wait=0", {"metrics": {}, "version": "1\u0000"}, agent, "version"),
        ("GET", "/api/sessions/a%00b", None, admin, "session_id"),
        ("POST", "/api/agent/tasks/a%00b/ack", None, agent, "task_id"),
        ("GET", "/api/audit?action=a%00b", None, admin, "action"),
        # Infinity would be stored as JSON PostgreSQL refuses, failing a whole presence flush.
        ("POST", "/api/agent/tasks/poll?wait=0", {"metrics": {"load_1": "Infinity"}}, agent, "load_1"),
    ]
    for method, path, body, headers, field in cases:
        response = await app_client.request(method, path, json=body, headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert field in response.json()["detail"], (path, response.text)
