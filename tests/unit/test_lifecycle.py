"""The session state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sdd.protocol import SessionStatus as S
from sdd.server.models import Session
from sdd.server.services.lifecycle import ALLOWED, Deadlines, InvalidTransition, can_move, transition

DEADLINES = Deadlines(pending=60, starting=120, stopping=30)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make(status: S) -> Session:
    return Session(id="s1", status=status.value, url="http://x/", deadline_at=None)


def test_the_happy_path_is_allowed() -> None:
    session = make(S.PENDING)
    for wanted in (S.STARTING, S.ACTIVE, S.STOPPING, S.STOPPED):
        transition(session, wanted, now=NOW, deadlines=DEADLINES)
    assert session.status == "STOPPED"


@pytest.mark.parametrize("status", [S.PENDING, S.STARTING, S.ACTIVE, S.STOPPING])
def test_every_live_state_can_fail(status: S) -> None:
    assert can_move(status, S.FAILED)


@pytest.mark.parametrize("final", [S.STOPPED, S.FAILED])
def test_final_states_never_move(final: S) -> None:
    assert ALLOWED[final] == frozenset()
    with pytest.raises(InvalidTransition, match=f"a {final.value} session cannot become"):
        transition(make(final), S.ACTIVE, now=NOW, deadlines=DEADLINES)


@pytest.mark.parametrize(
    ("current", "wanted"),
    [(S.PENDING, S.ACTIVE), (S.ACTIVE, S.STARTING), (S.STOPPING, S.ACTIVE), (S.ACTIVE, S.PENDING)],
)
def test_skipping_or_going_back_is_refused(current: S, wanted: S) -> None:
    with pytest.raises(InvalidTransition):
        transition(make(current), wanted, now=NOW, deadlines=DEADLINES)


@pytest.mark.parametrize(("status", "seconds"), [(S.STARTING, 120), (S.STOPPING, 30)])
def test_transient_states_get_their_deadline(status: S, seconds: int) -> None:
    session = make(S.PENDING if status is S.STARTING else S.ACTIVE)
    transition(session, status, now=NOW, deadlines=DEADLINES)
    assert session.deadline_at == NOW + timedelta(seconds=seconds)


def test_active_and_final_states_have_no_deadline() -> None:
    session = make(S.STARTING)
    transition(session, S.ACTIVE, now=NOW, deadlines=DEADLINES)
    assert session.deadline_at is None
    transition(session, S.STOPPING, now=NOW, deadlines=DEADLINES)
    transition(session, S.STOPPED, now=NOW, deadlines=DEADLINES)
    assert session.deadline_at is None


def test_failing_records_the_reason_and_drops_the_link() -> None:
    session = make(S.ACTIVE)
    transition(session, S.FAILED, now=NOW, deadlines=DEADLINES, reason="the IDE exited with status 1")
    assert session.status_reason == "the IDE exited with status 1"
    assert session.url is None
    assert session.updated_at == NOW


def test_expiry_reasons_say_what_to_do() -> None:
    assert "sdd agent" in DEADLINES.expiry_reason(S.PENDING, "box")
    assert "agent's log" in DEADLINES.expiry_reason(S.STARTING, "box")
    assert "did not confirm the stop" in DEADLINES.expiry_reason(S.STOPPING, "box")


def test_an_active_session_can_be_lost_and_come_back() -> None:
    session = make(S.ACTIVE)
    transition(session, S.LOST, now=NOW, deadlines=DEADLINES, reason="agent box is offline")
    assert session.status_reason == "agent box is offline"
    assert session.deadline_at == NOW + timedelta(seconds=DEADLINES.lost)
    transition(session, S.ACTIVE, now=NOW, deadlines=DEADLINES)
    assert session.status_reason is None and session.deadline_at is None


@pytest.mark.parametrize("wanted", [S.STOPPING, S.FAILED])
def test_a_lost_session_can_be_stopped_or_fail(wanted: S) -> None:
    assert can_move(S.LOST, wanted)
