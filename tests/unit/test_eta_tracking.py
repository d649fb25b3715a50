"""The workflow with an ETA: the card's estimate, per-restore check times, leases, no waste."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from test_workflow import START, Clock, FakeGateway, make_flow, requested

from bot.blocks import eta_line, progress_text
from bot.eta import Eta
from bot.restores import RestoreRequest, State
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


def finished(store, minutes: float, source: str = "Orders", n: int = 0) -> None:
    """An earlier restore of `source` that took `minutes`, as the store keeps it."""
    called = START - timedelta(days=1, hours=n)
    store.add(
        RestoreRequest(
            source=source,
            target=f"{source}-old-{n}",
            requester="U1",
            channel="C1",
            restore_at=None,
            created_at=called,
            expires_at=called + timedelta(hours=1),
            state=State.ACTIVE,
            restore_called_at=called,
            finished_at=called + timedelta(minutes=minutes),
            source_bytes=2048,
            source_items=10,
        )
    )


class CountingGateway:
    """Counts DescribeTable calls per table on top of the test gateway."""

    def __init__(self, inner):
        self.inner, self.describes = inner, {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def table(self, name):
        self.describes[name] = self.describes.get(name, 0) + 1
        return self.inner.table(name)


def test_the_card_states_the_expected_duration_from_history(store, aws, clock) -> None:
    for n, minutes in enumerate((35, 40, 50)):
        finished(store, minutes, n=n)
    req = requested(make_flow(store, aws, clock))
    assert req.estimate.startswith("typical 35–45 min (median 40 min, 3 earlier restores")
    assert Eta.from_dict(req.eta) == Eta(2400, 2100, 2700, 3000, 3, "own", (2100.0, 2400.0, 3000.0))


def test_with_history_the_tracker_checks_rarely_early_and_often_near_the_end(
    store, aws, clock: Clock
) -> None:
    for n, minutes in enumerate((35, 40, 50)):
        finished(store, minutes, n=n)
    gw = CountingGateway(aws)
    flow = make_flow(store, gw, clock)
    req = requested(flow)
    assert flow.approve(req.id, "U2").ok
    gw.describes.clear()
    # Tick every second, as a busy tracker might: only due restores are read.
    for _ in range(20 * 60):
        clock.advance(seconds=1)
        flow.track()
    early = gw.describes.get("Orders-restored", 0)
    assert 10 <= early <= 21  # at most one a minute; a plain 10 s poll would have made 120
    for _ in range(15 * 60):  # on to 35 min, where the earlier restores began to end
        clock.advance(seconds=1)
        flow.track()
    before = gw.describes["Orders-restored"]
    for _ in range(10 * 60):  # 35-45 min: the typical range (bot/poll_plan.py plans it)
        clock.advance(seconds=1)
        flow.track()
    near = gw.describes["Orders-restored"] - before
    assert near > 2 * early  # ten minutes near the end: over twice the first twenty's checks


def test_without_history_the_plain_poll_interval(store, aws, clock: Clock) -> None:
    gw = CountingGateway(aws)
    flow = make_flow(store, gw, clock)
    req = requested(flow)
    assert req.estimate == "no history"
    assert flow.approve(req.id, "U2").ok
    gw.describes.clear()
    for _ in range(100):
        clock.advance(seconds=1)
        flow.track()
    assert gw.describes["Orders-restored"] == 10  # one DescribeTable per due check, no more


def test_the_lease_outlives_the_gap_to_the_next_check(store, aws, clock: Clock) -> None:
    for n, minutes in enumerate((35, 40, 50)):
        finished(store, minutes, n=n)
    mine, other = make_flow(store, aws, clock, owner="me"), make_flow(store, aws, clock, owner="b")
    req = requested(mine)
    assert mine.approve(req.id, "U2").ok
    clock.advance(seconds=60)
    mine.track()
    held = store.get(req.id)
    assert held.next_check_at - clock.now == timedelta(seconds=60)  # sparse: 60 s away
    assert held.lease_until > held.next_check_at  # the other replica must keep off till then
    clock.advance(seconds=59)
    assert other.track() == 0
    assert store.get(req.id).lease_owner == "me"
    # The holder died: once its lease runs out, the other replica takes over.
    clock.advance(seconds=held.lease_until.timestamp() - clock.now.timestamp() + 1)
    assert other.track() == 1
    assert store.get(req.id).lease_owner == "b"


def test_an_overdue_restore_is_checked_at_the_plain_pace_forever(store, aws, clock) -> None:
    for n, minutes in enumerate((35, 40, 50)):
        finished(store, minutes, n=n)
    gw = CountingGateway(aws)
    flow = make_flow(store, gw, clock)
    req = requested(flow)
    assert flow.approve(req.id, "U2").ok
    got = store.get(req.id)
    store.save(got, replace(got, next_check_at=clock.now + timedelta(hours=3)))
    clock.advance(hours=3)  # far past the longest earlier restore (50 min)
    gw.describes.clear()
    for _ in range(60):
        clock.advance(seconds=1)
        flow.track()
    assert gw.describes["Orders-restored"] == 6
    assert store.get(req.id).state == State.RESTORING


def test_progress_reply_and_status_show_the_same_eta_line(store, aws, clock: Clock) -> None:
    from bot.blocks import status_blocks, to_dicts
    from bot.pitr import PitrInfo, TableInfo

    for n, minutes in enumerate((35, 40, 50)):
        finished(store, minutes, n=n)
    flow = make_flow(store, aws, clock)
    req = requested(flow)
    assert flow.approve(req.id, "U2").ok
    clock.advance(minutes=52)
    running = store.get(req.id)
    line = "typical 35–45 min for `Orders` · 130 % of typical · taking longer than any earlier"
    assert line in progress_text(running, clock.now)
    assert "elapsed" in progress_text(running, clock.now)
    _, blocks = status_blocks(
        "Orders",
        TableInfo(name="Orders", status="ACTIVE", arn="arn", item_count=10, size_bytes=2048),
        PitrInfo("Orders", "DISABLED"),
        [running],
        [],
        clock.now,
    )
    assert line in str(to_dicts(blocks))


def test_tracking_lag_counts_lateness_not_a_planned_gap(store, aws, clock: Clock) -> None:
    from bot.metrics import Metrics

    for n, minutes in enumerate((35, 40, 50)):
        finished(store, minutes, n=n)
    flow = make_flow(store, aws, clock)
    req = requested(flow)
    assert flow.approve(req.id, "U2").ok
    clock.advance(seconds=60)
    flow.track()  # next check 60 s away, as planned
    metrics = Metrics(store, clock)

    def lag() -> float:
        line = next(
            x for x in metrics.render().decode().splitlines() if x.startswith("pitr_bot_tracking")
        )
        return float(line.split()[-1])

    clock.advance(seconds=50)
    assert lag() == 0  # 50 s since the last check, but it isn't due yet
    clock.advance(seconds=40)
    assert lag() == 30  # now it is 30 s late (this tracker is stopped)


def test_the_tracker_wakes_for_the_earliest_due_restore(store, aws, clock: Clock) -> None:
    from bot.tracker import Tracker

    flow = make_flow(store, aws, clock)
    tracker = Tracker(flow, announcer=None, poll_seconds=10)  # type: ignore[arg-type]
    now = clock.now
    assert tracker.wake_at(now, None) == now + timedelta(seconds=10)  # nothing due: usual pace
    soon = now + timedelta(seconds=2.5)
    assert tracker.wake_at(now, soon) == soon  # not on a 10 s grid
    later = now + timedelta(seconds=45)
    assert tracker.wake_at(now, later) == now + timedelta(seconds=10)  # expiries, replicas
    assert tracker.wake_at(now, now - timedelta(seconds=5)) > now  # overdue: soon, no spin


# -- the ETA moves with time: rendered from the start and the estimate at a fake now ------
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
    assert Eta.from_dict(running.eta) == Eta(
        2400, 2100, 2700, 3000, 3, "own", (2100.0, 2400.0, 3000.0)
    )
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


def test_the_progress_reply_says_overdue_within_one_poll_of_the_longest(store, aws, clock) -> None:
    """Issue 22: passing the longest earlier restore of the table is news for the thread; the
    progress reply says so at the next poll, not at the next minute's edit (or at ACTIVE)."""
    flow, req = started(store, aws, clock)  # earlier restores took 35, 40 and 50 min
    longest = timedelta(minutes=50)
    begin = req.restore_called_at
    said: list[tuple[timedelta, str]] = []  # (elapsed, progress text) of every edit sent

    def send_progress() -> None:
        """What the announcer does with a progress item: render, send, stamp progress_at."""
        for item in store.outbox_due(clock.now, limit=50):
            if item.kind == "progress":
                current = store.get(item.restore_id)
                said.append((clock.now - begin, progress_text(current, clock.now)))
                store.save(current, replace(current, progress_at=clock.now))
            store.outbox_done(item.id)

    while clock.now - begin < longest + timedelta(seconds=60):
        clock.advance(seconds=1)
        flow.track()
        send_progress()
    overdue = [at for at, text in said if "taking longer than any earlier restore" in text]
    assert overdue, "the thread never heard that the restore is overdue"
    assert all(at > longest for at in overdue)
    assert overdue[0] <= longest + timedelta(seconds=10)  # within one PITR_BOT_POLL_SECONDS
    assert store.get(req.id).state == State.RESTORING  # said before ACTIVE


def test_a_first_restore_borrows_the_accounts_history_and_the_card_says_so(
    store, aws, clock
) -> None:
    # Orders was never restored; three other tables of the account were, at Orders' size.
    for n, (source, minutes) in enumerate((("Users", 20), ("Carts", 24), ("Events", 22))):
        finished(store, minutes, source=source, n=n)
    flow = make_flow(store, aws, clock)
    req = requested(flow)
    assert req.estimate == (
        "typical 20–24 min (median 22 min; borrowed: estimated from 3 restores of other "
        "tables in this account, by size)"
    )
    assert flow.approve(req.id, "U2").ok
    running = store.get(req.id)
    assert "other tables in this account (borrowed, by size)" in progress_text(
        running, clock.now + timedelta(minutes=5)
    )
