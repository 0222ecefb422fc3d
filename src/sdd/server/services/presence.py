"""Agent presence: the latest heartbeat of every agent, kept in memory.

A heartbeat only touches this table; a flusher writes every agent that beat since the last flush
to the database in one transaction (one fsync for all of them), and publishes their live metrics to
the UI in the same sweep. So an idle agent costs a dictionary update per beat, not a transaction.
Replicas each flush the agents that beat on them; the database is where they meet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, update

from sdd.protocol import AgentStatus, Metrics
from sdd.server.db import Database
from sdd.server.models import Agent

log = logging.getLogger(__name__)

FLUSH_CHUNK = 250

OnFlushed = Callable[[list[str], list[str]], Awaitable[None]]


@dataclass
class Beat:
    last_seen: datetime
    metrics: Metrics
    running_sessions: int
    version: str
    sessions: frozenset[str] = frozenset()
    beats_since_reconcile: int = 0
    flushed: bool = False


@dataclass
class PresenceTable:
    offline_timeout: float
    beats: dict[str, Beat] = field(default_factory=dict)
    # Agents seen ONLINE at the last sweep, to announce the moment one goes OFFLINE.
    _online: set[str] = field(default_factory=set)

    def record(
        self, agent_id: str, metrics: Metrics, running_sessions: int, version: str, sessions: frozenset[str]
    ) -> Beat:
        beat = Beat(datetime.now(UTC), metrics, running_sessions, version, sessions)
        self.beats[agent_id] = beat
        return beat

    def forget(self, agent_id: str) -> None:
        self.beats.pop(agent_id, None)
        self._online.discard(agent_id)

    def status(self, last_seen: datetime | None, revoked: bool, now: datetime | None = None) -> AgentStatus:
        if revoked:
            return AgentStatus.REVOKED
        if last_seen is None:
            return AgentStatus.OFFLINE
        now = now or datetime.now(UTC)
        if now - last_seen > timedelta(seconds=self.offline_timeout):
            return AgentStatus.OFFLINE
        return AgentStatus.ONLINE

    def newest(self, agent: Agent) -> tuple[datetime | None, Metrics, int, str]:
        """An agent's freshest known state: this replica's memory if newer than the database."""
        beat = self.beats.get(agent.id)
        if beat is not None and (agent.last_seen is None or beat.last_seen >= agent.last_seen):
            return beat.last_seen, beat.metrics, beat.running_sessions, beat.version
        return (
            agent.last_seen,
            Metrics.model_validate(agent.metrics or {}),
            agent.running_sessions,
            agent.version,
        )

    async def flush(self, db: Database) -> list[str]:
        """Write the beats not yet written; returns the agent ids written."""
        pending = {agent_id: beat for agent_id, beat in self.beats.items() if not beat.flushed}
        if not pending:
            return []
        rows = [
            {
                "_id": agent_id,
                "last_seen": beat.last_seen,
                "metrics": beat.metrics.model_dump(),
                "running_sessions": beat.running_sessions,
                "version": beat.version,
            }
            for agent_id, beat in pending.items()
        ]
        statement = (
            update(Agent)
            .where(Agent.id == bindparam("_id"))
            .values(
                last_seen=bindparam("last_seen"),
                metrics=bindparam("metrics"),
                running_sessions=bindparam("running_sessions"),
                version=bindparam("version"),
            )
        )
        # In chunks, each its own short transaction, yielding between them: a large fleet's flush
        # must not hold the event loop (or SQLite's writer lock) while heartbeats wait.
        for start in range(0, len(rows), FLUSH_CHUNK):
            async with db.write() as session:
                connection = await session.connection()
                await connection.execute(statement, rows[start : start + FLUSH_CHUNK])
            await asyncio.sleep(0)
        for agent_id, beat in pending.items():
            if self.beats.get(agent_id) is beat:
                beat.flushed = True
        return list(pending)

    def went_offline(self, now: datetime | None = None) -> list[str]:
        """Agents of this replica that were ONLINE at the last sweep and are not now."""
        now = now or datetime.now(UTC)
        online = {
            agent_id
            for agent_id, beat in self.beats.items()
            if self.status(beat.last_seen, False, now) is AgentStatus.ONLINE
        }
        gone = self._online - online
        self._online = online
        for agent_id in gone:
            # Its last beat is in the database already; memory need not hold it any more.
            beat = self.beats.get(agent_id)
            if beat is not None and beat.flushed:
                del self.beats[agent_id]
        return sorted(gone)


async def run_flusher(table: PresenceTable, db: Database, interval: float, on_flushed: OnFlushed) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            written = await table.flush(db)
            gone = table.went_offline()
            if written or gone:
                await on_flushed(written, gone)
        except Exception:
            log.exception("writing heartbeats to the database failed; will retry")
