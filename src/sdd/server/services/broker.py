"""Wake-ups for waiting long-polls, and live events for the UI.

The database is the source of truth; the broker only says "look again". A lost wake-up therefore
delays a task until the poll's next look (at most the poll timeout), it never loses one.

`LocalBroker` serves one process. Several replicas share a `RedisBroker` (services/redis_broker.py)
that forwards the same messages through Redis pub/sub to every replica's local waiters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator

EVENT_QUEUE_SIZE = 1000
SHUTDOWN = ""
"""Put in every subscriber's queue when the server stops: the stream ends."""


class LocalBroker:
    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._subscribers: set[asyncio.Queue[str]] = set()
        self._control_handlers: list[Callable[[str], None]] = []
        # Agents known to have no open task (see mark_idle).
        self._idle: set[str] = set()
        self._wakes: defaultdict[str, int] = defaultdict(int)
        self.dropped_events = 0
        """Live events not delivered because a stream's queue was full (a browser too slow)."""

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.wake_all()

    def wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.set()
        for queue in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(SHUTDOWN)

    # -- agent wake-ups ---------------------------------------------------------------------

    @contextlib.contextmanager
    def agent_waiter(self, agent_id: str) -> Iterator[asyncio.Event]:
        """Register before looking at the queue, so a task queued between the look and the wait
        still wakes the waiter."""
        waiter = asyncio.Event()
        self._waiters[agent_id].add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters.get(agent_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[agent_id]

    async def notify_agent(self, agent_id: str) -> None:
        self.wake_local(agent_id)

    # "This agent has no task" is believed until a wake-up for it arrives. In one process every task
    # is queued through this broker, so that is exact. Across replicas a wake-up lost in Redis would
    # hide a task: the reconciler's sweep (queue.wake_idle_agents_with_tasks, one query for all
    # agents) catches that, so a lost wake-up delays a task by one sweep, never loses it.

    def wakes(self, agent_id: str) -> int:
        """A counter of wake-ups: read it before looking at the database, pass it to mark_idle."""
        return self._wakes.get(agent_id, 0)

    def mark_idle(self, agent_id: str, wakes_before_look: int) -> None:
        # A task queued while we looked woke the agent (and bumped the counter): then we know
        # nothing, and must not believe the look.
        if self._wakes.get(agent_id, 0) == wakes_before_look:
            self._idle.add(agent_id)

    def known_idle(self, agent_id: str) -> bool:
        return agent_id in self._idle

    def idle_agents(self) -> set[str]:
        return set(self._idle)

    def forget_idle(self) -> None:
        self._idle.clear()

    def wake_local(self, agent_id: str) -> None:
        self._idle.discard(agent_id)
        self._wakes[agent_id] += 1
        for waiter in self._waiters.get(agent_id, ()):
            waiter.set()

    # -- control messages between replicas (e.g. "forget this agent's cached identity") -----

    def on_control(self, handler: Callable[[str], None]) -> None:
        self._control_handlers.append(handler)

    async def publish_control(self, message: str) -> None:
        self.deliver_control(message)

    def deliver_control(self, message: str) -> None:
        for handler in self._control_handlers:
            handler(message)

    # -- live events ------------------------------------------------------------------------

    async def publish(self, message: str) -> None:
        self.deliver_local(message)

    def deliver_local(self, message: str) -> None:
        for queue in self._subscribers:
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                # A subscriber this far behind is a dead browser tab; it loses events, not us.
                self.dropped_events += 1

    @property
    def stream_count(self) -> int:
        """Live event streams open on this replica."""
        return len(self._subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def has_listeners(self) -> bool:
        """Whether anyone would receive a live event (a browser on this, or another, replica)."""
        return bool(self._subscribers)
