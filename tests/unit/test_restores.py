"""The restore state machine and the small pure helpers in bot.restores."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.restores import (
    FINAL,
    TRANSITIONS,
    InvalidTransition,
    RestoreRequest,
    State,
    expiry,
    human_duration,
    human_size,
    table_name_problem,
)

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def make(state: State = State.REQUESTED, **kw: object) -> RestoreRequest:
    base = RestoreRequest(
        source="Orders",
        target="Orders-restored",
        requester="U1",
        channel="C1",
        restore_at=None,
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
    )
    return replace(base, state=state, **kw)  # type: ignore[arg-type]


ALLOWED = [
    (State.REQUESTED, State.APPROVED),
    (State.REQUESTED, State.DENIED),
    (State.REQUESTED, State.EXPIRED),
    (State.REQUESTED, State.CANCELLED),
    (State.APPROVED, State.RESTORING),
    (State.APPROVED, State.FAILED),
    (State.RESTORING, State.ACTIVE),
    (State.RESTORING, State.FAILED),
    (State.RESTORING, State.APPROVED),  # queued again: AWS's limit of concurrent restores
]


@pytest.mark.parametrize(("start", "to"), ALLOWED)
def test_allowed_transitions_produce_a_copy_in_the_new_state(start: State, to: State) -> None:
    req = make(start)
    later = NOW + timedelta(minutes=3)
    new = req.advance(to, later, decided_by="U2")
    assert new.state == to
    assert new.updated_at == later
    assert new.decided_by == "U2"
    assert new.id == req.id
    assert req.state == start, "advance must not mutate the original"


FORBIDDEN = [(start, to) for start in State for to in State if (start, to) not in ALLOWED]


@pytest.mark.parametrize(("start", "to"), FORBIDDEN)
def test_every_other_transition_is_refused(start: State, to: State) -> None:
    with pytest.raises(InvalidTransition):
        make(start).advance(to, NOW)


def test_a_restore_whose_call_succeeded_can_never_be_queued_again() -> None:
    running = replace(make(State.RESTORING), table_arn="arn:aws:dynamodb:r:1:table/t")
    with pytest.raises(InvalidTransition):
        running.advance(State.APPROVED, NOW)


def test_forbidden_examples_that_would_hurt_a_user() -> None:
    # A denied request can never be approved later; a restore can't skip approval.
    with pytest.raises(InvalidTransition):
        make(State.DENIED).advance(State.APPROVED, NOW)
    with pytest.raises(InvalidTransition):
        make(State.REQUESTED).advance(State.RESTORING, NOW)
    with pytest.raises(InvalidTransition):
        make(State.EXPIRED).advance(State.APPROVED, NOW)


@pytest.mark.parametrize("state", sorted(FINAL))
def test_final_states_have_no_exits(state: State) -> None:
    assert not TRANSITIONS.get(state)
    req = make(state)
    assert req.final
    for to in State:
        with pytest.raises(InvalidTransition):
            req.advance(to, NOW)


def test_non_final_states() -> None:
    for state in (State.REQUESTED, State.APPROVED, State.RESTORING):
        assert not make(state).final


def test_with_approval_counts_a_user_once() -> None:
    req = make(required_approvals=2)
    once = req.with_approval("U2")
    twice = once.with_approval("U2")
    assert once.approvals == ("U2",)
    assert twice.approvals == ("U2",)
    assert twice.approvals_missing == 1
    both = twice.with_approval("U3")
    assert both.approvals == ("U2", "U3")
    assert both.approvals_missing == 0
    assert req.approvals == (), "with_approval must not mutate the original"


def test_approvals_missing_never_negative() -> None:
    req = make(required_approvals=1, approvals=("U2", "U3"))
    assert req.approvals_missing == 0
    assert make(required_approvals=3).approvals_missing == 3


def test_expiry_accepts_fractional_minutes() -> None:
    assert expiry(NOW, 0.5) == NOW + timedelta(seconds=30)


def test_elapsed_counts_from_the_restore_call_until_finished() -> None:
    req = make(
        State.ACTIVE,
        restore_called_at=NOW + timedelta(minutes=10),
        finished_at=NOW + timedelta(minutes=40),
    )
    assert req.elapsed(NOW + timedelta(days=1)) == timedelta(minutes=30)


# -- table names -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["abc", "a" * 255, "Orders_2026-11.v2", "A.b-C_1"])
def test_valid_table_names(name: str) -> None:
    assert table_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "ab", "a" * 256])
def test_table_name_length(name: str) -> None:
    problem = table_name_problem(name, "Target table")
    assert problem is not None
    assert problem.startswith("Target table")
    assert "3 to 255" in problem


@pytest.mark.parametrize(
    "name", ["my table", "tab<le", "<!channel>", "table🙂", "drop;table", "a/b", "tab\nle"]
)
def test_table_name_bad_characters(name: str) -> None:
    problem = table_name_problem(name)
    assert problem is not None
    assert "letters, digits" in problem


def test_table_name_trailing_newline_is_refused() -> None:
    # `$` in a regex also matches before a final newline; the name must still be refused.
    assert table_name_problem("Orders\n") is not None


# -- human formats -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=0), "0 s"),
        (timedelta(seconds=8), "8 s"),
        (timedelta(seconds=59), "59 s"),
        (timedelta(minutes=12, seconds=30), "12 min 30 s"),
        (timedelta(minutes=1, seconds=5), "1 min 05 s"),
        (timedelta(hours=1, minutes=5), "1 h 05 min"),
        (timedelta(hours=3, minutes=0, seconds=59), "3 h 00 min"),
        (timedelta(days=1, hours=2), "26 h 00 min"),
        (timedelta(seconds=-30), "0 s"),
    ],
)
def test_human_duration(delta: timedelta, text: str) -> None:
    assert human_duration(delta) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, "unknown"),
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KB"),
        (1536, "1.5 KB"),
        (5 * 1024**2, "5.0 MB"),
        (3 * 1024**3 // 2, "1.5 GB"),
        (2 * 1024**4, "2.0 TB"),
        (2048 * 1024**4, "2048.0 TB"),
    ],
)
def test_human_size(size: int | None, text: str) -> None:
    assert human_size(size) == text
