"""The job's on-disk file (stdlib sqlite3): the comparison index and the copy-back checkpoint.

Memory stays bounded whatever the table size: every item read goes to disk, keyed by its
canonical primary key with a digest of its canonical form, and the classification is a join in
SQLite, streamed out. A write's outcome is committed in the same transaction as the progress it
stands for (the outcome row *is* the progress), so after a kill -9 a resumed job skips exactly
the keys with an outcome, and the counts are a GROUP BY over those rows.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from bot.items.conditions import Write, changes, writable
from bot.items.diff import Kind
from bot.items.values import Item, from_json, key_of, to_json

SIDES = ("restored", "live")
COPY_BACK = "copy_back"
UNDO = "undo"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS restored (key TEXT PRIMARY KEY, hash BLOB NOT NULL, item TEXT NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS live (key TEXT PRIMARY KEY, hash BLOB NOT NULL, item TEXT NOT NULL)
    WITHOUT ROWID;
-- planned writes of a job: make live `item` (NULL: delete) if live is exactly `expected`
CREATE TABLE IF NOT EXISTS writes (job TEXT, key TEXT, kind TEXT NOT NULL, item TEXT,
    expected TEXT, PRIMARY KEY (job, key)) WITHOUT ROWID;
-- writes sent to DynamoDB (before the call): after a crash, an item found as we would leave it
-- is ours only if we had sent its write; otherwise it was there before (never undone)
CREATE TABLE IF NOT EXISTS attempts (job TEXT, key TEXT, PRIMARY KEY (job, key)) WITHOUT ROWID;
-- what happened to each planned write: written | already (live held it before: never undone)
-- | conflict | failed
CREATE TABLE IF NOT EXISTS outcomes (job TEXT, key TEXT, result TEXT NOT NULL, previous TEXT,
    detail TEXT, PRIMARY KEY (job, key)) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class DiffCounts:
    missing: int = 0
    changed: int = 0
    added: int = 0
    unchanged: int = 0

    @property
    def differences(self) -> int:
        return self.missing + self.changed + self.added


@dataclass(frozen=True)
class WriteCounts:
    planned: int = 0
    written: int = 0
    conflict: int = 0
    failed: int = 0
    already: int = 0  # live already held exactly this: not written, never undone

    @property
    def pending(self) -> int:
        return self.planned - self.written - self.conflict - self.failed - self.already


@dataclass(frozen=True)
class CopyPlan:
    """What a copy back would write, counted before anyone approves (the approval card)."""

    missing: int = 0  # inserted where the key is absent
    changed: int = 0  # overwritten where unchanged since the comparison
    expired: int = 0  # left out: their TTL attribute has passed (DynamoDB removed them)
    left_out: int = 0  # left out by the approver's list of keys
    too_wide: int = 0  # left out: no condition within DynamoDB's limits makes the write safe
    not_undoable: int = 0  # written, but no undo within DynamoDB's limits
    ttl_attribute: str | None = None
    include_expired: bool = False

    @property
    def to_write(self) -> int:
        return self.missing + self.changed


@dataclass(frozen=True)
class Difference:
    kind: Kind
    key: str
    restored: Item | None
    live: Item | None


@dataclass(frozen=True)
class PlannedWrite:
    key: str
    kind: str
    item: Item | None
    expected: Item | None


def private_file(path: Path) -> None:
    """Create `path` readable by this user only (0600), or make it so: it holds item data."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


def private_dir(path: Path) -> None:
    """Create the job directory readable by this user only (0700), or make it so."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


class JobFile:
    """One comparison and its copy-back/undo jobs, in one SQLite file. Thread-safe."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        private_file(self.path)  # item data: SQLite gives its -wal/-shm the same mode
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            # WAL + NORMAL: a committed transaction survives the process being killed.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- meta ----------------------------------------------------------------------------
    def set_meta(self, **values: object) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def meta(self, name: str, default: object = None) -> object:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else default

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(self.meta("key_names") or ())  # type: ignore[arg-type]

    # -- the comparison index ------------------------------------------------------------
    def reset_side(self, side: str) -> None:
        table = _side(side)
        with self._lock, self._db:
            self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - a fixed name

    def add_items(self, side: str, rows: Iterable[tuple[str, bytes, str]]) -> None:
        """rows: (canonical key text, digest, item JSON)."""
        table = _side(side)
        with self._lock, self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)", rows)  # noqa: S608

    def diff_counts(self) -> DiffCounts:
        with self._lock:
            missing, changed, unchanged = self._db.execute(
                "SELECT COALESCE(SUM(l.key IS NULL), 0),"
                " COALESCE(SUM(l.key IS NOT NULL AND l.hash != r.hash), 0),"
                " COALESCE(SUM(l.hash = r.hash), 0)"
                " FROM restored r LEFT JOIN live l ON l.key = r.key"
            ).fetchone()
            (added,) = self._db.execute(
                "SELECT COUNT(*) FROM live l WHERE NOT EXISTS"
                " (SELECT 1 FROM restored r WHERE r.key = l.key)"
            ).fetchone()
        return DiffCounts(missing, changed, added, unchanged)

    def differences(self, kinds: Iterable[Kind] = (Kind.MISSING, Kind.CHANGED, Kind.ADDED)):
        """Stream the differences, kind by kind, in key order (never all in memory)."""
        queries = {
            Kind.MISSING: "SELECT r.key, r.item, NULL FROM restored r WHERE NOT EXISTS"
            " (SELECT 1 FROM live l WHERE l.key = r.key) ORDER BY r.key",
            Kind.CHANGED: "SELECT r.key, r.item, l.item FROM restored r JOIN live l"
            " ON l.key = r.key WHERE l.hash != r.hash ORDER BY r.key",
            Kind.ADDED: "SELECT l.key, NULL, l.item FROM live l WHERE NOT EXISTS"
            " (SELECT 1 FROM restored r WHERE r.key = l.key) ORDER BY l.key",
            Kind.UNCHANGED: "SELECT r.key, r.item, l.item FROM restored r JOIN live l"
            " ON l.key = r.key WHERE l.hash = r.hash ORDER BY r.key",
        }
        for kind in kinds:
            yield from self._stream(kind, queries[kind])

    def _stream(self, kind: Kind, sql: str, chunk: int = 500) -> Iterator[Difference]:
        # A separate read-only connection: the cursor stays open while the caller works.
        reader = sqlite3.connect(self.path)
        try:
            cursor = reader.execute(sql)
            while rows := cursor.fetchmany(chunk):
                for key, restored, live in rows:
                    yield Difference(
                        kind,
                        key,
                        from_json(restored) if restored else None,
                        from_json(live) if live else None,
                    )
        finally:
            reader.close()

    # -- write jobs ----------------------------------------------------------------------
    def copy_plan(
        self,
        include_changed: bool = False,
        leave_out: Iterable[str] = (),
        now: float | None = None,
        include_expired: bool = False,
    ) -> CopyPlan:
        """Count what `plan_copy_back` with these arguments would write and leave out."""
        counts = dict.fromkeys(("missing", "changed", "expired", "left_out", "too_wide"), 0)
        counts["not_undoable"] = 0
        for kind, _diff, verdict in self._candidates(
            include_changed, leave_out, now, include_expired
        ):
            if verdict in ("write", "not_undoable"):
                counts[kind] += 1
                counts["not_undoable"] += verdict == "not_undoable"
            else:
                counts[verdict] += 1
        return CopyPlan(**counts, ttl_attribute=self.ttl_attribute, include_expired=include_expired)

    def plan_copy_back(
        self,
        include_changed: bool = False,
        leave_out: Iterable[str] = (),
        now: float | None = None,
        include_expired: bool = False,
    ) -> int:
        """Plan the copy back once (a second call keeps the first plan); returns its size.

        Left out: the keys in `leave_out` (canonical key texts), items whose TTL attribute
        (meta `ttl_attribute`, the live table's) is before `now` (epoch seconds) unless
        `include_expired`, and items no condition within DynamoDB's limits makes safe."""
        kinds = ["missing", "changed"] if include_changed else ["missing"]
        rows = (
            (COPY_BACK, d.key, kind, to_json(d.restored), to_json(d.live) if d.live else None)
            for kind, d, verdict in self._candidates(
                include_changed, leave_out, now, include_expired
            )
            if verdict in ("write", "not_undoable") and d.restored is not None
        )
        self._insert_plan(COPY_BACK, rows, kinds)
        return self.write_counts(COPY_BACK).planned

    def _insert_plan(self, job: str, rows: Iterable[tuple], kinds: list[str]) -> None:
        """Store a plan streamed in chunks (memory stays bounded), marked planned once whole:
        a plan a crash interrupted is made again (INSERT OR REPLACE) on the next run."""
        with self._lock:
            if self._planned(job):
                return
        chunk: list[tuple] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= 500:
                with self._lock, self._db:
                    self._db.executemany("INSERT OR REPLACE INTO writes VALUES (?,?,?,?,?)", chunk)
                chunk = []
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO writes VALUES (?,?,?,?,?)", chunk)
            if not self._planned(job):
                self._mark_planned(job, kinds)

    @property
    def ttl_attribute(self) -> str | None:
        value = self.meta("ttl_attribute")
        return str(value) if value else None

    def _candidates(self, include_changed, leave_out, now, include_expired):
        """(kind, difference, verdict) of every item a copy back considers, streamed;
        verdict: write | not_undoable | expired | left_out | too_wide."""
        skip, ttl = set(leave_out), self.ttl_attribute
        kinds = [Kind.MISSING, Kind.CHANGED] if include_changed else [Kind.MISSING]
        for diff in self.differences(kinds):
            kind = diff.kind.value
            assert diff.restored is not None
            if diff.key in skip:
                yield kind, diff, "left_out"
            elif not include_expired and expired(diff.restored, ttl, now):
                yield kind, diff, "expired"
            else:
                key = key_of(diff.restored, self.key_names)
                yield kind, diff, writable(key, diff.restored, diff.live)

    def plan_undo(self) -> int:
        """Undo what the copy back wrote: put back the item as it was just before the copy
        back (ALL_OLD) where live is still exactly what it left, delete what it inserted where
        live is still exactly that. Items found already there are not in the plan."""
        self._insert_plan(UNDO, self._undo_rows(), ["undo"])
        return self.write_counts(UNDO).planned

    def _undo_rows(self) -> Iterator[tuple]:
        reader = sqlite3.connect(self.path)  # streamed: the cursor stays open while we plan
        try:
            cursor = reader.execute(
                "SELECT o.key, w.kind, w.item, w.expected, o.previous FROM outcomes o"
                " JOIN writes w ON w.job = o.job AND w.key = o.key"
                " WHERE o.job = ? AND o.result = 'written' ORDER BY o.key",
                (COPY_BACK,),
            )
            for key, kind, item, expected, previous in cursor:
                if kind != "changed":
                    yield (UNDO, key, "delete", None, item)
                    continue
                if not previous:  # cannot happen for an UpdateItem that wrote: nothing to undo
                    continue
                wrote, before = from_json(item), from_json(previous)
                sets, removes = changes(
                    Write(key_of(wrote, self.key_names), wrote, from_json(expected))
                )
                # The whole item the copy back left: what was there, with its writes applied.
                after = {n: v for n, v in before.items() if n not in removes}
                after.update({n: wrote[n] for n in sets})
                yield (UNDO, key, "put back", previous, to_json(after))
        finally:
            reader.close()

    def _planned(self, job: str) -> bool:
        sql = "SELECT 1 FROM meta WHERE name = ?"
        return self._db.execute(sql, (f"planned:{job}",)).fetchone() is not None

    def _mark_planned(self, job: str, kinds: list[str]) -> None:
        self._db.execute(
            "INSERT INTO meta VALUES (?, ?)", (f"planned:{job}", json.dumps({"kinds": kinds}))
        )

    def pending(self, job: str, chunk: int = 500) -> Iterator[PlannedWrite]:
        """Planned writes without an outcome, in key order, a chunk at a time."""
        after = ""
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT w.key, w.kind, w.item, w.expected FROM writes w WHERE w.job = ?"
                    " AND w.key > ? AND NOT EXISTS (SELECT 1 FROM outcomes o"
                    " WHERE o.job = w.job AND o.key = w.key) ORDER BY w.key LIMIT ?",
                    (job, after, chunk),
                ).fetchall()
            if not rows:
                return
            for key, kind, item, expected in rows:
                yield PlannedWrite(
                    key,
                    kind,
                    from_json(item) if item else None,
                    from_json(expected) if expected else None,
                )
            after = rows[-1][0]

    def key_item(self, write: PlannedWrite) -> Item:
        source = write.item or write.expected
        assert source is not None
        return key_of(source, self.key_names)

    def record(
        self, job: str, key: str, result: str, previous: str | None = None, detail: str = ""
    ) -> bool:
        """Record a write's outcome once; False if it already had one (never counted twice)."""
        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?, ?, ?)",
                (job, key, result, previous, detail),
            )
        return cur.rowcount == 1

    def attempt(self, job: str, key: str) -> bool:
        """Record that the write of `key` is being sent; True if it had been sent before
        (a run a crash interrupted), so a write found done is ours."""
        with self._lock, self._db:
            cur = self._db.execute("INSERT OR IGNORE INTO attempts VALUES (?, ?)", (job, key))
        return cur.rowcount == 0

    def retry_failed(self, job: str) -> int:
        """Forget 'failed' outcomes so the next run tries those keys again."""
        with self._lock, self._db:
            cur = self._db.execute(
                "DELETE FROM outcomes WHERE job = ? AND result = 'failed'", (job,)
            )
        return cur.rowcount

    def write_counts(self, job: str) -> WriteCounts:
        with self._lock:
            (planned,) = self._db.execute(
                "SELECT COUNT(*) FROM writes WHERE job = ?", (job,)
            ).fetchone()
            rows = self._db.execute(
                "SELECT result, COUNT(*) FROM outcomes WHERE job = ? GROUP BY result", (job,)
            ).fetchall()
        by = dict(rows)
        return WriteCounts(
            planned,
            by.get("written", 0),
            by.get("conflict", 0),
            by.get("failed", 0),
            by.get("already", 0),
        )

    def outcomes(self, job: str, result: str) -> list[tuple[str, str]]:
        """(key, detail) of the outcomes with `result` (e.g. the conflicts to list)."""
        with self._lock:
            return self._db.execute(
                "SELECT key, detail FROM outcomes WHERE job = ? AND result = ? ORDER BY key",
                (job, result),
            ).fetchall()


def expired(item: Item, ttl_attribute: str | None, now: float | None) -> bool:
    """Has the item's TTL passed? DynamoDB deletes such items itself (a TTL attribute holds
    epoch seconds as a number; any other type never expires)."""
    if not ttl_attribute or now is None:
        return False
    value = item.get(ttl_attribute) or {}
    if "N" not in value:
        return False
    try:
        return Decimal(value["N"]) < Decimal(repr(now))
    except InvalidOperation:
        return False


def _side(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}")
    return side
