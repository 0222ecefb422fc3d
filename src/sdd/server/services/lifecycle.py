"""The session state machine: which moves are allowed, and the deadline of every transient state.

PENDING → STARTING → ACTIVE → STOPPING → STOPPED, and FAILED (with a reason) from any state that is
not final. Every status change goes through `transition`, so no code path can invent a move or
forget a deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sdd.protocol import SessionStatus
from sdd.server.models import Session

S = SessionStatus

ALLOWED: dict[SessionStatus, frozenset[SessionStatus]] = {
    S.PENDING: frozenset({S.STARTING, S.STOPPING, S.STOPPED, S.FAILED}),
    S.STARTING: frozenset({S.ACTIVE, S.STOPPING, S.FAILED}),
    S.ACTIVE: frozenset({S.LOST, S.STOPPING, S.FAILED}),
    S.LOST: frozenset({S.ACTIVE, S.STOPPING, S.FAILED}),
    S.STOPPING: frozenset({S.STOPPED, S.FAILED}),
    S.STOPPED: frozenset(),
    S.FAILED: frozenset(),
}


class InvalidTransition(Exception):
    def __init__(self, current: SessionStatus, wanted: SessionStatus) -> None:
        super().__init__(f"a {current.value} session cannot become {wanted.value}")
        self.current = current
        self.wanted = wanted


@dataclass(frozen=True)
class Deadlines:
    pending: float
    starting: float
    stopping: float
    lost: float = 3600.0

    def for_status(self, status: SessionStatus) -> float | None:
        return {
            S.PENDING: self.pending,
            S.STARTING: self.starting,
            S.STOPPING: self.stopping,
            S.LOST: self.lost,
        }.get(status)

    def expiry_reason(self, status: SessionStatus, agent_name: str) -> str:
        seconds = self.for_status(status)
        if status is S.PENDING:
            return (
                f"agent {agent_name} did not pick up the start task within {seconds:g} s; "
                "check that its `sdd agent` is running and can reach the server"
            )
        if status is S.STARTING:
            return (
                f"the IDE did not become ready on agent {agent_name} within {seconds:g} s; "
                "see the agent's log for the IDE's output"
            )
        if status is S.LOST:
            return (
                f"agent {agent_name} stayed offline for {seconds:g} s; the session is given up "
                "(the node stops its IDE if it comes back)"
            )
        return (
            f"agent {agent_name} did not confirm the stop within {seconds:g} s; "
            "the IDE may still be running on the node"
        )


def can_move(current: SessionStatus, wanted: SessionStatus) -> bool:
    return wanted in ALLOWED[current]


def transition(
    session: Session,
    wanted: SessionStatus,
    *,
    now: datetime,
    deadlines: Deadlines,
    reason: str | None = None,
) -> None:
    current = SessionStatus(session.status)
    if not can_move(current, wanted):
        raise InvalidTransition(current, wanted)
    session.status = wanted.value
    session.updated_at = now
    seconds = deadlines.for_status(wanted)
    session.deadline_at = now + timedelta(seconds=seconds) if seconds is not None else None
    if wanted is S.FAILED:
        session.status_reason = reason or "failed"
    elif wanted is S.ACTIVE and current is S.LOST:
        session.status_reason = None
    elif reason is not None:
        session.status_reason = reason
    if wanted.is_final:
        session.url = None
