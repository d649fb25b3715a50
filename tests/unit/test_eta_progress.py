"""The ETA moves with time: the progress reply, /pitr-status and the Home render it from the
start time and the estimate read when the restore started, at a fake `now`."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from test_eta_tracking import CountingGateway, finished
from test_workflow import START, Clock, FakeGateway, make_flow, requested

from bot.blocks import eta_line, progress_text
from bot.eta import Eta
from bot.restores import State
from bot.store.sqlite import SqliteStore


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def aws(clock: Clock) -> FakeGateway:
    gw = FakeGateway(clock)
    gw.add_table("Orders", pitr=True)
    return gw


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(str(tmp_path / "pitr.db"))
    yield s
    s.close()


def started(store, aws, clock: Clock, minutes=(35, 40, 50)):
    for n, m in enumerate(minutes):
        finished(store, m, n=n)
    flow = make_flow(store, aws, clock)
    req = requested(flow)
    assert flow.approve(req.id, "U2").ok
    running = store.get(req.id)
    assert running.state == State.RESTORING and running.restore_called_at == clock.now
    return flow, running


def test_the_progress_text_moves_as_time_passes(store, aws, clock: Clock) -> None:
    _, req = started(store, aws, clock)
    begin = req.restore_called_at
    at_20 = progress_text(req, begin + timedelta(minutes=20))
    at_30 = progress_text(req, begin + timedelta(minutes=30))
    at_51 = progress_text(req, begin + timedelta(minutes=51))
    assert "20 min 00 s elapsed" in at_20 and "50 % of typical" in at_20
    assert "30 min 00 s elapsed" in at_30 and "75 % of typical" in at_30
    assert "taking longer than any earlier restore of this table" not in at_30
    assert "128 % of typical" in at_51
    assert "taking longer than any earlier restore of this table" in at_51
    # The expected end is a clock time from the start: it does not move with `now`.
    end = (begin + timedelta(minutes=35)).strftime("%H:%M")
    assert f"expected {end}–" in at_20 and f"expected {end}–" in at_51
    # /pitr-status and the Home use the same line.
    assert eta_line(req, begin + timedelta(minutes=30)) in at_30


def test_the_estimate_is_read_again_when_the_restore_starts(store, aws, clock: Clock) -> None:
    flow = make_flow(store, aws, clock)
    req = requested(flow)
    assert req.estimate == "no history" and req.eta is None
    # While it waits for approval, three restores of the table finish.
    for n, minutes in enumerate((35, 40, 50)):
        finished(store, minutes, n=n)
    clock.advance(minutes=20)
    assert flow.approve(req.id, "U2").ok
    running = store.get(req.id)
    assert Eta.from_dict(running.eta) == Eta(2400, 2100, 2700, 3000, 3, "own")
    clock.advance(minutes=20)
    assert "50 % of typical" in progress_text(running, clock.now)
    # ...and the schedule follows it: sparse early on, not the plain 10 s poll.
    flow.track()
    assert store.get(req.id).next_check_at - clock.now == timedelta(seconds=60)


def test_the_progress_reply_is_edited_about_once_a_minute(store, aws, clock: Clock) -> None:
    gw = CountingGateway(aws)
    flow, req = started(store, gw, clock)
    edits = []
    # Tick every second for 50 minutes; play the announcer: send each queued progress edit.
    for _ in range(50 * 60):
        clock.advance(seconds=1)
        flow.track()
        due = [i for i in store.outbox_due(clock.now + timedelta(days=1)) if i.kind == "progress"]
        for item in due:
            store.outbox_done(item.id)
            fresh = store.get(req.id)
            store.save(fresh, replace(fresh, progress_at=clock.now))
            edits.append(clock.now)
    assert store.get(req.id).state == State.RESTORING
    gaps = [(b - a).total_seconds() for a, b in zip(edits, edits[1:], strict=False)]
    later = [g for t, g in zip(edits[1:], gaps, strict=True) if t - START > timedelta(minutes=10)]
    # From 10 minutes on, about one edit a minute: time moves in the reply, no spam.
    assert later and all(55 <= g <= 125 for g in later), later
    assert 20 <= len(later) <= 42
    assert all(g >= 10 for g in gaps)  # never more often than the plain poll
