"""The live event stream re-checks who listens however busy it is: a lost admin role or a
disabled account takes effect within a keepalive interval, not when the stream falls quiet."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from test_api import make_user

from conftest import login
from sdd.server.api import events as events_api
from sdd.server.services.context import AUDIENCE_EVERYONE, event_message

pytestmark = pytest.mark.asyncio


async def test_a_demoted_admin_stops_hearing_other_peoples_sessions_on_a_busy_stream(
    app_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_api, "KEEPALIVE_SECONDS", 0.2)
    admin = await login(app_client)
    bob = await make_user(app_client, admin, "bob")
    bob_id = (await app_client.get("/api/auth/me", headers=bob)).json()["id"]
    assert (await app_client.patch(f"/api/users/{bob_id}", json={"role": "admin"}, headers=admin)).is_success
    ctx = app_client.app.state.context  # type: ignore[attr-defined]

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the browser never leaves
        return {"type": "http.disconnect"}

    request = Request({"type": "http", "method": "GET", "headers": [], "query_string": b""}, receive)
    response = await events_api.events(ctx, request, bob["Authorization"].removeprefix("Bearer "))
    stream = response.body_iterator
    assert "connected" in await anext(stream)  # type: ignore[arg-type]

    secret = 'someone-else\ndata: {"password": "hunter2"}\n\n'
    busy = event_message(AUDIENCE_EVERYONE, [])  # a fleet's metrics keep the stream busy
    ctx.broker.deliver_local(secret)
    assert "hunter2" in await anext(stream)  # type: ignore[arg-type]

    assert (await app_client.patch(f"/api/users/{bob_id}", json={"role": "user"}, headers=admin)).is_success
    received = ""
    for _ in range(6):  # 0.6 s of a busy stream, past the 0.2 s re-check
        await asyncio.sleep(0.1)
        ctx.broker.deliver_local(busy + 'data: {"tick": 1}\n\n')
        ctx.broker.deliver_local(secret)
        received += await asyncio.wait_for(anext(stream), 2)  # type: ignore[arg-type]
    assert received.count("tick") == 6
    assert "hunter2" not in received.split("tick")[-1]  # after the re-check, no one else's session

    assert (
        await app_client.patch(f"/api/users/{bob_id}", json={"is_active": False}, headers=admin)
    ).is_success
    await asyncio.sleep(0.3)
    ctx.broker.deliver_local(busy + 'data: {"tick": 2}\n\n')
    with pytest.raises(StopAsyncIteration):
        while True:  # the disabled account's stream ends
            await asyncio.wait_for(anext(stream), 2)  # type: ignore[arg-type]
