"""The embedded store: one SQLite file, good for a single replica.

A request is a JSON document plus the columns we query on. Compare-and-set is a single
`UPDATE ... WHERE version = ?`, and the announcements a transition owes are written in the
same transaction, so a crash can never keep one without the other.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.batches.model import MAX_RESTORES_PER_ACCOUNT, SlotMove
from bot.drills.model import Drill, DrillState
from bot.items.jobs import ItemJob, JobState
from bot.restores import RestoreRequest, State, utcnow
from bot.store.codec import SavesThroughSaveAll, from_record, prepare, to_record
from bot.store.due import due_of, from_micros, micros, schedule_fields, split_due
from bot.store.records import AuditEvent, Change, OutboxItem, RequestExists

SCHEMA = """
CREATE TABLE IF NOT EXISTS restores (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL,
    account TEXT NOT NULL DEFAULT '',
    check_at INTEGER NOT NULL DEFAULT -1,
    lease_owner TEXT,
    lease_until INTEGER
);
CREATE INDEX IF NOT EXISTS restores_state ON restores(state);
CREATE INDEX IF NOT EXISTS restores_source ON restores(source);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    restore_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TEXT,
    last_error TEXT,
    claimed_by TEXT,
    claimed_until TEXT,
    sent_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(sent_at, id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    restore_id TEXT,
    actor TEXT,
    channel TEXT,
    tbl TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY,
    until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS drills (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS drills_state ON drills(state);
CREATE INDEX IF NOT EXISTS drills_source ON drills(source);
CREATE TABLE IF NOT EXISTS item_jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS item_jobs_state ON item_jobs(state);
CREATE TABLE IF NOT EXISTS restore_slots (
    account TEXT NOT NULL,
    restore_id TEXT NOT NULL,
    PRIMARY KEY (account, restore_id)
);
"""
# The scheduling columns (bot/store/due.py schedule_fields), added to a file of an earlier
# version by _add_schedule_columns; indexed so that a tick and a start read no documents.
SCHEDULE_COLUMNS = (
    ("account", "TEXT NOT NULL DEFAULT ''"),
    ("check_at", "INTEGER NOT NULL DEFAULT -1"),
    ("lease_owner", "TEXT"),
    ("lease_until", "INTEGER"),
)
SCHEDULE_INDEXES = """
CREATE INDEX IF NOT EXISTS restores_due ON restores(state, check_at);
CREATE INDEX IF NOT EXISTS restores_account ON restores(state, account);
"""
IN_FLIGHT_STATES = (State.APPROVED.value, State.RESTORING.value)


class SqliteStore(SavesThroughSaveAll):
    def __init__(self, path: str):
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection guarded by a lock: simple, and SQLite serialises writers anyway.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
            self._add_schedule_columns()
            self._db.executescript(SCHEDULE_INDEXES)

    def _add_schedule_columns(self) -> None:
        """A state file of an earlier version gets the scheduling columns, filled from the
        documents of the requests in flight (once; a second process opening the file at the
        same moment finds them added under the write lock)."""

        def missing() -> bool:
            have = {row[1] for row in self._db.execute("PRAGMA table_info(restores)")}
            return "check_at" not in have

        if not missing():
            return
        with self._tx():
            if not missing():
                return
            for name, decl in SCHEDULE_COLUMNS:
                self._db.execute(f"ALTER TABLE restores ADD COLUMN {name} {decl}")
            rows = self._db.execute(
                "SELECT doc FROM restores WHERE state IN (?, ?)", IN_FLIGHT_STATES
            ).fetchall()
            for (doc,) in rows:
                req = from_record(json.loads(doc))
                self._set_schedule(req)

    def _set_schedule(self, req: RestoreRequest) -> None:
        cols = schedule_fields(req)
        sets = ", ".join(f"{name} = ?" for name in cols)
        self._db.execute(
            f"UPDATE restores SET {sets} WHERE id = ?",  # noqa: S608 - constant column names
            (*cols.values(), req.id),
        )

    # -- requests ---------------------------------------------------------------------------
    def add(
        self,
        req: RestoreRequest,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> None:
        record, extra = to_record(req), {"source": req.source, **schedule_fields(req)}
        if not self._doc_add("restores", req.id, req, record, extra, announce, audit):
            raise RequestExists(req.id)

    def get(self, restore_id: str) -> RestoreRequest | None:
        with self._lock:
            row = self._db.execute(
                "SELECT doc FROM restores WHERE id = ?", (restore_id,)
            ).fetchone()
        return from_record(json.loads(row[0])) if row else None

    def save_all(
        self, changes: Sequence[Change], audit: Sequence[AuditEvent] = ()
    ) -> list[RestoreRequest] | None:
        stored, move = prepare(changes)
        try:
            with self._lock, self._tx():
                for change, new in zip(changes, stored, strict=True):
                    record, cols = to_record(new), schedule_fields(new)
                    if not self._cas_update("restores", change.old, new, record, cols):
                        raise _Refused
                    self._enqueue(change.old.id, change.announce)
                if move is not None:
                    self._move_slot(move)
                for event in audit:
                    self._insert_audit(event)
        except _Refused:
            return None  # rolled back: nothing of it was written
        return stored

    def _move_slot(self, move: SlotMove) -> None:
        """Take or free a restore slot of `move.account`, in the caller's transaction."""
        if move.delta < 0:
            self._db.execute(
                "DELETE FROM restore_slots WHERE account = ? AND restore_id = ?",
                (move.account, move.restore_id),
            )
            return
        (taken,) = self._db.execute(
            "SELECT COUNT(*) FROM restore_slots WHERE account = ? AND restore_id != ?",
            (move.account, move.restore_id),
        ).fetchone()
        if taken >= MAX_RESTORES_PER_ACCOUNT:
            raise _Refused
        self._db.execute(
            "INSERT OR IGNORE INTO restore_slots (account, restore_id) VALUES (?, ?)",
            (move.account, move.restore_id),
        )

    def find(
        self,
        states: Iterable[State] | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[RestoreRequest]:
        # Requests are documents too: the same query as the sibling flows' (state, source).
        return [from_record(doc) for doc in self._doc_find("restores", states, source, limit)]

    # -- sibling flows: drills and item jobs, each a versioned JSON document ---------------
    def drill_add(
        self, drill: Drill, announce: Sequence[str] = (), audit: Sequence[AuditEvent] = ()
    ) -> bool:
        extra = {"source": drill.source}
        return self._doc_add("drills", drill.id, drill, drill.to_record(), extra, announce, audit)

    def drill_get(self, drill_id: str) -> Drill | None:
        doc = self._doc_get("drills", drill_id)
        return Drill.from_record(doc) if doc is not None else None

    def drill_save(
        self,
        old: Drill,
        new: Drill,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> Drill | None:
        stored = replace(new, version=old.version + 1, updated_at=new.updated_at or utcnow())
        return stored if self._doc_save("drills", old, stored, announce, audit) else None

    def drill_find(
        self,
        states: Iterable[DrillState] | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[Drill]:
        return [Drill.from_record(d) for d in self._doc_find("drills", states, source, limit)]

    def job_add(
        self, job: ItemJob, announce: Sequence[str] = (), audit: Sequence[AuditEvent] = ()
    ) -> bool:
        return self._doc_add("item_jobs", job.id, job, job.to_record(), {}, announce, audit)

    def job_get(self, job_id: str) -> ItemJob | None:
        doc = self._doc_get("item_jobs", job_id)
        return ItemJob.from_record(doc) if doc is not None else None

    def job_save(
        self,
        old: ItemJob,
        new: ItemJob,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> ItemJob | None:
        stored = replace(new, version=old.version + 1, updated_at=new.updated_at or utcnow())
        return stored if self._doc_save("item_jobs", old, stored, announce, audit) else None

    def job_find(self, states: Iterable[JobState] | None = None, limit: int = 100) -> list[ItemJob]:
        return [ItemJob.from_record(d) for d in self._doc_find("item_jobs", states, None, limit)]

    # The table names below are this module's constants, never input.
    def _doc_add(
        self,
        table: str,
        doc_id: str,
        stored: Any,
        record: dict[str, Any],
        extra: dict[str, Any],
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> bool:
        """Insert a document unless its id exists; with its outbox items and audit entries.
        Requests, drills and item jobs all go this one way."""
        cols = {
            "id": doc_id,
            "state": stored.state.value,
            **extra,
            "version": stored.version,
            "created_at": stored.created_at.isoformat(),
            "doc": json.dumps(record),
        }
        sql = (
            f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) "  # noqa: S608 - constant table
            f"VALUES ({', '.join('?' * len(cols))})"
        )
        with self._lock, self._tx():
            if self._db.execute(sql, tuple(cols.values())).rowcount != 1:
                return False
            self._enqueue(doc_id, announce)
            for event in audit:
                self._insert_audit(event)
        return True

    def _doc_save(
        self,
        table: str,
        old: Any,
        stored: Any,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> bool:
        """Compare-and-set a drill or item job on its stored `version`."""
        with self._lock, self._tx():
            if not self._cas_update(table, old, stored, stored.to_record()):
                return False
            self._enqueue(old.id, announce)
            for event in audit:
                self._insert_audit(event)
        return True

    def _cas_update(
        self,
        table: str,
        old: Any,
        stored: Any,
        record: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> bool:
        """The one compare-and-set of every document, in the caller's transaction; `extra`
        columns (a request's scheduling fields) are written in the same statement."""
        extra = extra or {}
        sets = "".join(f", {name} = ?" for name in extra)
        sql = f"UPDATE {table} SET state = ?, version = ?, doc = ?{sets} "  # noqa: S608
        sql += "WHERE id = ? AND version = ?"
        args = (
            stored.state.value,
            stored.version,
            json.dumps(record),
            *extra.values(),
            old.id,
            old.version,
        )
        return self._db.execute(sql, args).rowcount == 1

    def _doc_get(self, table: str, doc_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT doc FROM {table} WHERE id = ?",  # noqa: S608 - constant table
                (doc_id,),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def _doc_find(
        self, table: str, states: Iterable[Any] | None, source: str | None, limit: int
    ) -> list[dict[str, Any]]:
        sql, args = f"SELECT doc FROM {table} WHERE 1=1", []  # noqa: S608 - constant table
        if states is not None:
            wanted = [s.value for s in states]
            sql += f" AND state IN ({','.join('?' * len(wanted))})"
            args += wanted
        if source is not None:
            sql += " AND source = ?"
            args.append(source)
        sql += " ORDER BY created_at DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def due(
        self, now: datetime, owner: str, limit: int = 1000
    ) -> tuple[list[RestoreRequest], datetime | None]:
        # The index on (state, check_at) hands out what is due by its check time; of the
        # rest only the first in line is read (a lease can only make a request later).
        # No document is parsed for a restore that is not due.
        cols = "SELECT id, check_at, lease_owner, lease_until FROM restores "
        at = micros(now)
        with self._lock:
            rows = self._db.execute(
                cols + "WHERE state IN (?, ?) AND check_at <= ?", (*IN_FLIGHT_STATES, at)
            ).fetchall()
            due = [(row[0], due_of(row, owner)) for row in rows]
            first: tuple[str, datetime] | None = None
            for state in IN_FLIGHT_STATES:
                later = self._db.execute(
                    cols + "WHERE state = ? AND check_at > ? ORDER BY check_at", (state, at)
                )
                for row in later:
                    if first is not None and from_micros(row[1]) >= first[1]:  # type: ignore[operator]
                        break
                    when = due_of(row, owner)
                    if when is not None and (first is None or when < first[1]):
                        first = (row[0], when)
        ids, upcoming = split_due([*due, *([first] if first else [])], now, limit)
        found = [self.get(restore_id) for restore_id in ids]
        return [r for r in found if r is not None], upcoming

    def account_load(self, account: str) -> tuple[int, int]:
        with self._lock:
            (running,) = self._db.execute(
                "SELECT COUNT(*) FROM restore_slots WHERE account = ?", (account,)
            ).fetchone()
            (approved,) = self._db.execute(
                "SELECT COUNT(*) FROM restores WHERE state = ? AND account = ?",
                (State.APPROVED.value, account),
            ).fetchone()
        return running, approved

    # -- outbox -----------------------------------------------------------------------------
    def outbox_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, restore_id, kind, created_at, attempts, next_at, last_error "
                "FROM outbox WHERE sent_at IS NULL AND (next_at IS NULL OR next_at <= ?) "
                "ORDER BY id LIMIT ?",
                (now.isoformat(), limit),
            ).fetchall()
        return [
            OutboxItem(
                id=r[0],
                restore_id=r[1],
                kind=r[2],
                created_at=datetime.fromisoformat(r[3]),
                attempts=r[4],
                next_at=datetime.fromisoformat(r[5]) if r[5] else None,
                last_error=r[6],
            )
            for r in rows
        ]

    def outbox_claim(self, item_id: int | str, owner: str, until: datetime) -> bool:
        now = utcnow().isoformat()
        with self._lock:
            cur = self._db.execute(
                "UPDATE outbox SET claimed_by = ?, claimed_until = ? "
                "WHERE id = ? AND sent_at IS NULL "
                "AND (claimed_until IS NULL OR claimed_until < ? OR claimed_by = ?)",
                (owner, until.isoformat(), item_id, now, owner),
            )
            return cur.rowcount == 1

    def outbox_done(self, item_id: int | str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET sent_at = ? WHERE id = ?", (utcnow().isoformat(), item_id)
            )

    def outbox_retry(self, item_id: int | str, next_at: datetime, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ?, "
                "claimed_until = NULL WHERE id = ?",
                (next_at.isoformat(), error[:500], item_id),
            )

    def _enqueue(self, restore_id: str, kinds: Sequence[str]) -> None:
        now = utcnow().isoformat()
        for kind in kinds:
            self._db.execute(
                "INSERT INTO outbox (restore_id, kind, created_at) VALUES (?, ?, ?)",
                (restore_id, kind, now),
            )

    # -- audit ------------------------------------------------------------------------------
    def audit(self, event: AuditEvent) -> None:
        with self._lock:
            self._insert_audit(event)

    def _insert_audit(self, event: AuditEvent) -> None:
        self._db.execute(
            "INSERT INTO audit (at, event, restore_id, actor, channel, tbl, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.at.isoformat(),
                event.event,
                event.restore_id,
                event.actor,
                event.channel,
                event.table,
                event.detail,
            ),
        )

    def audit_events(
        self, since: datetime | None = None, table: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]:
        sql, args = (
            "SELECT at, event, restore_id, actor, channel, tbl, detail, id FROM audit WHERE 1=1",
            [],
        )
        if since is not None:
            sql += " AND at >= ?"
            args.append(since.isoformat())
        if table is not None:
            sql += " AND tbl = ?"
            args.append(table)
        if limit is not None:
            # The newest `limit` entries, still returned oldest first.
            # Only fixed SQL fragments are joined here; every value is a bound parameter.
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id"  # noqa: S608
            args.append(limit)
        else:
            sql += " ORDER BY id"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [
            AuditEvent(datetime.fromisoformat(r[0]), r[1], r[2], r[3], r[4], r[5], r[6])
            for r in rows
        ]

    def audit_pages(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 1000,
    ) -> Iterator[list[AuditEvent]]:
        # Keyset paging on the row id: each page is one short read under the lock, so the
        # bot keeps writing while an export runs, and no OFFSET rescans earlier rows.
        sql = "SELECT at, event, restore_id, actor, channel, tbl, detail, id FROM audit "
        sql += "WHERE id > ?"
        args: list[str] = []
        if since is not None:
            sql += " AND at >= ?"
            args.append(since.isoformat())
        if until is not None:
            sql += " AND at < ?"
            args.append(until.isoformat())
        sql += " ORDER BY id LIMIT ?"
        last = 0
        while True:
            with self._lock:
                rows = self._db.execute(sql, [last, *args, page_size]).fetchall()
            if not rows:
                return
            last = rows[-1][7]
            yield [
                AuditEvent(datetime.fromisoformat(r[0]), r[1], r[2], r[3], r[4], r[5], r[6])
                for r in rows
            ]
            if len(rows) < page_size:
                return

    # -- replay protection ------------------------------------------------------------------
    def first_use(self, key: str, until: datetime) -> bool:
        now = utcnow().timestamp()
        with self._lock, self._tx():
            self._db.execute("DELETE FROM seen WHERE until < ?", (now,))
            cur = self._db.execute(
                "INSERT OR IGNORE INTO seen (key, until) VALUES (?, ?)", (key, until.timestamp())
            )
            return cur.rowcount == 1

    # -- lifecycle --------------------------------------------------------------------------
    def ping(self) -> None:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Refused(Exception):
    """A compare-and-set lost or no slot free: roll the whole write back."""


class _Transaction:
    """BEGIN IMMEDIATE .. COMMIT, rolled back on any error."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
