"""Replicas publish agents' live metrics through Redis only while a browser listens somewhere."""

from __future__ import annotations

import os
import secrets

import pytest

from sdd.server.services import redis_broker
from sdd.server.services.redis_broker import RedisBroker

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(not os.environ.get("SDD_TEST_REDIS_URL"), reason="needs SDD_TEST_REDIS_URL"),
]


async def test_a_replica_knows_whether_a_browser_listens_on_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_broker, "LISTENING_CHECK_SECONDS", 0.0)
    prefix = f"test-{secrets.token_hex(4)}"
    url = os.environ["SDD_TEST_REDIS_URL"]
    a, b = RedisBroker(url, prefix), RedisBroker(url, prefix)
    await a.start()
    await b.start()
    try:
        assert not await a.has_listeners() and not await b.has_listeners()
        async with b.subscribe():
            assert await b.has_listeners()
            assert await a.has_listeners()
        await b._redis.delete(b.listening_key)  # as when its announcement expires
        assert not await a.has_listeners()
    finally:
        await a.close()
        await b.close()
