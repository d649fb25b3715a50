"""The job files of getting the data back: kept while a job runs or waits, and for a retention
after its last step (so Undo copy back stays possible), then deleted; files no job owns are
swept at start-up. A mixin of bot.items.recovery.ItemRecovery (its store, clock, work_dir,
retention and audit entries).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.items.jobs import ItemJob, JobState

log = logging.getLogger(__name__)

# How long the files of a finished job are kept: Undo copy back is possible until then.
DEFAULT_RETENTION = timedelta(days=7)
# Steps after which nothing runs or waits: the files may go once the retention has passed.
SETTLED = (JobState.COMPARED, JobState.COPIED, JobState.UNDONE, JobState.FAILED)
# A job's files: <job id>.sqlite (with SQLite's -wal/-shm) and <job id>.jsonl (the diff).
JOB_FILE = re.compile(r"^(j[0-9a-f]{12})\.(sqlite|sqlite-wal|sqlite-shm|jsonl)$")


class JobFiles:
    store: Any
    clock: Any
    retention: timedelta
    work_dir: Path

    def report_path(self, job: ItemJob) -> Path:
        return Path(job.job_path).with_suffix(".jsonl")

    def _entry(self, event: str, job: ItemJob, actor: str | None, detail: str) -> Any:
        raise NotImplementedError

    def files_of(self, job: ItemJob) -> list[Path]:
        path = Path(job.job_path)
        return [
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
            self.report_path(job),
        ]

    def remove_expired(self) -> int:
        """Delete the files of settled jobs whose last step is older than the retention; the
        record stays (with files_removed_at), so a later click says why it is refused."""
        removed = 0
        now = self.clock()
        for job in self.store.job_find(states=list(SETTLED), limit=10000):
            if job.files_removed_at is not None or job.updated_at is None:
                continue
            if job.updated_at + self.retention > now:
                continue
            # The record first (compare-and-set): a click at the same moment either sees the
            # files gone and is refused, or wins and the job is no longer settled.
            saved = self.store.job_save(
                job,
                replace(job, files_removed_at=now, updated_at=job.updated_at),
                # The Slack files it shared go too (once: an outbox item, commands/items.py).
                ("items_unshare",) if job.slack_files else (),
                [self._entry("job_files_removed", job, None, f"after {days(self.retention)}")],
            )
            if saved is None:
                continue
            for path in self.files_of(job):
                path.unlink(missing_ok=True)
            removed += 1
        if removed:
            log.info("item jobs: files of %d finished jobs removed (retention)", removed)
        return removed

    def sweep_orphans(self) -> int:
        """At start-up: delete job files no job owns (or whose job's files were removed)."""
        if not self.work_dir.is_dir():
            return 0
        removed = 0
        for path in sorted(self.work_dir.iterdir()):
            match = JOB_FILE.match(path.name)
            if not match or not path.is_file():
                continue
            job = self.store.job_get(match[1])
            if job is None or job.files_removed_at is not None:
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.info("item jobs: %d orphaned job files removed", removed)
        return removed


def days(span: timedelta) -> str:
    days = span.total_seconds() / 86400
    return f"{days:g} days" if days != 1 else "1 day"
