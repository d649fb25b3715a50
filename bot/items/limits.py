"""Limits on item comparisons (issue 20): one at a time per restore or table, a cap per person
and in all, and free disk where the job files go. A refusal says why and changes nothing.

`JobGate.admit` checks and inserts under one lock, so ten identical `/pitr-diff` arriving at
once start one comparison. (Across replicas the check is not atomic: two replicas may each
start one; the caps still bound the flood.)
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.items.jobs import ItemJob, JobState

MB = 1024 * 1024


@dataclass(frozen=True)
class ItemLimits:
    per_user: int = 2  # comparisons running at once, started by one person
    total: int = 4  # comparisons running at once, in all
    min_free_bytes: int = 1024 * MB  # free space needed where the job files go


def free_bytes(path: Path) -> int:
    """Free space on the filesystem holding `path` (its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


class JobGate:
    def __init__(
        self,
        store: Any,
        work_dir: Path,
        limits: ItemLimits,
        free: Callable[[Path], int] = free_bytes,
    ):
        self.store, self.work_dir, self.limits, self.free = store, Path(work_dir), limits, free
        self._lock = threading.Lock()

    def admit(self, job: ItemJob, add: Callable[[], object]) -> str | None:
        """Run `add()` (the job's insert) unless a limit refuses `job`: then why, in words."""
        with self._lock:
            problem = self.problem(job)
            if problem is None:
                add()
            return problem

    def problem(self, job: ItemJob) -> str | None:
        running = self.store.job_find(states=[JobState.COMPARING], limit=1000)
        same = next(
            (
                j
                for j in running
                if job.restore_id == j.restore_id or job.live_table == j.live_table
            ),
            None,
        )
        if same is not None:
            return (
                f"A comparison of `{same.live_table}` is already running (started by "
                f"{same.requested_by} at {same.created_at:%H:%M} UTC); its result comes in "
                "the restore's thread."
            )
        mine = [j for j in running if j.requested_by == job.requested_by]
        if len(mine) >= self.limits.per_user:
            return (
                f"You already have {len(mine)} comparisons running (at most "
                f"{self.limits.per_user} at once, PITR_BOT_MAX_ITEM_JOBS_PER_USER); "
                "try again when one has finished."
            )
        if len(running) >= self.limits.total:
            return (
                f"{len(running)} comparisons are running (at most {self.limits.total} at once, "
                "PITR_BOT_MAX_ITEM_JOBS); try again when one has finished."
            )
        free = self.free(self.work_dir)
        if free < self.limits.min_free_bytes:
            return (
                f"Only {free // MB} MB are free where comparisons keep their files; a "
                f"comparison needs at least {self.limits.min_free_bytes // MB} MB "
                "(PITR_BOT_MIN_FREE_DISK_MB). Ask the bot's operator to free some space."
            )
        return None


def _same_work(job: ItemJob, other: ItemJob) -> bool:
    """The same restore, or the same live table (another restore of it)."""
    return job.restore_id == other.restore_id or job.live_table == other.live_table
