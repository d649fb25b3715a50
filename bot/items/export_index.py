"""An export's records into the job file's comparison index, one data file at a time.

The job file (bot/items/jobfile.py) compares two sides key by key. An incremental export gives,
per changed key, the image at the instant (OldImage) and the final image (NewImage): they go to
the `restored` and `live` sides, so the existing classification, copy back and undo apply as
they are: OldImage only -> deleted since (put back only where the key is still absent), both ->
changed since (put back only if the live item is still exactly NewImage), NewImage only -> added
since (never written).

Consecutive exports are merged per key, read in period order: the image at the instant comes
from the first period in which the key changed (`export_seen`), the final image from the last.
Each data file is one transaction together with its checkpoint row, so a read resumed after a
kill -9 neither skips nor repeats a file; memory stays flat (rows go to SQLite in chunks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bot.items.jobfile import JobFile
from bot.items.values import index_row, key_text

EXPORT_SCHEMA = """
CREATE TABLE IF NOT EXISTS export_seen (key TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS export_files (name TEXT PRIMARY KEY, records INTEGER NOT NULL)
    WITHOUT ROWID;
-- keys whose last change lies within a minute of the instant (flagged on the approval card)
CREATE TABLE IF NOT EXISTS export_near (key TEXT PRIMARY KEY) WITHOUT ROWID;
"""
CHUNK = 500


class ExportIndex(JobFile):
    def __init__(self, path: Any):
        super().__init__(path)
        with self._lock:
            self._db.executescript(EXPORT_SCHEMA)

    def file_done(self, name: str) -> bool:
        with self._lock:
            sql = "SELECT 1 FROM export_files WHERE name = ?"
            return self._db.execute(sql, (name,)).fetchone() is not None

    def records_read(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COALESCE(SUM(records), 0) FROM export_files").fetchone()
        return int(n)

    def near_count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM export_near").fetchone()
        return int(n)

    def add_file(
        self,
        name: str,
        records: Iterable[dict[str, Any]],
        keep: Callable[[dict[str, Any]], bool] = lambda record: True,
        near: Callable[[dict[str, Any]], bool] = lambda record: False,
    ) -> int:
        """Merge one data file's records and mark it read, in one transaction; returns the
        number of records (0 and nothing done if the file was read before)."""
        keys = self.key_names
        count = 0
        with self._lock, self._db:
            if self._db.execute("SELECT 1 FROM export_files WHERE name = ?", (name,)).fetchone():
                return 0
            batch: list[dict[str, Any]] = []
            for record in records:
                count += 1
                if keep(record):
                    batch.append(record)
                if len(batch) >= CHUNK:
                    self._merge(batch, keys, near)
                    batch = []
            self._merge(batch, keys, near)
            self._db.execute("INSERT INTO export_files VALUES (?, ?)", (name, count))
        return count

    def _merge(self, batch: list[dict[str, Any]], keys: tuple[str, ...], near) -> None:
        db = self._db
        for record in batch:
            key = key_text(record["Keys"], keys)
            first = db.execute("INSERT OR IGNORE INTO export_seen VALUES (?)", (key,)).rowcount
            old, new = record.get("OldImage"), record.get("NewImage")
            if first and old is not None:  # the image at the instant: the first period's
                db.execute("INSERT OR REPLACE INTO restored VALUES (?, ?, ?)", index_row(old, keys))
            if new is not None:  # the final image: the last period's
                db.execute("INSERT OR REPLACE INTO live VALUES (?, ?, ?)", index_row(new, keys))
            else:
                db.execute("DELETE FROM live WHERE key = ?", (key,))
            if first and near(record):
                db.execute("INSERT OR IGNORE INTO export_near VALUES (?)", (key,))
