"""The same store contract on both backends: SQLite (embedded) and DynamoDB (shared, on moto)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from bot.drills.model import Drill, DrillState, slot_drill_id
from bot.items.jobs import ItemJob, JobState
from bot.restores import RestoreRequest, State, Window
from bot.store import AuditEvent, Change
from bot.store.codec import to_record
from bot.store.due import SCHEDULE_ATTRIBUTES
from bot.store.dynamodb import DynamoStore
from bot.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


@contextmanager
def store_of(kind: str, tmp_path: Path) -> Iterator[SqliteStore | DynamoStore]:
    """A fresh store of `kind`: a SQLite file, or a DynamoDB table on moto (with aws_env)."""
    if kind == "sqlite":
        s = SqliteStore(str(tmp_path / "state.db"))
        try:
            yield s
        finally:
            s.close()
        return
    with mock_aws():
        yield DynamoStore("pitr-bot-state", Serialized(boto3.client("dynamodb")))


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path, aws_env):
    with store_of(request.param, tmp_path) as s:
        yield s


class Serialized:
    """moto applies a transaction in steps without a lock; real DynamoDB is linearizable.

    Serialising calls gives the racing threads what DynamoDB gives: each conditional write
    sees every write before it.
    """

    def __init__(self, client):
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)

        return call


def make(**kw) -> RestoreRequest:
    base = dict(
        source="orders",
        target="orders-copy",
        requester="U1",
        channel="C1",
        restore_at=NOW - timedelta(hours=1),
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        window=Window(NOW - timedelta(days=35), NOW - timedelta(minutes=5)),
    )
    base.update(kw)
    return RestoreRequest(**base)


def test_roundtrip_keeps_every_field(store):
    req = make(approvals=("U2",), reason="bad deploy <!channel>", requester_tz="Europe/Berlin")
    store.add(req)
    assert store.get(req.id) == req
    assert store.get("missing") is None


def test_save_is_compare_and_set(store):
    req = make()
    store.add(req)
    won = store.save(req, req.advance(State.DENIED, NOW, decided_by="U2"))
    assert won is not None and won.version == 1
    assert store.save(req, req.advance(State.APPROVED, NOW)) is None  # stale copy loses
    assert store.get(req.id).state == State.DENIED


def test_concurrent_saves_one_winner(store):
    req = make()
    store.add(req)
    wins = []
    barrier = threading.Barrier(10)

    def attempt(user: str) -> None:
        barrier.wait()
        new = req.with_approval(user).advance(State.APPROVED, NOW, decided_by=user)
        if store.save(req, new, announce=["card_update"]):
            wins.append(user)

    threads = [threading.Thread(target=attempt, args=(f"U{i}",)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.get(req.id).decided_by == wins[0]
    assert [i.kind for i in store.outbox_due(NOW + timedelta(days=1))] == ["card_update"]


def test_outbox_is_ordered_claimed_retried_and_done(store):
    req = make()
    store.add(req, announce=["card"])
    store.save(req, req.advance(State.DENIED, NOW), announce=["card_update", "notify_requester"])
    items = store.outbox_due(NOW + timedelta(days=1))
    assert [i.kind for i in items] == ["card", "card_update", "notify_requester"]
    first = items[0]
    far = datetime.now(UTC) + timedelta(minutes=5)
    assert store.outbox_claim(first.id, "replica-a", far)
    assert not store.outbox_claim(first.id, "replica-b", far)  # held by a
    store.outbox_retry(first.id, NOW + timedelta(minutes=1), "ratelimited")
    due_now = store.outbox_due(NOW)
    assert [i.kind for i in due_now] == ["card_update", "notify_requester"]
    later = store.outbox_due(NOW + timedelta(minutes=2))
    assert later[0].kind == "card" and later[0].attempts == 1
    for item in later:
        store.outbox_done(item.id)
    assert store.outbox_due(NOW + timedelta(days=1)) == []


def test_failed_cas_writes_no_announcement(store):
    req = make()
    store.add(req)
    store.save(req, replace(req, reason="x"))
    assert store.save(req, req.advance(State.DENIED, NOW), announce=["card_update"]) is None
    assert store.outbox_due(NOW + timedelta(days=1)) == []


def test_find_by_state_and_source(store):
    a, b, c = make(), make(source="users", target="users-copy"), make(target="orders-2")
    for r in (a, b, c):
        store.add(r)
    store.save(c, c.advance(State.APPROVED, NOW))
    requested = {r.id for r in store.find(states=[State.REQUESTED])}
    assert requested == {a.id, b.id}
    assert {r.id for r in store.find(source="orders")} == {a.id, c.id}
    assert {r.id for r in store.find(states=[State.APPROVED], source="orders")} == {c.id}


def test_audit_filters(store):
    for minute, table in [(1, "orders"), (2, "users"), (3, "orders"), (4, "orders")]:
        at = NOW + timedelta(minutes=minute)
        store.audit(AuditEvent(at, f"e{minute}", None, "U1", "C1", table, ""))
    assert [e.event for e in store.audit_events()] == ["e1", "e2", "e3", "e4"]
    assert [e.event for e in store.audit_events(table="orders", limit=2)] == ["e3", "e4"]
    assert [e.event for e in store.audit_events(since=NOW + timedelta(minutes=2))] == [
        "e2",
        "e3",
        "e4",
    ]


def test_first_use_remembers_a_key_until_it_expires(store):
    from datetime import datetime as dt

    later = dt.now(UTC) + timedelta(minutes=5)
    assert store.first_use("1700000000:v0=abc", later) is True
    assert store.first_use("1700000000:v0=abc", later) is False  # a replay
    assert store.first_use("1700000000:v0=def", later) is True  # another request
    # A key whose window has passed is forgotten (its request is stale anyway).
    past = dt.now(UTC) - timedelta(seconds=1)
    assert store.first_use("1700000001:v0=old", past) is True
    assert store.first_use("1700000001:v0=old", later) is True
    # Seen-keys are not requests: they never show up among them.
    assert store.find() == []


def test_first_use_has_one_winner_across_threads(store):
    from datetime import datetime as dt

    until = dt.now(UTC) + timedelta(minutes=5)
    results: list[bool] = []
    start = threading.Barrier(6)

    def race():
        start.wait()
        results.append(store.first_use("1700000002:v0=race", until))

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]


# -- restore drills ---------------------------------------------------------------------------
def make_drill(**kw) -> Drill:
    base = dict(
        source="orders",
        target="orders-drill-202611270300",
        channel="C9",
        slot=NOW,
        created_at=NOW,
    )
    base.update(kw)
    return Drill(**base)


def test_a_drill_slot_is_claimed_once(store):
    first = make_drill(id=slot_drill_id("orders", NOW))
    again = make_drill(id=slot_drill_id("orders", NOW), requested_by="U7")
    assert store.drill_add(first) is True
    assert store.drill_add(again) is False  # another replica's claim of the same slot
    assert store.drill_get(first.id) == first


def test_concurrent_slot_claims_one_winner(store):
    wins: list[int] = []

    def claim(n: int) -> None:
        if store.drill_add(make_drill(id="s-race", created_at=NOW + timedelta(seconds=n))):
            wins.append(n)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.drill_get("s-race").created_at == NOW + timedelta(seconds=wins[0])


def test_drill_save_is_compare_and_set_and_announces_with_the_drill_id(store):
    d = make_drill()
    store.drill_add(d)
    restoring = store.drill_save(d, d.advance(DrillState.RESTORING, NOW, restore_called_at=NOW))
    assert restoring is not None and restoring.version == 1
    stale = d.advance(DrillState.FAILED, NOW, problem="late")
    assert store.drill_save(d, stale, announce=["drill_report"]) is None  # lost the race
    assert store.outbox_due(NOW + timedelta(days=1)) == []
    failed = restoring.advance(DrillState.FAILED, NOW, problem="x")
    assert store.drill_save(restoring, failed, announce=["drill_report"]) is not None
    (item,) = store.outbox_due(NOW + timedelta(days=1))
    assert (item.kind, item.restore_id) == ("drill_report", d.id)
    assert store.drill_get(d.id).state == DrillState.FAILED


def test_a_drill_transition_and_its_audit_entry_are_one_write(store):
    """As for requests: a lost race writes no entry, a won one writes it with the state."""
    d = make_drill()
    asked = AuditEvent(NOW, "drill_requested", d.id, "U1", "C1", "orders", "target")
    assert store.drill_add(d, audit=[asked]) is True
    assert store.drill_add(d, audit=[replace(asked, detail="again")]) is False
    won = store.drill_save(
        d,
        d.advance(DrillState.RESTORING, NOW, restore_called_at=NOW),
        audit=[replace(asked, event="drill_started")],
    )
    assert won is not None
    lost = d.advance(DrillState.FAILED, NOW, problem="late")
    assert store.drill_save(d, lost, audit=[replace(asked, event="drill_failed")]) is None
    assert sorted((e.event, e.detail) for e in store.audit_events()) == [
        ("drill_requested", "target"),
        ("drill_started", "target"),
    ]


def test_drill_find_by_state_and_source_never_mixes_with_restores(store):
    store.add(make())  # a restore request of `orders`
    a = make_drill(created_at=NOW)
    b = make_drill(created_at=NOW + timedelta(hours=1))
    c = make_drill(source="users", target="users-drill-202611270300")
    for d in (a, b, c):
        store.drill_add(d)
    store.drill_save(a, a.advance(DrillState.FAILED, NOW, problem="x"))
    assert [d.id for d in store.drill_find(source="orders")] == [b.id, a.id]  # newest first
    assert {d.id for d in store.drill_find()} == {a.id, b.id, c.id}
    assert {d.id for d in store.drill_find(states=[DrillState.STARTED])} == {b.id, c.id}
    assert [d.id for d in store.drill_find(states=[DrillState.FAILED], source="orders")] == [a.id]
    assert [r.source for r in store.find()] == ["orders"]
    assert [r.source for r in store.find(source="orders")] == ["orders"]
    assert store.find(states=[State.REQUESTED])[0].target == "orders-copy"


def entry(req: RestoreRequest, name: str, minute: int = 0) -> AuditEvent:
    return AuditEvent(NOW + timedelta(minutes=minute), name, req.id, "U2", "C1", req.source, "")


def test_a_transition_and_its_audit_entries_are_one_write(store):
    req = make()
    store.add(req, announce=["card"], audit=[entry(req, "requested")])
    assert [e.event for e in store.audit_events()] == ["requested"]
    denied = req.advance(State.DENIED, NOW, decided_by="U2")
    saved = store.save(
        req, denied, announce=["card_update"], audit=[entry(req, "denied", 1), entry(req, "x", 1)]
    )
    assert saved is not None
    assert store.get(req.id).state == State.DENIED
    assert [(e.event, e.restore_id) for e in store.audit_events()] == [
        ("requested", req.id),
        ("denied", req.id),
        ("x", req.id),
    ]
    assert [i.kind for i in store.outbox_due(NOW + timedelta(days=1))] == ["card", "card_update"]


def test_a_lost_compare_and_set_writes_no_audit_entry(store):
    req = make()
    store.add(req)
    store.save(req, replace(req, reason="someone else won"))
    lost = store.save(req, req.advance(State.EXPIRED, NOW), audit=[entry(req, "expired")])
    assert lost is None
    assert store.audit_events() == []
    assert store.get(req.id).state == State.REQUESTED


def batch_of(n: int) -> list[RestoreRequest]:
    leader = make(target="t-0")
    ids = (leader.id, *(f"member{i}" for i in range(1, n)))
    leader = replace(leader, batch_id=leader.id, batch_members=ids)
    members = [make(target=f"t-{i}", id=ids[i], batch_id=leader.id) for i in range(1, n)]
    return [leader, *members]


def test_a_batch_approval_is_one_write_of_every_record_or_none(store):
    batch = batch_of(25)  # the largest batch a request takes (bot/tableref.py MAX_BATCH)
    for req in batch:
        store.add(req)
    changes = [
        Change(
            r, r.advance(State.APPROVED, NOW, decided_by="U2"), ["card_update"] if i == 0 else ()
        )
        for i, r in enumerate(batch)
    ]
    saved = store.save_all(changes, audit=[entry(r, "approved") for r in batch])
    assert saved is not None and [s.version for s in saved] == [1] * 25
    assert {store.get(r.id).state for r in batch} == {State.APPROVED}
    assert [e.restore_id for e in store.audit_events()] == [r.id for r in batch]
    assert [i.kind for i in store.outbox_due(NOW + timedelta(days=1))] == ["card_update"]


def test_one_stale_member_keeps_the_whole_batch_approval_from_being_written(store):
    batch = batch_of(3)
    for req in batch:
        store.add(req)
    store.save(batch[2], replace(batch[2], reason="changed meanwhile"))  # batch[2] is now stale
    changes = [Change(r, r.advance(State.APPROVED, NOW, decided_by="U2")) for r in batch]
    assert store.save_all(changes, audit=[entry(r, "approved") for r in batch]) is None
    # Nothing of it was written: not the leader, not the first member, no audit entry.
    assert {store.get(r.id).state for r in batch} == {State.REQUESTED}
    assert store.audit_events() == []


def restoring(req: RestoreRequest) -> RestoreRequest:
    return req.advance(State.RESTORING, NOW, restore_called_at=NOW)


def test_an_account_has_50_restore_slots_taken_and_freed_with_the_transition(store):
    reqs = [make(target=f"t-{i}", state=State.APPROVED) for i in range(51)]
    for req in reqs:
        store.add(req)
    started = [store.save(r, restoring(r)) for r in reqs[:50]]
    assert all(started)
    assert store.save(reqs[50], restoring(reqs[50])) is None  # every slot taken
    assert store.get(reqs[50].id).state == State.APPROVED
    other = make(source="prod:orders", target="prod:o-copy", state=State.APPROVED)
    store.add(other)
    assert store.save(other, restoring(other)) is not None  # prod's slots are its own
    done = started[0]
    assert store.save(done, done.advance(State.ACTIVE, NOW)) is not None  # frees its slot
    assert store.save(reqs[50], restoring(reqs[50])) is not None


def test_two_replicas_racing_for_the_last_slots_never_exceed_50(store):
    reqs = [make(target=f"t-{i}", state=State.APPROVED) for i in range(60)]
    for req in reqs:
        store.add(req)
    barrier = threading.Barrier(4)

    def replica(mine: list[RestoreRequest]) -> None:
        barrier.wait()
        for req in mine:
            store.save(req, restoring(req))

    threads = [threading.Thread(target=replica, args=(reqs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    running = [r for r in reqs if store.get(r.id).state == State.RESTORING]
    assert len(running) == 50


def test_due_hands_out_what_is_due_and_says_when_the_next_falls_due(store):
    later = NOW + timedelta(seconds=40)
    due_now = make(state=State.RESTORING, next_check_at=NOW - timedelta(seconds=1))
    never_checked = make(state=State.APPROVED)
    not_yet = make(state=State.RESTORING, next_check_at=later)
    theirs = make(  # leased by a live replica: not ours to check until the lease ends
        state=State.RESTORING,
        next_check_at=NOW,
        lease_owner="other",
        lease_until=NOW + timedelta(seconds=90),
    )
    done = make(state=State.ACTIVE, next_check_at=NOW - timedelta(hours=1))
    for req in (due_now, never_checked, not_yet, theirs, done):
        store.add(req)
    due, upcoming = store.due(NOW, owner="me")
    assert {r.id for r in due} == {due_now.id, never_checked.id}
    assert upcoming == later
    _, first = store.due(NOW, owner="me", limit=0)
    assert first == NOW  # something is due already: wake now
    _, after_lease = store.due(NOW + timedelta(seconds=91), owner="me")
    assert after_lease is None  # all four in flight were handed out


def test_a_lease_on_the_first_in_line_makes_the_next_one_the_wake_up(store):
    leased = make(  # first by its check time, but another replica holds it for 100 s
        state=State.RESTORING,
        next_check_at=NOW + timedelta(seconds=10),
        lease_owner="other",
        lease_until=NOW + timedelta(seconds=100),
    )
    mine = make(state=State.RESTORING, next_check_at=NOW + timedelta(seconds=40))
    for req in (leased, mine):
        store.add(req)
    assert store.due(NOW, owner="me") == ([], NOW + timedelta(seconds=40))
    assert store.due(NOW, owner="other") == ([], NOW + timedelta(seconds=10))  # its own lease
    due, _ = store.due(NOW + timedelta(seconds=100), owner="me")
    assert {r.id for r in due} == {leased.id, mine.id}


def test_a_new_check_time_is_seen_by_the_next_due_scan(store):
    req = make(state=State.RESTORING, next_check_at=NOW + timedelta(seconds=60))
    store.add(req)
    assert store.due(NOW, owner="me") == ([], NOW + timedelta(seconds=60))
    sooner = store.save(req, replace(req, next_check_at=NOW - timedelta(seconds=1)))
    assert store.due(NOW, owner="me") == ([sooner], None)
    done = store.save(sooner, sooner.advance(State.ACTIVE, NOW))
    assert done is not None
    assert store.due(NOW, owner="me") == ([], None)  # finished: never handed out again


def test_account_load_counts_slots_taken_and_approved_requests_per_account(store):
    reqs = [make(target=f"t-{i}", state=State.APPROVED) for i in range(3)]
    other = make(source="prod:orders", target="prod:o-copy", state=State.APPROVED)
    for req in (*reqs, other):
        store.add(req)
    assert store.account_load("") == (0, 3)
    assert store.save(reqs[0], restoring(reqs[0])) is not None
    assert store.account_load("") == (1, 2)
    assert store.account_load("prod") == (0, 1)
    assert store.account_load("nobody") == (0, 0)


EARLIER_SQLITE = """
CREATE TABLE restores (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, source TEXT NOT NULL,
    version INTEGER NOT NULL, created_at TEXT NOT NULL, doc TEXT NOT NULL
);
"""


@pytest.mark.parametrize("kind", ["sqlite", "dynamodb"])
def test_requests_written_by_an_earlier_version_are_still_tracked(kind, tmp_path, aws_env):
    """A state file or table written before the scheduling columns existed: after an upgrade
    the requests in flight are handed out when due, and counted in their account's load."""
    later = NOW + timedelta(seconds=40)
    due_now = make(state=State.RESTORING, next_check_at=NOW - timedelta(seconds=1))
    waiting = make(state=State.APPROVED)
    not_yet = make(state=State.RESTORING, next_check_at=later)
    reqs = (due_now, waiting, not_yet)
    if kind == "sqlite":
        path = tmp_path / "state.db"
        db = sqlite3.connect(path)
        db.executescript(EARLIER_SQLITE)
        for r in reqs:
            row = (r.id, r.state.value, r.source, r.version, r.created_at.isoformat())
            db.execute(
                "INSERT INTO restores VALUES (?, ?, ?, ?, ?, ?)",
                (*row, json.dumps(to_record(r))),
            )
        db.commit()
        db.close()
        context = store_of_file(path)
    else:
        context = store_of(kind, tmp_path)
    with context as store:
        if kind == "dynamodb":
            for r in reqs:
                item = store._request_item(r)
                for name in SCHEDULE_ATTRIBUTES:
                    item.pop(name, None)
                store.client.put_item(TableName=store.table, Item=item)
        due, upcoming = store.due(NOW, owner="me")
        assert {r.id for r in due} == {due_now.id, waiting.id}
        assert upcoming == later
        assert store.account_load("") == (0, 1)
        # Written again by this version: its new check time is what the scan sees.
        assert store.save(not_yet, replace(not_yet, next_check_at=NOW)) is not None
        due, upcoming = store.due(NOW, owner="me")
        assert {r.id for r in due} == {due_now.id, waiting.id, not_yet.id}


@contextmanager
def store_of_file(path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(str(path))
    try:
        yield s
    finally:
        s.close()


# -- item jobs (compare / copy back / undo) ----------------------------------------------------
def make_job(**kw) -> ItemJob:
    base = dict(
        restore_id="r1",
        live_table="orders",
        restored_table="orders-copy",
        channel="C9",
        thread_ts="1.0",
        requested_by="U1",
        created_at=NOW,
        job_path="/tmp/job.sqlite",
    )
    base.update(kw)
    return ItemJob(**base)


def test_an_item_job_round_trips_and_is_added_once(store):
    job = make_job(partition_keys=["a", "b"])
    audit = AuditEvent(NOW, "compare_started", job.id, "U1", "C9", "orders", "orders-copy")
    assert store.job_add(job, announce=["job_progress"], audit=[audit]) is True
    assert store.job_add(job) is False
    assert store.job_get(job.id) == job
    assert store.job_get("nope") is None
    (item,) = store.outbox_due(NOW + timedelta(days=1))
    assert (item.kind, item.restore_id) == ("job_progress", job.id)
    assert [e.event for e in store.audit_events()] == ["compare_started"]


def test_only_one_click_wins_a_copy_back_approval(store):
    job = make_job()
    store.job_add(job)
    compared = store.job_save(job, job.advance(JobState.COMPARED, NOW, missing=12, changed=8))
    asked = store.job_save(
        compared, compared.advance(JobState.COPY_REQUESTED, NOW, copy_requested_by="U1")
    )
    wins: list[str] = []

    def approve(user: str) -> None:
        new = asked.advance(JobState.COPYING, NOW, copy_decided_by=user)
        if store.job_save(asked, new, announce=["job_decided"]) is not None:
            wins.append(user)

    threads = [threading.Thread(target=approve, args=(f"U{n}",)) for n in range(2, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    stored = store.job_get(job.id)
    assert (stored.state, stored.copy_decided_by, stored.missing) == (
        JobState.COPYING,
        wins[0],
        12,
    )
    assert [i.kind for i in store.outbox_due(NOW + timedelta(days=1))] == ["job_decided"]


def test_job_find_by_state_never_mixes_with_restores_or_drills(store):
    store.add(make())
    store.drill_add(make_drill())
    a = make_job(created_at=NOW)
    b = make_job(created_at=NOW + timedelta(minutes=1))
    store.job_add(a)
    store.job_add(b)
    store.job_save(b, b.advance(JobState.COMPARED, NOW))
    assert [j.id for j in store.job_find([JobState.COMPARING])] == [a.id]
    assert [j.id for j in store.job_find()] == [b.id, a.id]
    assert store.find(states=[State.REQUESTED]) != [] and store.drill_find() != []


def test_audit_pages_stream_a_time_range_oldest_first(store):
    for minute in range(1, 8):
        table = "orders" if minute % 2 else "users"
        at = NOW + timedelta(minutes=minute)
        store.audit(AuditEvent(at, f"e{minute}", None, "U1", "C1", table))
    pages = list(store.audit_pages(page_size=3))
    assert all(1 <= len(page) <= 3 for page in pages) and len(pages) >= 3
    assert [e.event for page in pages for e in page] == [f"e{m}" for m in range(1, 8)]
    ranged = store.audit_pages(
        since=NOW + timedelta(minutes=2), until=NOW + timedelta(minutes=5), page_size=2
    )
    # since is included, until is not
    assert [e.event for page in ranged for e in page] == ["e2", "e3", "e4"]
    until_only = store.audit_pages(until=NOW + timedelta(minutes=3))
    assert [e.event for page in until_only for e in page] == ["e1", "e2"]
    assert list(store.audit_pages(since=NOW + timedelta(hours=1))) == []
