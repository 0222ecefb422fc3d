"""Prometheus metrics: what an operator graphs and alerts on.

Counters and histograms are this replica's; the gauges (agents online, sessions by status, queue
depth) are read from the database at scrape time, so every replica reports the same totals.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select

from sdd.protocol import SessionStatus
from sdd.server.models import Agent, Session, Task

if TYPE_CHECKING:
    from sdd.server.services.context import ServerContext

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.heartbeats = Counter("sdd_heartbeats", "Agent heartbeats received", registry=self.registry)
        self.dispatch = Histogram(
            "sdd_task_dispatch_seconds",
            "From a task being queued to its first delivery to the agent",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.session_start = Histogram(
            "sdd_session_start_seconds",
            "From a session being created to it being ACTIVE",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.gc_pause = Histogram(
            "sdd_gc_pause_seconds",
            "Garbage-collection pauses of this process, by generation",
            ["generation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._gc_started = 0.0

    def watch_gc(self) -> None:
        """Time every garbage collection: a long one stops every request of the process."""
        gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pause.labels(generation=str(info.get("generation", "?"))).observe(
                time.perf_counter() - self._gc_started
            )

    def observe_dispatch(self, kind: str, created_at: datetime, now: datetime) -> None:
        self.dispatch.labels(kind=kind).observe(max(0.0, (now - created_at).total_seconds()))

    def observe_start(self, created_at: datetime, now: datetime) -> None:
        self.session_start.observe(max(0.0, (now - created_at).total_seconds()))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Snapshot:
    """Adapts the numbers read before a scrape into Prometheus gauges."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values

    def collect(self) -> Iterable[Metric]:
        online = GaugeMetricFamily("sdd_agents_online", "Agents with a recent heartbeat")
        online.add_metric([], float(self.values.get("online", 0)))  # type: ignore[arg-type]
        yield online
        sessions = GaugeMetricFamily("sdd_sessions", "Sessions by status", labels=["status"])
        by_status: dict[str, int] = self.values.get("sessions", {})  # type: ignore[assignment]
        for status in SessionStatus:
            sessions.add_metric([status.value], float(by_status.get(status.value, 0)))
        yield sessions
        depth = GaugeMetricFamily("sdd_task_queue_depth", "Tasks queued or leased but not acknowledged")
        depth.add_metric([], float(self.values.get("queue", 0)))  # type: ignore[arg-type]
        yield depth
        streams = GaugeMetricFamily("sdd_event_streams", "Live event streams (browsers) open on this replica")
        streams.add_metric([], float(self.values.get("streams", 0)))  # type: ignore[arg-type]
        yield streams
        dropped = CounterMetricFamily(
            "sdd_events_dropped", "Live events dropped on this replica because a stream fell behind"
        )
        dropped.add_metric([], float(self.values.get("dropped", 0)))  # type: ignore[arg-type]
        yield dropped


async def render_metrics(ctx: ServerContext) -> bytes:
    recent = datetime.now(UTC) - timedelta(seconds=ctx.settings.offline_timeout)
    async with ctx.db.read() as db:
        online = await db.scalar(
            select(func.count()).where(Agent.revoked_at.is_(None), Agent.last_seen >= recent)
        )
        statuses = {
            status: count
            for status, count in await db.execute(
                select(Session.status, func.count()).group_by(Session.status)
            )
        }
        queue = await db.scalar(select(func.count()).where(Task.state.in_(("QUEUED", "LEASED"))))
    # This replica's own fresh beats may not be flushed yet.
    fresh = sum(1 for beat in ctx.presence.beats.values() if beat.last_seen >= recent and not beat.flushed)
    snapshot = _Snapshot(
        {
            "online": (online or 0) + fresh,
            "sessions": statuses,
            "queue": queue or 0,
            "streams": ctx.broker.stream_count,
            "dropped": ctx.broker.dropped_events,
        }
    )
    registry = CollectorRegistry(auto_describe=True)
    registry.register(snapshot)
    return ctx.metrics.render() + generate_latest(registry)
