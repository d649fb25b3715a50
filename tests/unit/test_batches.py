"""Several tables, one request, one approval, one instant (bot/batches/), on the engine with a
real SqliteStore, the fake gateway of test_workflow and a fake clock; and its messages."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from test_workflow import GROUPS, Clock, FakeGateway

from bot.batches.blocks import (
    batch_card,
    batch_done_blocks,
    batch_progress_text,
    batch_requester_notice,
)
from bot.batches.engine import members_of
from bot.blocks import to_dicts
from bot.pitr import AwsError, PitrInfo
from bot.policy import Policy
from bot.restores import State, Window
from bot.store.sqlite import SqliteStore
from bot.workflow import NewRequest, Workflow

TABLES = ("orders", "payments", "ledger")


class LaterLedger(FakeGateway):
    """`ledger` got PITR later: its window starts one day ago, the others' 35 days ago."""

    def pitr(self, name: str) -> PitrInfo:
        info = super().pitr(name)
        if name == "ledger" and info.window is not None:
            later = Window(self.clock() - timedelta(days=1), info.window.latest)
            return PitrInfo(name, "ENABLED", later, 35)
        return info


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def aws(clock: Clock) -> LaterLedger:
    gw = LaterLedger(clock)
    for name in TABLES:
        gw.add_table(name)
    return gw


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(str(tmp_path / "pitr.db"))
    yield s
    s.close()


def flow_on(store, aws, clock, policy: Policy | None = None) -> Workflow:
    return Workflow(
        store, aws, policy or Policy(), members=GROUPS.get, clock=clock, poll_seconds=10
    )


def ask(flow: Workflow, when: str = "latest", sources: str = "orders,payments,ledger"):
    return flow.request(NewRequest(sources, "-before-incident", when, "U1", "C1"))


def finish(flow: Workflow, aws: FakeGateway, clock: Clock, status: dict[str, str]) -> None:
    for name, state in status.items():
        aws.set_status(name, state)
    clock.advance(seconds=10)
    flow.track()


def test_one_approval_restores_every_table_to_the_same_instant(store, aws, clock):
    flow = flow_on(store, aws, clock)
    outcome = ask(flow, "2 hours ago")
    assert outcome.ok, outcome.message
    members = members_of(store, outcome.request.id)
    assert [(m.source, m.target) for m in members] == [(t, f"{t}-before-incident") for t in TABLES]
    # One card (the leader's), nothing else posted yet.
    owed = Counter(o.kind for o in store.outbox_due(clock.now, limit=100))
    assert owed == {"card": 1}

    assert flow.approve(outcome.request.id, "U2").ok
    assert len(aws.restores) == 3
    instants = {at for _, _, at in aws.restores}
    assert len(instants) == 1 and None not in instants  # the same RestoreDateTime for all
    assert instants == {clock.now - timedelta(hours=2)}

    finish(flow, aws, clock, {f"{t}-before-incident": "ACTIVE" for t in TABLES})
    members = members_of(store, outcome.request.id)
    assert [m.state for m in members] == [State.ACTIVE] * 3
    assert members[0].batch_done
    summary = [o for o in store.outbox_due(clock.now, limit=500) if o.kind == "batch_done"]
    assert len(summary) == 1  # one broadcast, when the last table is ACTIVE
    text, _ = batch_done_blocks(members, clock.now)
    assert "3 of 3 tables restored" in text
    assert all(f"{t}-before-incident ACTIVE" in text for t in TABLES)


def test_latest_is_the_latest_common_instant_resolved_once(store, aws, clock):
    flow = flow_on(store, aws, clock)
    outcome = ask(flow, "latest")
    members = members_of(store, outcome.request.id)
    assert {m.restore_at for m in members} == {clock.now - timedelta(minutes=5)}


def test_an_instant_outside_one_tables_window_is_refused_naming_that_table(store, aws, clock):
    flow = flow_on(store, aws, clock)
    outcome = ask(flow, "3 days ago")  # inside orders' and payments' windows, not ledger's
    assert not outcome.ok
    assert "`ledger`" in outcome.message and "before the restorable window" in outcome.message
    assert store.find(limit=10) == [] and aws.restores == []


def test_one_failure_does_not_stop_the_others_and_the_summary_says_why(store, aws, clock):
    flow = flow_on(store, aws, clock)
    leader = ask(flow).request
    flow.approve(leader.id, "U2")
    finish(
        flow,
        aws,
        clock,
        {
            "orders-before-incident": "ACTIVE",
            "payments-before-incident": "DELETING",  # someone deleted it meanwhile
            "ledger-before-incident": "CREATING",
        },
    )
    members = members_of(store, leader.id)
    assert [m.state for m in members] == [State.ACTIVE, State.FAILED, State.RESTORING]
    assert not members[0].batch_done  # ledger still running: no summary yet
    finish(flow, aws, clock, {"ledger-before-incident": "ACTIVE"})
    members = members_of(store, leader.id)
    assert [m.state for m in members] == [State.ACTIVE, State.FAILED, State.ACTIVE]
    text, blocks = batch_done_blocks(members, clock.now)
    assert "2 of 3 tables restored; 1 failed: payments" in text
    assert "DELETING instead of ACTIVE" in str(to_dicts(blocks))


def test_a_denied_batch_restores_nothing(store, aws, clock):
    flow = flow_on(store, aws, clock)
    leader = ask(flow).request
    assert flow.deny(leader.id, "U2").ok
    assert [m.state for m in members_of(store, leader.id)] == [State.DENIED] * 3
    flow.track()
    assert aws.restores == []


def test_the_strictest_rule_among_the_tables_decides_for_all(store, aws, clock):
    policy = Policy.model_validate(
        {"rules": [{"tables": ["ledger"], "required_approvals": 2, "approvers": ["U2", "U3"]}]}
    )
    flow = flow_on(store, aws, clock, policy)
    leader = ask(flow).request
    assert leader.required_approvals == 2
    refused = flow.approve(leader.id, "U4")  # may approve orders, not ledger
    assert not refused.ok and "`ledger`" in refused.message
    flow.approve(leader.id, "U2")
    assert aws.restores == []  # one of two approvals
    flow.approve(leader.id, "U3")
    assert len(aws.restores) == 3


class Crash(Exception):
    """The process dies here."""


class CrashingStore:
    """The real store, but the process dies right after its `after`-th write."""

    def __init__(self, store: SqliteStore, after: int):
        self._store, self.after, self.writes = store, after, 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    def _write(self, name: str, *args, **kwargs):
        result = getattr(self._store, name)(*args, **kwargs)
        self.writes += 1
        if self.writes == self.after:
            raise Crash
        return result

    def save(self, *args, **kwargs):
        return self._write("save", *args, **kwargs)

    def save_all(self, *args, **kwargs):
        return self._write("save_all", *args, **kwargs)


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_a_crash_after_any_write_of_an_approval_never_leaves_a_half_approved_batch(
    store, aws, clock, crash_after
):
    leader = ask(flow_on(store, aws, clock)).request
    crashing = CrashingStore(store, after=crash_after)
    with pytest.raises(Crash):
        flow_on(crashing, aws, clock).approve(leader.id, "U2")
    # Every table decided or none: the leader and its members are written together.
    decided = {m.state != State.REQUESTED for m in members_of(store, leader.id)}
    assert len(decided) == 1, [m.state for m in members_of(store, leader.id)]
    assert {e.restore_id for e in store.audit_events() if e.event == "approved"} in (
        set(),
        {m.id for m in members_of(store, leader.id)},
    )
    # Another replica starts whatever the crash left approved, each table once (one it had
    # claimed, once the dead replica's lease has run out).
    clock.advance(minutes=5)
    flow_on(store, aws, clock).track()
    assert sorted(target for _, target, _ in aws.restores) == sorted(
        f"{t}-before-incident" for t in TABLES
    )


def test_a_member_left_requested_by_an_older_version_follows_its_leader_on_the_next_tick(
    store, aws, clock
):
    flow = flow_on(store, aws, clock)
    leader = ask(flow).request
    # An older version wrote the leader's approval alone, then died before its members'.
    store.save(leader, leader.advance(State.APPROVED, clock.now, decided_by="U2"))
    assert Counter(m.state for m in members_of(store, leader.id)) == {
        State.APPROVED: 1,
        State.REQUESTED: 2,
    }
    clock.advance(seconds=10)
    flow.track()
    assert len(aws.restores) == 3


def test_a_tick_while_a_batch_is_being_written_leaves_its_members_alone(store, aws, clock):
    """The members are written before their leader (so the card lists them all); a tick in
    between used to find them leaderless and expire them, and a Deny then met EXPIRED tables."""
    flow = flow_on(store, aws, clock)
    real_add = store.add
    ticked: list[bool] = []

    def add_then_tick(req, *args, **kwargs):
        if req.batch_id == req.id and not ticked:  # the leader is next: a tick comes first
            ticked.append(True)
            flow.track()
        return real_add(req, *args, **kwargs)

    store.add = add_then_tick  # type: ignore[method-assign]
    leader = ask(flow).request
    assert ticked
    assert [m.state for m in members_of(store, leader.id)] == [State.REQUESTED] * 3
    assert flow.deny(leader.id, "U2").ok
    assert [m.state for m in members_of(store, leader.id)] == [State.DENIED] * 3


def test_members_whose_leader_never_came_expire_after_a_grace(store, aws, clock):
    flow = flow_on(store, aws, clock)
    real_add = store.add

    def crash_before_the_leader(req, *args, **kwargs):
        if req.batch_id == req.id:
            raise RuntimeError("the process died here")
        return real_add(req, *args, **kwargs)

    store.add = crash_before_the_leader  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        ask(flow)
    store.add = real_add  # type: ignore[method-assign]
    orphans = store.find(states=[State.REQUESTED])
    assert len(orphans) == 2
    flow.track()
    assert len(store.find(states=[State.REQUESTED])) == 2  # maybe still being written
    clock.advance(minutes=2)
    flow.track()
    assert [store.get(o.id).state for o in orphans] == [State.EXPIRED] * 2  # nobody can approve


def test_the_card_lists_every_table_and_the_common_window(store, aws, clock):
    flow = flow_on(store, aws, clock)
    members = members_of(store, ask(flow).request.id)
    _, blocks = batch_card(members, clock.now)
    card = str(to_dicts(blocks))
    assert "Restore 3 tables to one instant" in card and "Common window" in card
    assert all(f"{t}-before-incident" in card for t in TABLES)
    assert card.count("Approve") == 1
    assert "ledger" in batch_progress_text(members, clock.now)


def test_the_batch_thread_says_when_aws_is_asked_again_after_its_limit(store, aws, clock):
    aws.restore_error = AwsError("LimitExceededException", "limit", retryable=True)
    flow = flow_on(store, aws, clock)
    leader = ask(flow).request
    flow.approve(leader.id, "U2")
    members = members_of(store, leader.id)
    assert {m.state for m in members} == {State.APPROVED}  # queued, none failed
    retry_at = (clock.now + timedelta(seconds=10)).strftime("%H:%M")
    text = batch_progress_text(members, clock.now)
    assert text.count(f"AWS limit reached, retrying at {retry_at} UTC") == 3


def test_an_expired_batch_tells_the_requester_every_table_in_one_notice(store, aws, clock):
    flow = flow_on(store, aws, clock)
    leader = ask(flow).request
    clock.advance(hours=24)
    flow.track()
    members = members_of(store, leader.id)
    assert {m.state for m in members} == {State.EXPIRED}
    owed = [o for o in store.outbox_due(clock.now, limit=100) if o.kind == "notify_requester"]
    assert [o.restore_id for o in owed] == [leader.id]  # one notice, from the leader
    notice = batch_requester_notice(members)
    assert "expired" in notice and "nothing was restored" in notice
    assert all(f"`{t}` → `{t}-before-incident`" in notice for t in TABLES)
