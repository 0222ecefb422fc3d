"""The agent's poll loop: the heartbeat rides on the poll, and still lands on an older server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from sdd.agent.identity import Credential
from sdd.agent.main import Agent, AgentOptions
from sdd.protocol import AgentSettings, FrpSettings

pytestmark = pytest.mark.asyncio

SETTINGS = AgentSettings(
    heartbeat_interval=5.0,
    poll_timeout=25.0,
    frp=FrpSettings(server_addr="127.0.0.1", server_port=7000, public_host="127.0.0.1"),
)


def agent_against(tmp_path: Path, handler: httpx.MockTransport) -> Agent:
    agent = Agent(AgentOptions(server="http://sdd", runtime_dir=tmp_path))
    agent.http = httpx.AsyncClient(base_url="http://sdd", transport=handler)
    agent.credential = Credential("http://sdd", "a1", "sdda_x")
    agent.settings = SETTINGS
    return agent


async def test_the_poll_carries_the_heartbeat_and_waits_until_the_next(tmp_path: Path) -> None:
    seen: list[tuple[str, str, bytes]] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.url.query.decode(), request.content))
        body = {"tasks": [], "heartbeat": {"settings": SETTINGS.model_dump(), "stop_sessions": []}}
        return httpx.Response(200, json=body)

    agent = agent_against(tmp_path, httpx.MockTransport(server))
    await agent._sync_once()
    await agent._sync_once()
    (path, query, body), (_, query2, body2) = seen
    assert path == "/api/agent/tasks/poll" and query == "wait=5.000"
    assert "metrics" in json.loads(body)
    assert body2 == b"" and 4.9 < float(query2.removeprefix("wait=")) <= 5.0  # no beat until due
    await agent.http.aclose()


async def test_an_older_server_that_ignores_the_beat_gets_it_on_its_own(tmp_path: Path) -> None:
    seen: list[str] = []

    def old_server(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/api/agent/heartbeat":
            return httpx.Response(200, json={"settings": SETTINGS.model_dump(), "stop_sessions": []})
        return httpx.Response(200, json={"tasks": []})  # no `heartbeat`: it did not read the body

    agent = agent_against(tmp_path, httpx.MockTransport(old_server))
    await agent._sync_once()
    assert seen == ["/api/agent/tasks/poll", "/api/agent/heartbeat"]
    await agent.http.aclose()
