"""The same store contract on both backends: SQLite (embedded) and DynamoDB (shared, on moto)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from bot.drills import Drill, DrillState, slot_drill_id
from bot.restores import RestoreRequest, State, Window
from bot.store import AuditEvent
from bot.store.dynamodb import DynamoStore
from bot.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        s = SqliteStore(str(tmp_path / "state.db"))
        yield s
        s.close()
        return
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = Serialized(boto3.client("dynamodb", region_name="us-east-1"))
        yield DynamoStore("pitr-bot-state", client)


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
