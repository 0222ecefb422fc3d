"""The broker for several server replicas: wake-ups and live events through Redis pub/sub.

Each replica subscribes to two channels and hands what arrives to its local waiters and event
subscribers (the LocalBroker machinery). Redis carries only "look again" and UI events; the
database stays the source of truth, so a message lost while Redis is away delays a task until the
agent's next poll, and never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator

import redis.asyncio as redis

from sdd.server.services.broker import LocalBroker

log = logging.getLogger(__name__)

RECONNECT_CAP_SECONDS = 5.0
LISTENING_TTL_SECONDS = 15.0
"""A replica with a browser listening says so in Redis this often (x 1/3), for this long."""
LISTENING_CHECK_SECONDS = 2.0
"""How long a replica believes its last look at whether anyone listens elsewhere."""


class RedisBroker(LocalBroker):
    def __init__(self, url: str, prefix: str = "sdd") -> None:
        super().__init__()
        self.url = url
        self.wake_channel = f"{prefix}:wake"
        self.events_channel = f"{prefix}:events"
        self.control_channel = f"{prefix}:control"
        self.listening_key = f"{prefix}:listening"
        self._listening_checked = -LISTENING_CHECK_SECONDS
        self._listening_elsewhere = True
        self._announcer: asyncio.Task[None] | None = None
        self._redis: redis.Redis = redis.Redis.from_url(url, decode_responses=True)
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Tags this replica's control messages, which it has applied already when they come back.
        self._origin = secrets.token_hex(8)

    async def start(self) -> None:
        try:
            await self._redis.ping()
        except redis.RedisError as exc:
            raise RuntimeError(f"cannot reach Redis at {self.url}: {exc}; check SDD_REDIS_URL") from exc
        self._reader = asyncio.create_task(self._read_forever())
        self._announcer = asyncio.create_task(self._announce_listeners())
        # Start serving only once subscribed, so no wake-up sent to us after start() is missed.
        await asyncio.wait_for(self._subscribed.wait(), 10)

    async def close(self) -> None:
        for task in (self._reader, self._announcer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await super().close()
        await self._redis.aclose()

    async def _read_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.wake_channel, self.events_channel, self.control_channel)
                    self._subscribed.set()
                    delay = 0.1
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        if message["channel"] == self.wake_channel:
                            self.wake_local(message["data"])
                        elif message["channel"] == self.control_channel:
                            origin, _, control = message["data"].partition(" ")
                            if origin != self._origin:
                                self.deliver_control(control)
                        else:
                            self.deliver_local(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Redis subscription lost (%s); reconnecting in %.1f s", exc, delay)
                # Waiters may have missed a wake-up meanwhile: let every poll look again.
                self.wake_all_polls()
                await asyncio.sleep(delay)
                delay = min(RECONNECT_CAP_SECONDS, delay * 2)

    def wake_all_polls(self) -> None:
        self.forget_idle()
        for agent_id in list(self._waiters):
            self.wake_local(agent_id)

    async def notify_agent(self, agent_id: str) -> None:
        # The agent's poll may be held by this replica: wake it without the round trip.
        self.wake_local(agent_id)
        try:
            await self._redis.publish(self.wake_channel, agent_id)
        except redis.RedisError as exc:
            log.warning(
                "could not publish a wake-up to Redis (%s); the agent's next poll will find the task", exc
            )

    async def _announce_listeners(self) -> None:
        while True:
            if self._subscribers:
                with contextlib.suppress(redis.RedisError):
                    await self._redis.set(self.listening_key, "1", ex=int(LISTENING_TTL_SECONDS))
            await asyncio.sleep(LISTENING_TTL_SECONDS / 3)

    async def has_listeners(self) -> bool:
        """Whether a browser listens here or on another replica (which says so in Redis). Without
        this, every replica would publish every agent's metrics through Redis at every flush, for
        nobody: at 8,000 agents an eighth of the server's CPU."""
        if self._subscribers:
            return True
        now = time.monotonic()
        if now - self._listening_checked >= LISTENING_CHECK_SECONDS:
            self._listening_checked = now
            try:
                self._listening_elsewhere = bool(await self._redis.exists(self.listening_key))
            except redis.RedisError:
                self._listening_elsewhere = True  # cannot tell: publish, as before
        return self._listening_elsewhere

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[str]]:
        if not self._subscribers:  # the first browser here: tell the others now, not within 5 s
            with contextlib.suppress(redis.RedisError):
                await self._redis.set(self.listening_key, "1", ex=int(LISTENING_TTL_SECONDS))
        async with super().subscribe() as queue:
            yield queue

    async def publish_control(self, message: str) -> None:
        # Applied here at once (so what the caller does next is not undone when it comes back through
        # Redis); the other replicas hear it through Redis.
        self.deliver_control(message)
        try:
            await self._redis.publish(self.control_channel, f"{self._origin} {message}")
        except redis.RedisError as exc:
            log.warning(
                "could not publish a control message to Redis (%s); other replicas catch up when "
                "their cached identities expire",
                exc,
            )

    async def publish(self, message: str) -> None:
        try:
            await self._redis.publish(self.events_channel, message)
        except redis.RedisError as exc:
            log.warning("could not publish an event to Redis (%s); delivering it on this replica only", exc)
            self.deliver_local(message)
