"""Every endpoint and every kind of caller, with the expected outcome.

The test fails when an endpoint exists without a row here: a new endpoint must say who may call it.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from conftest import login

pytestmark = pytest.mark.asyncio

CALLERS = ("anonymous", "owner", "other_user", "admin", "agent", "other_agent", "revoked_agent")
OK = "ok"  # allowed: a 2xx, or a 409/422 about the state or body (the door itself was open)

PERSON = {"anonymous": 401, "owner": OK, "other_user": OK, "admin": OK,
          "agent": 401, "other_agent": 401, "revoked_agent": 401}  # fmt: skip
ADMIN = PERSON | {"owner": 403, "other_user": 403}
OWNED = PERSON | {"other_user": 404}
AGENT = {"anonymous": 401, "owner": 401, "other_user": 401, "admin": 401,
         "agent": OK, "other_agent": OK, "revoked_agent": 403}  # fmt: skip
AGENTS_TASK = AGENT | {"other_agent": 404}
PUBLIC = dict.fromkeys(CALLERS, OK)
NOBODY_WITHOUT_SECRET = dict.fromkeys(CALLERS, 404)
# Sign-in and registration take their credentials in the body: wrong ones are refused whoever asks.
CREDENTIALS_IN_BODY = dict.fromkeys(CALLERS, 401)

# (method, path) → expected outcome per caller. Streams are only checked for refusals.
MATRIX: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/health"): PUBLIC,
    ("GET", "/api/info"): PUBLIC,
    ("POST", "/api/auth/login"): CREDENTIALS_IN_BODY,
    ("POST", "/api/auth/register"): dict.fromkeys(CALLERS, 403),  # registration closed by default
    ("GET", "/api/auth/me"): PERSON,
    ("POST", "/api/auth/logout"): PERSON,
    ("GET", "/api/users"): ADMIN,
    ("POST", "/api/users"): ADMIN,
    ("PATCH", "/api/users/{user_id}"): ADMIN,
    ("GET", "/api/agents"): PERSON,
    ("GET", "/api/agents/{agent_id}"): PERSON,
    ("DELETE", "/api/agents/{agent_id}"): ADMIN,
    ("POST", "/api/enrollment-tokens"): ADMIN,
    ("GET", "/api/enrollment-tokens"): ADMIN,
    ("DELETE", "/api/enrollment-tokens/{token_id}"): ADMIN,
    ("POST", "/api/sessions"): PERSON,
    ("GET", "/api/sessions"): PERSON,
    ("GET", "/api/sessions/{session_id}"): OWNED,
    ("POST", "/api/sessions/{session_id}/stop"): OWNED,
    ("POST", "/api/sessions/{session_id}/fail"): ADMIN,
    ("GET", "/api/events"): PERSON | {"stream": True},
    ("GET", "/api/audit"): ADMIN,
    ("GET", "/metrics"): ADMIN,
    ("POST", "/api/agent/register"): CREDENTIALS_IN_BODY,
    ("POST", "/api/agent/heartbeat"): AGENT,
    ("POST", "/api/agent/tasks/poll"): AGENT,
    ("POST", "/api/agent/tasks/{task_id}/ack"): AGENTS_TASK,
    ("POST", "/api/agent/tasks/{task_id}/result"): AGENTS_TASK,
    ("POST", "/api/frp/plugin/{secret}"): NOBODY_WITHOUT_SECRET,
    ("GET", "/{path}"): PUBLIC,
}

BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/auth/login"): {"username": "nobody", "password": "x"},
    ("POST", "/api/auth/register"): {"username": "newcomer", "password": "password-1"},
    ("POST", "/api/users"): {"username": "made-{n}", "password": "password-1"},
    ("PATCH", "/api/users/{user_id}"): {"role": "user"},
    ("POST", "/api/enrollment-tokens"): {},
    ("POST", "/api/sessions"): {},
    ("POST", "/api/sessions/{session_id}/fail"): {"reason": "matrix"},
    ("POST", "/api/agent/register"): {"enrollment_token": "sdde_wrong-token", "node_key": "k" * 32,
                                      "name": "x", "hostname": "x"},
    ("POST", "/api/agent/heartbeat"): {"metrics": {}},
    ("POST", "/api/agent/tasks/{task_id}/result"): {"ok": False, "error": "matrix"},
    ("POST", "/api/frp/plugin/{secret}"): {"op": "Login", "content": {}},
}  # fmt: skip


# Routes left out of the OpenAPI document on purpose (frps's hook, the UI's history fallback).
HIDDEN = {("POST", "/api/frp/plugin/{secret}"), ("GET", "/{path}")}


def app_routes(app: Any) -> set[tuple[str, str]]:
    """Every documented endpoint (from the OpenAPI document) and the hidden ones."""
    documented = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    return documented | HIDDEN


def test_every_endpoint_has_a_row() -> None:
    from sdd.server.app import create_app
    from sdd.server.settings import Settings

    app = create_app(Settings(data_dir="/tmp/sdd-matrix", secret_key="x" * 40))  # type: ignore[arg-type]
    missing = app_routes(app) - MATRIX.keys()
    assert not missing, f"endpoints without an authorization row in {__file__}: {sorted(missing)}"
    stale = MATRIX.keys() - app_routes(app)
    assert not stale, f"rows for endpoints that no longer exist: {sorted(stale)}"


async def register(client: httpx.AsyncClient, admin: dict[str, str], name: str) -> tuple[str, dict[str, str]]:
    token = (await client.post("/api/enrollment-tokens", json={}, headers=admin)).json()["token"]
    body = (
        await client.post(
            "/api/agent/register",
            json={
                "enrollment_token": token,
                "node_key": os.urandom(16).hex(),
                "name": name,
                "hostname": name,
            },
        )
    ).json()
    headers = {"Authorization": f"Bearer {body['agent_id']}:{body['credential']}"}
    await client.post("/api/agent/heartbeat", json={"metrics": {}}, headers=headers)
    return body["agent_id"], headers


def classify(response: httpx.Response) -> Any:
    if response.status_code < 400 or response.status_code in (409, 422, 429):
        return OK
    return response.status_code


async def test_every_caller_gets_what_the_matrix_says(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    for name in ("alice", "bob"):
        await app_client.post("/api/users", json={"username": name, "password": "password-1"}, headers=admin)
    agent_id, agent = await register(app_client, admin, "node")
    _, other_agent = await register(app_client, admin, "other")
    revoked_id, revoked = await register(app_client, admin, "gone")
    await app_client.delete(f"/api/agents/{revoked_id}", headers=admin)
    spare_id, _ = await register(app_client, admin, "spare")

    async def fresh_people() -> dict[str, dict[str, str]]:
        # Logging out revokes a caller's tokens, so every row starts from fresh sign-ins.
        return {
            "anonymous": {},
            "owner": await login(app_client, "alice", "password-1"),
            "other_user": await login(app_client, "bob", "password-1"),
            "admin": await login(app_client),
        }

    people = await fresh_people()
    session = (
        await app_client.post("/api/sessions", json={"agent_id": agent_id}, headers=people["owner"])
    ).json()
    task = (await app_client.post("/api/agent/tasks/poll?wait=0", headers=agent)).json()["tasks"][0]
    users = {u["username"]: u["id"] for u in (await app_client.get("/api/users", headers=admin)).json()}
    token_id = (await app_client.post("/api/enrollment-tokens", json={}, headers=admin)).json()["id"]
    params = {
        "user_id": users["bob"],
        "agent_id": spare_id,
        "token_id": token_id,
        "session_id": session["id"],
        "task_id": task["id"],
        "secret": "not-the-secret",
        "path": "agents",
    }

    failures = []
    for n, ((method, path), expected) in enumerate(
        sorted(MATRIX.items(), key=lambda kv: "logout" in kv[0][1])
    ):
        callers = people | {"agent": agent, "other_agent": other_agent, "revoked_agent": revoked}
        for caller in CALLERS:
            if expected.get("stream") and expected[caller] == OK:
                continue  # an allowed event stream never ends; its refusals are checked
            body = BODIES.get((method, path))
            if isinstance(body, dict) and "username" in body:
                body = body | {"username": body["username"].replace("{n}", f"{n}-{caller}")}
            response = await app_client.request(
                method, path.format(**params), json=body, headers=callers[caller]
            )
            if classify(response) != expected[caller]:
                failures.append(
                    f"{method} {path} as {caller}: {response.status_code}, expected {expected[caller]}"
                )
    assert not failures, "\n".join(failures)
