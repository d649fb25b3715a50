"""The SQLite store: compare-and-set, outbox, audit. bot.store.sqlite + bot.store.codec."""

from __future__ import annotations

import threading
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.restores import RestoreRequest, State, Window
from bot.store import AuditEvent, open_store
from bot.store.codec import from_record, to_record
from bot.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(str(tmp_path / "state" / "pitr.db"))
    yield s
    s.close()


def make(**kw: object) -> RestoreRequest:
    base = RestoreRequest(
        source="Orders",
        target="Orders-restored",
        requester="U1",
        channel="C1",
        restore_at=None,
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def full() -> RestoreRequest:
    """A request with every field set to something other than its default."""
    return RestoreRequest(
        source="Orders",
        target="Orders-restored",
        requester="U1",
        channel="C1",
        restore_at=datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=UTC),
        created_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
        requester_tz="Europe/Berlin",
        reason="bad deploy — “quotes” & <stuff> 🙂",
        window=Window(NOW - timedelta(days=35), NOW - timedelta(minutes=5)),
        required_approvals=2,
        id="0123456789ab",
        state=State.RESTORING,
        version=0,
        approvals=("U2", "U3"),
        decided_by="U3",
        decided_at=NOW + timedelta(minutes=1),
        card_ts="1764158400.000100",
        progress_ts="1764158401.000200",
        progress_at=NOW + timedelta(minutes=2),
        restore_called_at=NOW + timedelta(minutes=1, seconds=1),
        table_arn="arn:aws:dynamodb:us-east-1:123456789012:table/Orders-restored",
        target_status="CREATING",
        finished_at=NOW + timedelta(minutes=40),
        item_count=1234,
        size_bytes=987654321,
        error="ThrottlingException: slow down",
        polls=17,
        error_streak=2,
        missing_polls=1,
        lease_owner="abcd1234",
        lease_until=NOW + timedelta(seconds=30),
        updated_at=NOW + timedelta(minutes=3),
        source_items=42,
        source_bytes=4096,
        source_billing="PROVISIONED",
        source_indexes=("by-artist", "by-year"),
        source_encryption="KMS",
        estimate="last 2 restores: 14–19 min",
        eta={"typical": 960.0, "low": 840.0, "high": 1080.0, "longest": 1140.0, "count": 2},
        next_check_at=NOW + timedelta(minutes=3),
        overrides={"billing_mode": "PAY_PER_REQUEST", "exclude_indexes": ["by-year"]},
        queued_ahead=3,
        limit_retries=2,
        batch_id="0123456789ab",
        batch_index=2,
        batch_done=True,
        batch_members=("0123456789ab", "ba9876543210"),
        aftercare={"aspects": [{"name": "ttl", "differs": True}], "fixed": {"ttl": {"by": "U2"}}},
        aftercare_ts="1764158402.000300",
        reminded_at=NOW + timedelta(days=7),
        reminder_ts="1764158403.000400",
        delete_state="REFUSED",
        delete_requested_by="U1",
        delete_decided_by="U2",
        delete_note="deletion protection is on",
        kind="pitr_period",
        recovery_days=7,
        previous_days=35,
        identity={"arn": "arn:aws:dynamodb:us-east-1:123456789012:table/Orders-restored"},
        break_glass_reason="nobody else awake at 3 a.m., orders lost",
        review_ts="1700000000.000500",
        reviewed_by="U9",
        review_reminded_at=NOW + timedelta(hours=5),
        function_execution_id="Fx123",
    )


def test_every_field_differs_from_its_default() -> None:
    # Guards the roundtrip test below: a new field must be added to `full()`.
    req, bare = full(), make()
    for f in fields(RestoreRequest):
        if f.name in {"source", "target", "requester", "channel", "created_at", "version"}:
            continue
        assert getattr(req, f.name) != getattr(bare, f.name), f.name


def test_add_get_roundtrip_of_every_field(store: SqliteStore) -> None:
    req = full()
    store.add(req)
    got = store.get(req.id)
    assert got == req
    assert isinstance(got.state, State)
    assert isinstance(got.approvals, tuple)
    assert isinstance(got.window, Window)
    for f in fields(RestoreRequest):
        value = getattr(got, f.name)
        if isinstance(value, datetime):
            assert value.tzinfo is not None, f.name
    assert got.window.earliest.tzinfo is not None


def test_roundtrip_of_defaults(store: SqliteStore) -> None:
    req = make()
    store.add(req)
    assert store.get(req.id) == req


def test_codec_ignores_fields_written_by_a_newer_version() -> None:
    record = to_record(full())
    record["shiny_new_field"] = 1
    assert from_record(record) == full()


def test_get_unknown_is_none(store: SqliteStore) -> None:
    assert store.get("nope") is None


def test_add_twice_is_refused(store: SqliteStore) -> None:
    req = make()
    store.add(req, announce=["card"])
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.IntegrityError
        store.add(req, announce=["card"])
    assert len(store.outbox_due(NOW + timedelta(days=1))) == 1


# -- compare-and-set ---------------------------------------------------------------------------
def test_save_bumps_the_version(store: SqliteStore) -> None:
    req = make()
    store.add(req)
    saved = store.save(req, req.advance(State.APPROVED, NOW, decided_by="U2"))
    assert saved is not None
    assert saved.version == 1
    assert saved.updated_at == NOW
    got = store.get(req.id)
    assert got == saved
    assert got.state == State.APPROVED


def test_stale_save_returns_none_and_changes_nothing(store: SqliteStore) -> None:
    req = make()
    store.add(req)
    approved = store.save(req, req.advance(State.APPROVED, NOW, decided_by="U2"))
    assert approved is not None
    stale = store.save(req, req.advance(State.DENIED, NOW, decided_by="U3"), announce=["x"])
    assert stale is None
    got = store.get(req.id)
    assert got.state == State.APPROVED
    assert got.decided_by == "U2"
    assert got.version == 1
    assert [i.kind for i in store.outbox_due(NOW + timedelta(days=1))] == []


def test_save_of_unknown_request_returns_none(store: SqliteStore) -> None:
    req = make()
    assert store.save(req, replace(req, reason="x")) is None
    assert store.get(req.id) is None


def test_racing_saves_exactly_one_wins(store: SqliteStore) -> None:
    req = make()
    store.add(req)
    barrier = threading.Barrier(20)
    results: list[RestoreRequest | None] = [None] * 20

    def racer(i: int) -> None:
        new = req.advance(State.APPROVED, NOW, decided_by=f"U{i}")
        barrier.wait()
        results[i] = store.save(req, new, announce=["card_update"])

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    got = store.get(req.id)
    assert got == winners[0]
    assert got.version == 1
    assert len(store.outbox_due(NOW + timedelta(days=1))) == 1


def test_find_filters_by_state_and_source_newest_first(store: SqliteStore) -> None:
    a = make(id="a", created_at=NOW)
    b = make(id="b", created_at=NOW + timedelta(minutes=1), state=State.RESTORING)
    c = make(id="c", created_at=NOW + timedelta(minutes=2), source="Users")
    for r in (a, b, c):
        store.add(r)
    assert [r.id for r in store.find()] == ["c", "b", "a"]
    assert [r.id for r in store.find(states=[State.REQUESTED])] == ["c", "a"]
    assert [r.id for r in store.find(source="Orders")] == ["b", "a"]
    assert [r.id for r in store.find(states=[State.RESTORING], source="Orders")] == ["b"]
    assert store.find(states=[]) == []
    assert [r.id for r in store.find(limit=1)] == ["c"]


# -- outbox ------------------------------------------------------------------------------------
LATER = NOW + timedelta(days=3650)


def test_outbox_written_with_add_and_save_in_order(store: SqliteStore) -> None:
    req = make()
    store.add(req, announce=["card"])
    saved = store.save(req, req.advance(State.DENIED, NOW), announce=["card_update", "notify"])
    assert saved is not None
    due = store.outbox_due(LATER)
    assert [i.kind for i in due] == ["card", "card_update", "notify"]
    assert [i.id for i in due] == sorted(i.id for i in due)
    assert all(i.restore_id == req.id for i in due)
    assert all(i.attempts == 0 and i.next_at is None for i in due)
    assert all(i.created_at.tzinfo is not None for i in due)


def test_failed_cas_writes_no_outbox_item(store: SqliteStore) -> None:
    req = make()
    store.add(req)
    assert store.save(req, req.advance(State.APPROVED, NOW), announce=["a"]) is not None
    assert store.save(req, req.advance(State.DENIED, NOW), announce=["b", "c"]) is None
    assert [i.kind for i in store.outbox_due(LATER)] == ["a"]


def test_outbox_limit(store: SqliteStore) -> None:
    store.add(make(), announce=[f"k{i}" for i in range(10)])
    assert [i.kind for i in store.outbox_due(LATER, limit=3)] == ["k0", "k1", "k2"]


def test_outbox_retry_delays_and_counts(store: SqliteStore) -> None:
    store.add(make(), announce=["card", "started"])
    first, second = store.outbox_due(LATER)
    store.outbox_retry(first.id, NOW + timedelta(seconds=30), "ratelimited " + "x" * 1000)
    assert [i.id for i in store.outbox_due(NOW)] == [second.id]
    again = store.outbox_due(NOW + timedelta(seconds=30))
    assert [i.id for i in again] == [first.id, second.id]
    retried = again[0]
    assert retried.attempts == 1
    assert retried.next_at == NOW + timedelta(seconds=30)
    assert retried.last_error.startswith("ratelimited")
    assert len(retried.last_error) <= 500
    store.outbox_retry(first.id, NOW + timedelta(seconds=60), "again")
    assert store.outbox_due(NOW + timedelta(seconds=60))[0].attempts == 2


def test_outbox_done_removes_from_due(store: SqliteStore) -> None:
    store.add(make(), announce=["card", "started"])
    first, second = store.outbox_due(LATER)
    store.outbox_done(first.id)
    assert [i.id for i in store.outbox_due(LATER)] == [second.id]
    store.outbox_done(second.id)
    assert store.outbox_due(LATER) == []


# -- audit -------------------------------------------------------------------------------------
def event(minutes: int, table: str = "Orders", name: str = "requested") -> AuditEvent:
    return AuditEvent(
        at=NOW + timedelta(minutes=minutes),
        event=name,
        restore_id="r1",
        actor="U1",
        channel="C1",
        table=table,
        detail=f"m{minutes}",
    )


def test_audit_roundtrip(store: SqliteStore) -> None:
    e = AuditEvent(NOW, "approved", None, None, None, None, "")
    store.audit(e)
    assert store.audit_events() == [e]


def test_audit_filters_and_limit(store: SqliteStore) -> None:
    for m in range(10):
        store.audit(event(m, table="Orders" if m % 2 == 0 else "Users"))
    assert [e.detail for e in store.audit_events()] == [f"m{m}" for m in range(10)]
    since = store.audit_events(since=NOW + timedelta(minutes=5))
    assert [e.detail for e in since] == ["m5", "m6", "m7", "m8", "m9"]
    orders = store.audit_events(table="Orders")
    assert [e.detail for e in orders] == ["m0", "m2", "m4", "m6", "m8"]
    newest = store.audit_events(limit=3)
    assert [e.detail for e in newest] == ["m7", "m8", "m9"]
    combined = store.audit_events(since=NOW + timedelta(minutes=1), table="Users", limit=2)
    assert [e.detail for e in combined] == ["m7", "m9"]
    assert all(e.at.tzinfo is not None for e in newest)


def test_audit_limit_keeps_insertion_order_for_equal_times(store: SqliteStore) -> None:
    for name in ("requested", "approved", "restore_started"):
        store.audit(event(0, name=name))
    assert [e.event for e in store.audit_events(limit=3)] == [
        "requested",
        "approved",
        "restore_started",
    ]
    assert [e.event for e in store.audit_events(limit=2)] == ["approved", "restore_started"]


def test_audit_to_json() -> None:
    assert event(0).to_json()["at"] == NOW.isoformat()


# -- restart -----------------------------------------------------------------------------------
def test_a_second_store_on_the_same_file_sees_everything(tmp_path: Path) -> None:
    path = str(tmp_path / "pitr.db")
    first = SqliteStore(path)
    req = full()
    first.add(req, announce=["card"])
    first.audit(event(1))
    first.close()

    second = open_store(f"sqlite:///{path}")
    try:
        assert second.get(req.id) == req
        assert [i.kind for i in second.outbox_due(LATER)] == ["card"]
        assert [e.detail for e in second.audit_events()] == ["m1"]
        second.ping()
    finally:
        second.close()


def test_two_live_stores_share_cas(tmp_path: Path) -> None:
    path = str(tmp_path / "pitr.db")
    a, b = SqliteStore(path), SqliteStore(path)
    try:
        req = make()
        a.add(req)
        assert b.save(req, req.advance(State.APPROVED, NOW)) is not None
        assert a.save(req, req.advance(State.DENIED, NOW)) is None
        assert a.get(req.id).state == State.APPROVED
    finally:
        a.close()
        b.close()


def test_open_store_refuses_unknown_urls() -> None:
    with pytest.raises(ValueError):
        open_store("postgres://x")
