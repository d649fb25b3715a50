"""Lowering a PITR recovery period: the pure rules, the card, and the engine's one call."""

from __future__ import annotations

from datetime import timedelta

import pytest
from unit.test_workflow import GROUPS, START, Clock, FakeGateway, kinds

from bot.blocks import approval_card, period_changed_text, requester_notice, to_dicts
from bot.period_change import PERIOD_CHANGE, Change, classify, history_lost_before
from bot.pitr import PitrInfo
from bot.policy import Policy
from bot.restores import State
from bot.store.sqlite import SqliteStore
from bot.workflow import Workflow


@pytest.mark.parametrize(
    ("enabled", "current", "wanted", "expected"),
    [
        (False, None, None, Change.ENABLE),
        (False, None, 3, Change.ENABLE),
        (True, 7, 30, Change.RAISE),
        (True, 7, None, Change.RAISE),  # no DAYS means 35
        (True, None, 35, Change.SAME),  # no period reported means 35
        (True, 35, None, Change.SAME),
        (True, 14, 14, Change.SAME),
        (True, 35, 7, Change.SHRINK),
        (True, None, 34, Change.SHRINK),
    ],
)
def test_classify(enabled, current, wanted, expected) -> None:
    assert classify(enabled, current, wanted) == expected


def test_history_lost_before_is_the_new_period_back_from_now() -> None:
    assert history_lost_before(START, 7) == START - timedelta(days=7)


class RecordingGateway(FakeGateway):
    def __init__(self, clock: Clock):
        super().__init__(clock)
        self.period_calls: list[tuple[str, int | None]] = []

    def enable_pitr(self, name: str, days: int | None = None) -> PitrInfo:
        self.period_calls.append((name, days))
        return PitrInfo(name, "ENABLED", self.window(), days)


@pytest.fixture
def setup(tmp_path):
    clock = Clock()
    aws = RecordingGateway(clock)
    aws.add_table("Orders", pitr=True)
    store = SqliteStore(str(tmp_path / "pitr.db"))
    flow = Workflow(store, aws, Policy(), members=GROUPS.get, clock=clock, owner="me")  # type: ignore[arg-type]
    yield flow, aws, store, clock
    store.close()


def ask(flow: Workflow, aws: RecordingGateway, days: int = 7):
    return flow.request_period_change("Orders", days, aws.pitr("Orders"), "U1", "C1")


def test_a_shrink_is_a_request_with_a_card_and_changes_nothing_yet(setup) -> None:
    flow, aws, store, _ = setup
    outcome = ask(flow, aws)
    assert outcome.ok and outcome.request is not None
    req = store.get(outcome.request.id)
    assert req.kind == PERIOD_CHANGE and req.state == State.REQUESTED
    assert (req.previous_days, req.recovery_days) == (35, 7)
    assert kinds(store) == ["card"]
    assert aws.period_calls == []
    again = ask(flow, aws, days=3)
    assert not again.ok and "already waiting" in again.message


def test_approval_applies_it_once_and_never_restores(setup) -> None:
    flow, aws, store, _ = setup
    req = ask(flow, aws).request
    refused = flow.approve(req.id, "U1")
    assert not refused.ok and "someone else" in refused.message
    assert aws.period_calls == []
    assert flow.approve(req.id, "U2").ok
    done = store.get(req.id)
    assert done.state == State.ACTIVE and done.recovery_days == 7
    assert aws.period_calls == [("Orders", 7)]
    assert "period_changed" in kinds(store) and "done" not in kinds(store)
    assert "aftercare" not in kinds(store)
    flow.start(req.id)
    flow.track()
    assert not flow.approve(req.id, "U3").ok
    assert aws.period_calls == [("Orders", 7)]
    assert aws.restores == []


def test_a_crash_after_the_claim_is_finished_by_the_tracker_not_restored(setup) -> None:
    flow, aws, store, clock = setup
    req = ask(flow, aws).request
    # Approved and claimed, then the process died before the call.
    approved = store.get(req.id).with_approval("U2").advance(State.APPROVED, clock())
    store.save(store.get(req.id), approved)
    claimed = approved.advance(State.RESTORING, clock(), restore_called_at=clock())
    store.save(store.get(req.id), claimed)
    flow.track()
    assert store.get(req.id).state == State.ACTIVE
    assert aws.period_calls == [("Orders", 7)]
    assert aws.restores == []


def test_the_card_says_what_history_is_lost_and_has_the_usual_buttons(setup) -> None:
    flow, aws, store, clock = setup
    req = store.get(ask(flow, aws).request.id)
    text, blocks = approval_card(req, clock())
    rendered = str(to_dicts(blocks))
    assert "35 days → 7 days" in rendered
    assert "Restore history before" in rendered and "will be lost" in rendered
    assert "2026-11-19" in text  # START minus 7 days
    buttons = [
        e["text"]["text"] for b in to_dicts(blocks) if b["type"] == "actions" for e in b["elements"]
    ]
    assert buttons == ["Approve", "Deny"]
    flow.deny(req.id, "U2")
    denied = store.get(req.id)
    _, blocks = approval_card(denied, clock())
    assert "actions" not in [b["type"] for b in to_dicts(blocks)]
    assert "nothing was changed" in requester_notice(denied)


def test_the_channel_notice_says_shortened_and_since_when(setup) -> None:
    flow, aws, store, _ = setup
    req = ask(flow, aws).request
    flow.approve(req.id, "U2")
    notice = period_changed_text(store.get(req.id))
    assert "shortened from 35 to 7 days" in notice
    assert "2026-11-19" in notice and "<@U2>" in notice
