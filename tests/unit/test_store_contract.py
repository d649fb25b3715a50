"""The same store contract on both backends: SQLite (embedded) and DynamoDB (shared, on moto)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

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
