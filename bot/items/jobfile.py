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
from pathlib import Path

from bot.items.diff import Kind
from bot.items.values import Item, from_json, key_of

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
-- what happened to each planned write: written | conflict | failed
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

    @property
    def pending(self) -> int:
        return self.planned - self.written - self.conflict - self.failed


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
    def plan_copy_back(self, include_changed: bool = False) -> int:
        """Plan the copy back once (a second call keeps the first plan); returns its size."""
        kinds = ["missing", "changed"] if include_changed else ["missing"]
        with self._lock, self._db:
            if not self._planned(COPY_BACK):
                self._db.execute(
                    "INSERT INTO writes SELECT ?, r.key, 'missing', r.item, NULL FROM restored r"
                    " WHERE NOT EXISTS (SELECT 1 FROM live l WHERE l.key = r.key)",
                    (COPY_BACK,),
                )
                if include_changed:
                    self._db.execute(
                        "INSERT INTO writes SELECT ?, r.key, 'changed', r.item, l.item"
                        " FROM restored r JOIN live l ON l.key = r.key WHERE l.hash != r.hash",
                        (COPY_BACK,),
                    )
                self._mark_planned(COPY_BACK, kinds)
        return self.write_counts(COPY_BACK).planned

    def plan_undo(self) -> int:
        """Undo what the copy back wrote: put back the overwritten attributes, delete what it
        inserted."""
        with self._lock, self._db:
            if not self._planned(UNDO):
                self._db.execute(
                    "INSERT INTO writes SELECT ?, o.key,"
                    " CASE WHEN w.kind = 'changed' THEN 'put back' ELSE 'delete' END,"
                    # A changed item goes back to the version the comparison saw (only the
                    # attributes the copy back changed are touched: an UpdateItem); the full
                    # overwritten version stays in outcomes.previous.
                    " CASE WHEN w.kind = 'changed' THEN w.expected ELSE NULL END,"
                    " w.item FROM outcomes o JOIN writes w"
                    " ON w.job = o.job AND w.key = o.key"
                    " WHERE o.job = ? AND o.result = 'written'",
                    (UNDO, COPY_BACK),
                )
                self._mark_planned(UNDO, ["undo"])
        return self.write_counts(UNDO).planned

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
            planned, by.get("written", 0), by.get("conflict", 0), by.get("failed", 0)
        )

    def outcomes(self, job: str, result: str) -> list[tuple[str, str]]:
        """(key, detail) of the outcomes with `result` (e.g. the conflicts to list)."""
        with self._lock:
            return self._db.execute(
                "SELECT key, detail FROM outcomes WHERE job = ? AND result = ? ORDER BY key",
                (job, result),
            ).fetchall()


def _side(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}")
    return side
