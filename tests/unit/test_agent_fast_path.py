"""The agents' long-poll fast path: it serves only fully-checked everyday requests, answers them
as the FastAPI route does, and hands everything else to the route untouched."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conftest import enroll, login
from sdd.server.api.agent_fast_path import AgentPollFastPath, parse_wait

pytestmark = pytest.mark.asyncio

BEAT = json.dumps({"metrics": {"cpu_percent": 42.0}, "sessions": [], "version": "t"}).encode()


class Downstream:
    """Stands for the FastAPI app behind the middleware: records what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(
    middleware: AgentPollFastPath,
    headers: dict[str, str],
    body: bytes = b"",
    query: bytes = b"wait=0",
    path: str = "/api/agent/tasks/poll",
    content_type: str = "application/json",
) -> tuple[int, bytes]:
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"content-type", content_type.encode()))
    scope = {"type": "http", "method": "POST", "path": path, "query_string": query, "headers": raw_headers}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
async def setup(app_client: httpx.AsyncClient) -> tuple[AgentPollFastPath, Downstream, dict[str, str]]:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)  # its identity is now cached
    downstream = Downstream()
    return AgentPollFastPath(downstream, app_client.app.state.context), downstream, agent  # type: ignore[attr-defined]


async def test_an_everyday_poll_is_served_and_its_heartbeat_recorded(
    setup: tuple[AgentPollFastPath, Downstream, dict[str, str]],
) -> None:
    middleware, downstream, agent = setup
    status, body = await call(middleware, agent, BEAT)
    assert status == 200 and downstream.bodies == []
    reply = json.loads(body)
    assert reply["tasks"] == [] and reply["heartbeat"]["stop_sessions"] == []
    beat = middleware.ctx.presence.beats[agent["X-Agent-Id"]]
    assert beat.metrics.cpu_percent == 42.0 and beat.version == "t"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"headers": {"Authorization": "Bearer nobody:sdda_x"}}, "unknown agent: the route refuses"),
        ({"body": b'{"metrics": {"cpu_percent": "lots"}}'}, "bad heartbeat: the route explains"),
        ({"body": b"{not json"}, "not JSON"),
        ({"content_type": "text/plain"}, "not declared JSON"),
        ({"query": b"wait=500"}, "wait out of range"),
        ({"query": b"wait=nan"}, "wait not a number"),
        ({"query": b"wait=1&x=2"}, "more than wait"),
        ({"path": "/api/agent/heartbeat"}, "another endpoint"),
    ],
)
async def test_anything_else_goes_to_the_route_with_its_body(
    setup: tuple[AgentPollFastPath, Downstream, dict[str, str]], change: dict[str, Any], why: str
) -> None:
    middleware, downstream, agent = setup
    arguments: dict[str, Any] = {"headers": agent, "body": BEAT} | change
    status, _ = await call(middleware, **arguments)
    assert status == 299, why
    assert downstream.bodies == [arguments["body"]], why


async def test_a_revoked_agent_is_left_to_the_route(
    setup: tuple[AgentPollFastPath, Downstream, dict[str, str]], app_client: httpx.AsyncClient
) -> None:
    middleware, downstream, agent = setup
    admin = await login(app_client)
    assert (await app_client.delete(f"/api/agents/{agent['X-Agent-Id']}", headers=admin)).status_code == 204
    status, _ = await call(middleware, agent, BEAT)
    assert status == 299 and downstream.bodies == [BEAT]
    # Through the whole app, the route answers it with the reason.
    response = await app_client.post("/api/agent/tasks/poll?wait=0", content=BEAT, headers=agent)
    assert response.status_code == 403 and "revoked" in response.json()["detail"]


async def test_the_fast_path_and_the_route_answer_alike(app_client: httpx.AsyncClient) -> None:
    admin = await login(app_client)
    agent = await enroll(app_client, admin)
    await app_client.post("/api/sessions", json={}, headers=admin)
    headers = agent | {"Content-Type": "application/json"}
    context = app_client.app.state.context  # type: ignore[attr-defined]
    context.settings.task_ack_timeout = 0  # the task is delivered again, to compare a full answer
    fast = await app_client.post("/api/agent/tasks/poll?wait=0", content=BEAT, headers=headers)
    # With the identity cache emptied the fast path steps aside: the route answers (and caches again).
    context.agent_identities.clear()
    routed = await app_client.post("/api/agent/tasks/poll?wait=0", content=BEAT, headers=headers)
    assert fast.status_code == routed.status_code == 200
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    first, second = fast.json(), routed.json()
    assert [t["delivery"] for t in first["tasks"]] == [1] and [t["delivery"] for t in second["tasks"]] == [2]
    first["tasks"][0]["delivery"] = second["tasks"][0]["delivery"]
    assert first == second


def test_wait_is_read_as_the_route_reads_it() -> None:
    assert parse_wait(b"") == 25.0
    assert parse_wait(b"wait=4.5") == 4.5
    assert parse_wait(b"wait=0") == 0.0
    assert parse_wait(b"wait=120") == 120.0
    for refused in (
        b"wait=-1",
        b"wait=121",
        b"wait=inf",
        b"wait=",
        b"wait=abc",
        b"other=1",
        b"wait=1&wait=2",
    ):
        assert parse_wait(refused) is None, refused
