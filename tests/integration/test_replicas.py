"""Several server replicas on one PostgreSQL and one Redis share all work.

Runs in the test command's PostgreSQL + Redis pass (SDD_TEST_DATABASE_URL and SDD_TEST_REDIS_URL).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from support import AgentProcess, Api, FakeAgent, ServerProcess, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("SDD_TEST_DATABASE_URL", "").startswith("postgresql")
        or not os.environ.get("SDD_TEST_REDIS_URL"),
        reason="needs SDD_TEST_DATABASE_URL (PostgreSQL) and SDD_TEST_REDIS_URL",
    ),
]


def test_an_agent_on_replica_a_runs_a_session_created_through_replica_b(
    server_factory: Callable[..., ServerProcess], agent_factory: Callable[..., AgentProcess]
) -> None:
    a, b = server_factory("a"), server_factory("b")
    agent_factory(a, Api(a.url).enrollment_token(), "node")
    via_b = Api(b.url)
    via_b.wait_agent_online("node")
    session = via_b.post("/api/sessions", json={})
    assert session.status_code == 201, session.text
    active = via_b.wait_session(session.json()["id"], "ACTIVE", "FAILED")
    assert active["status"] == "ACTIVE", active["status_reason"]
    assert Api(a.url).session(active["id"])["status"] == "ACTIVE"


def test_a_poll_held_by_one_replica_wakes_for_a_task_queued_through_another(
    server_factory: Callable[..., ServerProcess],
) -> None:
    a, b = server_factory("a"), server_factory("b")
    agent = FakeAgent(a.url, Api(a.url).enrollment_token())
    agent.heartbeat()
    via_b = Api(b.url)
    via_b.wait_agent_online()
    got: list[Any] = []
    poll = threading.Thread(target=lambda: got.append((agent.poll(wait=10), time.monotonic())))
    poll.start()
    time.sleep(0.5)  # the poll is now held open by replica A
    created = time.monotonic()
    via_b.post("/api/sessions", json={})
    poll.join(15)
    tasks, received = got[0]
    assert [t["kind"] for t in tasks] == ["start_code_server"]
    # Woken through Redis, not by the poll timing out (10 s).
    assert received - created < 2.0


def test_live_events_reach_a_browser_on_another_replica(
    server_factory: Callable[..., ServerProcess],
) -> None:
    a, b = server_factory("a"), server_factory("b")
    admin_b = Api(b.url)
    token = admin_b.client.headers["Authorization"].removeprefix("Bearer ")
    events: list[dict[str, Any]] = []

    def listen() -> None:
        with httpx.stream("GET", f"{b.url}/api/events", params={"token": token}, timeout=30) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if any(e["type"] == "session" for e in events) and any(
                        e["type"] == "agent" for e in events
                    ):
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)
    agent = FakeAgent(a.url, Api(a.url).enrollment_token(), "far")
    agent.heartbeat()
    Api(a.url).wait_agent_online("far")
    Api(a.url).post("/api/sessions", json={})
    wait_for(lambda: any(e["type"] == "session" for e in events), 10, what="a session event on replica B")
    # Replica A publishes agents' metrics once it has seen (within 2 s) that B has a listener.
    wait_for(
        lambda: any(e["type"] == "agent" and e["agent"]["name"] == "far" for e in events),
        10,
        what="the agent's live metrics on replica B",
    )


def test_ports_stay_distinct_when_replicas_allocate_at_once(
    server_factory: Callable[..., ServerProcess],
) -> None:
    limits = {
        "SDD_REMOTE_PORT_MIN": "24000",
        "SDD_REMOTE_PORT_MAX": "24029",
        "SDD_MAX_SESSIONS_PER_USER": "100",
    }
    a, b = server_factory("a", **limits), server_factory("b", **limits)
    agent = FakeAgent(a.url, Api(a.url).enrollment_token())
    agent.heartbeat()
    apis = [Api(a.url), Api(b.url)]
    apis[1].wait_agent_online()
    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        responses = list(pool.map(lambda i: apis[i % 2].post("/api/sessions", json={}), range(30)))
    assert [r.status_code for r in responses] == [201] * 30
    assert len({r.json()["remote_port"] for r in responses}) == 30
    # Every task is delivered once, to the one agent.
    delivered: list[dict[str, Any]] = []
    while batch := agent.poll():
        delivered += batch
    assert len(delivered) == len({t["id"] for t in delivered}) == 30
