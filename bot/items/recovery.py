"""Getting the data back: compare a restored table with its live source, copy lost items back
after an approval, undo after another. The Slack side is commands/items.py.

Each step is a compare-and-set on the job's record (bot/items/jobs.py) with its audit entries
and the announcements it owes Slack (outbox kinds `items_*`, keyed by the job id), so a double
click or a second replica never runs a step twice. The long work (reading both tables, writing
items) runs on this module's own threads, never on the listeners' work pool, under a lease in
the record; the engine (bot/items) checkpoints in the job file, so `resume()` at start finishes
a job a restart interrupted without skipping or repeating an item. On shutdown (`stop()`) a
running job stops at a checkpoint and gives its lease back, so the next process resumes it at
once; a job whose process died is taken over when its lease runs out (renewed by `renew_leases`
while the job runs).

Tables are checked by identity, not name (bot/table_identity.py): a comparison reads the
restored table only while it is still the one its restore created, and records the live
table's identity; a copy back or undo writes only while the live table is still that one.
`identify` reads an identity (as bot.aftercare.aws does); it raises ItemsError when AWS cannot
say, and every check then refuses.

Tables are reached where they live: `route` turns a stored table reference (`prod:orders`,
`orders@eu-west-1`) into the DynamoDB client of its account and region and its bare name.

Job files hold copies of table data: those of a finished job are deleted once `retention` has
passed since its last step (`remove_expired`), and files no job owns are swept at start-up
(`sweep_orphans`). A job that waits for a decision or runs keeps its files.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.items.copyplan import CopyPlanning
from bot.items.engine import (
    DEFAULT_READ_UNITS_PER_SECOND,
    DEFAULT_WRITE_UNITS_PER_SECOND,
    ItemCompare,
    ItemsError,
    ItemWriter,
    Progress,
    Stopped,
)
from bot.items.files import DEFAULT_RETENTION, JobFiles, days
from bot.items.jobfile import COPY_BACK, UNDO, DiffCounts, JobFile, private_dir
from bot.items.jobs import AWAITING, RUNNING, STALE_DECISION, ItemJob, JobState, Outcome, already
from bot.items.report import write_jsonl
from bot.restores import RestoreRequest, State
from bot.store import AuditEvent
from bot.table_identity import identity_problem, replaced_problem

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 20
LEASE = timedelta(minutes=5)  # renewed by renew_leases() and with every progress report
JOB_THREADS = 2
Route = Callable[[str], tuple[Any, str]]
Identify = Callable[[str], dict[str, Any] | None]


class ItemRecovery(JobFiles, CopyPlanning):
    def __init__(
        self,
        store: Any,
        client: Any,
        policy: Any,
        members: Any,
        clock: Callable[[], datetime],
        work_dir: Path,
        owner: str,
        read_units_per_second: float | None = DEFAULT_READ_UNITS_PER_SECOND,
        write_units_per_second: float | None = DEFAULT_WRITE_UNITS_PER_SECOND,
        route: Route | None = None,
        lease: timedelta = LEASE,
        retention: timedelta = DEFAULT_RETENTION,
        identify: Identify | None = None,
    ):
        self.store = store
        self.client = client  # DynamoDB, from the gateway (bot.pitr)
        # A stored table reference -> (its account/region's client, its bare name).
        self.route: Route = route or (lambda table: (self.client, table))
        self.lease = lease
        self.retention = retention
        # A table's identity now (None: it does not exist). None here: the engine's own tests,
        # which have no restore records; the app always passes one (commands/items.py).
        self.identify = identify
        self.stopping = threading.Event()  # set by stop(): running jobs checkpoint and stop
        self.policy = policy
        self.members = members
        self.clock = clock
        self.work_dir = Path(work_dir)
        self.owner = owner
        self.read_units = read_units_per_second
        self.write_units = write_units_per_second
        self.pool = ThreadPoolExecutor(JOB_THREADS, thread_name_prefix="items-job")
        # Copy back and undo (approved, small) never wait behind comparisons: threads of their own.
        self.writes = ThreadPoolExecutor(JOB_THREADS, thread_name_prefix="items-write")
        # Inserts a new comparison unless a limit refuses it (bot/items/limits.py): why, or None.
        self.admit: Callable[[ItemJob, Callable], str | None] = lambda job, add: add() and None
        self.on_change: Callable[[], None] = lambda: None  # the announcer's kick
        # Progress of a running job, for the message edited in place (Slack side).
        self.on_progress: Callable[[ItemJob, Progress], None] = lambda job, p: None
        # Items read / written / conflicts / failed (metrics).
        self.on_items: Callable[[str, int], None] = lambda what, n: None
        self._running: set[str] = set()
        self._lock = threading.Lock()

    # -- finding the restore ----------------------------------------------------------------
    def restore_of(self, restored_table: str) -> RestoreRequest | None:
        """The ACTIVE restore whose new table is `restored_table` (newest first)."""
        for req in self.store.find(states=[State.ACTIVE], limit=1000):
            if req.target == restored_table and req.kind == "restore":
                return req
        return None

    # -- compare ----------------------------------------------------------------------------
    def start_compare(
        self,
        req: RestoreRequest | None,
        user: str,
        channel: str,
        keys: list[str] | None = None,
        table: str = "",
    ) -> Outcome:
        if req is None or req.state != State.ACTIVE:
            what = f"`{table}`" if table else "This table"
            return Outcome(
                False,
                f"{what} is not a table this bot restored (or its restore is not ACTIVE); "
                "I only compare tables I restored.",
            )
        decision = self.policy.may_request(user, channel, req.source, self.members)
        if not decision.allowed:
            self._audit("compare_refused", None, user, channel, req.source, decision.reason)
            return Outcome(False, decision.reason)
        problem = self._restored_problem(req)
        if problem:
            self._audit("compare_refused", None, user, channel, req.source, problem)
            return Outcome(False, problem)
        now = self.clock()
        private_dir(self.work_dir)
        job = ItemJob(
            restore_id=req.id,
            live_table=req.source,
            restored_table=req.target,
            channel=req.channel,
            thread_ts=req.card_ts,
            requested_by=user,
            created_at=now,
            job_path="",
            partition_keys=keys,
            updated_at=now,
            lease_owner=self.owner,
            lease_until=now + self.lease,
        )
        job = replace(job, job_path=str(self.work_dir / f"{job.id}.sqlite"))
        detail = f"{req.target} vs {req.source}" + (f", keys: {len(keys)}" if keys else "")
        entry = self._entry("compare_started", job, user, detail)
        problem = self.admit(job, lambda: self.store.job_add(job, ["items_progress"], [entry]))
        if problem:
            return Outcome(False, problem)
        self.on_change()
        self._submit(self.run_compare, job.id)
        return Outcome(True, "", job)

    def run_compare(self, job_id: str) -> None:
        job = self._claim(job_id, JobState.COMPARING)
        if job is None:
            return
        files = JobFile(job.job_path)
        try:
            live = self._identity(job.live_table)
            if self.identify is not None and live is None:
                raise ItemsError(
                    f"`{job.live_table}` does not exist, so there is nothing to compare."
                )
            restored_client, restored_name = self.route(job.restored_table)
            live_client, live_name = self.route(job.live_table)
            counts = ItemCompare(
                restored_client,
                files,
                read_units_per_second=self.read_units,
                progress=lambda p: self._progress(job_id, p),
                live_client=live_client,
                stop=self.stopping,
            ).run(restored_name, live_name, job.partition_keys)
            # Neither table may have been replaced while it was read.
            problem = self._restored_problem(self.store.get(job.restore_id))
            problem = problem or self._live_problem(job.live_table, live)
            if problem:
                raise ItemsError(problem)
            write_jsonl(files, self.report_path(job))
        except Stopped:
            self._release(job_id)  # compared again from the start by the next process
            return
        except ItemsError as exc:
            self._finish(job_id, JobState.FAILED, "compare_failed", str(exc), note=str(exc))
            return
        except Exception:  # noqa: BLE001 - say so in the thread rather than hang in COMPARING
            log.exception("item job %s: comparison failed", job_id)
            note = "The comparison failed unexpectedly (logged); try again."
            self._finish(job_id, JobState.FAILED, "compare_failed", "unexpected error", note=note)
            return
        finally:
            files.close()
        self.on_items(
            "read", counts.missing + counts.added + 2 * (counts.changed + counts.unchanged)
        )
        self._compared(job_id, counts, live, unchanged=True)

    def _compared(
        self, job_id: str, counts: DiffCounts, live: dict | None, unchanged: bool, **extra: Any
    ) -> None:
        """COMPARING -> COMPARED with the counts, for both paths (an export reads only changed
        items, so its 'unchanged' is not worth saying)."""
        words = f"missing {counts.missing}, changed {counts.changed}, added {counts.added}"
        words += f", unchanged {counts.unchanged}" if unchanged else ""
        self._finish(
            job_id,
            JobState.COMPARED,
            "compare_done",
            words,
            missing=counts.missing,
            changed=counts.changed,
            added=counts.added,
            unchanged=counts.unchanged,
            live_identity=live,
            **extra,
        )

    # -- copy back / undo: asking, deciding -------------------------------------------------
    def request_copy(self, job_id: str, user: str, include_changed: bool) -> Outcome:
        return self._ask(job_id, user, include_changed, undo=False)

    def request_undo(self, job_id: str, user: str) -> Outcome:
        return self._ask(job_id, user, False, undo=True)

    def _ask(self, job_id: str, user: str, include_changed: bool, undo: bool) -> Outcome:
        for _ in range(CAS_ATTEMPTS):
            job = self.store.job_get(job_id)
            if job is None:
                return Outcome(False, "This comparison no longer exists.")
            wanted = JobState.COPIED if undo else JobState.COMPARED
            if job.state != wanted:
                return Outcome(False, already(job))
            if job.files_removed_at is not None:
                what = "An undo is no longer possible" if undo else "Compare again"
                return Outcome(
                    False,
                    f"{what}: this comparison's files were deleted {days(self.retention)} "
                    "after its last step (`PITR_BOT_ITEMS_RETENTION_DAYS`).",
                )
            refusal = self._may_write(job, user)
            if refusal:
                event = "undo_request_refused" if undo else "copy_back_request_refused"
                self._audit(event, job.id, user, job.channel, job.live_table, refusal)
                return Outcome(False, refusal)
            now = self.clock()
            # As many approvals as a restore of the live table needs, counted afresh.
            fresh = {
                "approvals": (),
                "required_approvals": self.policy.for_table(job.live_table).required_approvals,
            }
            if undo:
                new = job.advance(
                    JobState.UNDO_REQUESTED, now, undo_requested_by=user, note="", **fresh
                )
                detail = f"undo {job.copy_counts.get('written', 0)} written items"
            else:
                new = job.advance(
                    JobState.COPY_REQUESTED,
                    now,
                    copy_requested_by=user,
                    include_changed=include_changed,
                    note="",
                    **fresh,
                )
                new = self.with_plan(new)  # counted for the card: what is written, left out
                if new.to_copy == 0 and not new.plan.get("expired"):
                    return Outcome(False, "There is nothing to copy back.")
                detail = f"{new.plan}"
            event = "undo_requested" if undo else "copy_back_requested"
            saved = self.store.job_save(
                job, new, ["items_approval"], [self._entry(event, job, user, detail)]
            )
            if saved is not None:
                self.on_change()
                return Outcome(True, "", saved)
        return Outcome(False, "Too many people clicked at once; please try again.")

    def decide(self, job_id: str, user: str, approve: bool, undo: bool | None = None) -> Outcome:
        """`undo`: what the clicked card asked about (None: whatever the job awaits)."""
        for _ in range(CAS_ATTEMPTS):
            job = self.store.job_get(job_id)
            if job is None:
                return Outcome(False, "This comparison no longer exists.")
            if job.state not in AWAITING:
                return Outcome(False, already(job))
            if undo is not None and undo != (job.state == JobState.UNDO_REQUESTED):
                return Outcome(False, STALE_DECISION)
            undo = job.state == JobState.UNDO_REQUESTED
            requester = (job.undo_requested_by if undo else job.copy_requested_by) or ""
            check = self.policy.may_approve if approve else self.policy.may_deny
            decision = check(user, requester, job.live_table, self.members)
            what = "undo" if undo else "copy back"
            if not decision.allowed:
                reason = decision.reason.replace("this restore", f"this {what}")
                event = f"{what.replace(' ', '_')}_{'approval' if approve else 'denial'}_refused"
                self._audit(event, job.id, user, job.channel, job.live_table, reason)
                return Outcome(False, reason)
            if approve and not self.policy.may_copy_back(job.live_table).allowed:
                reason = self.policy.may_copy_back(job.live_table).reason
                self._audit("copy_back_refused", job.id, user, job.channel, job.live_table, reason)
                return Outcome(False, reason)
            now = self.clock()
            if approve and user in job.approvals:
                return Outcome(
                    False,
                    f"You already approved this; waiting for {job.approvals_missing} more.",
                )
            if approve and job.approvals_missing > 1:  # not the last approval: count it
                counted = replace(job, approvals=(*job.approvals, user), updated_at=now)
                detail = f"{len(counted.approvals)} of {counted.required_approvals}"
                event = f"{'undo' if undo else 'copy_back'}_approval"
                saved = self.store.job_save(
                    job, counted, ["items_card"], [self._entry(event, job, user, detail)]
                )
                if saved is not None:
                    self.on_change()
                    return Outcome(
                        True, f"Approved; waiting for {saved.approvals_missing} more.", saved
                    )
                continue
            if approve:
                to = JobState.UNDOING if undo else JobState.COPYING
                changes = {"undo_decided_by": user} if undo else {"copy_decided_by": user}
                changes |= {"approvals": (*job.approvals, user)}
                # progress_ts: the write gets a progress message of its own (items_decided).
                changes |= {"lease_owner": self.owner, "lease_until": now + self.lease}
                changes |= {"progress_ts": None}
                event = f"{'undo' if undo else 'copy_back'}_approved"
            else:
                to = JobState.COPIED if undo else JobState.COMPARED
                changes = {"note": f"{what} denied by {user}"}
                event = f"{'undo' if undo else 'copy_back'}_denied"
            new = job.advance(to, now, **changes)
            saved = self.store.job_save(
                job, new, ["items_decided"], [self._entry(event, job, user, job.live_table)]
            )
            if saved is not None:
                self.on_change()
                if approve:
                    run = self.run_undo if undo else self.run_copy
                    self._submit(run, job.id)
                return Outcome(True, "", saved)
        return Outcome(False, "Too many people clicked at once; please try again.")

    def _may_write(self, job: ItemJob, user: str) -> str:
        decision = self.policy.may_request(user, job.channel, job.live_table, self.members)
        if not decision.allowed:
            return decision.reason
        decision = self.policy.may_copy_back(job.live_table)
        return "" if decision.allowed else decision.reason

    # -- identity, not name -----------------------------------------------------------------
    def _identity(self, table: str) -> dict[str, Any] | None:
        return None if self.identify is None else self.identify(table)

    def _restored_problem(self, req: RestoreRequest | None) -> str | None:
        """Why the restored table may not be read as this restore's (its name was reused)."""
        if self.identify is None:
            return None
        if req is None:
            return "The restore of this comparison no longer exists."
        try:
            current = self.identify(req.target)
        except ItemsError as exc:
            return f"I could not check that `{req.target}` is still the restored table ({exc})."
        # The marker tag comes with the after-ACTIVE checks: not required to read.
        return identity_problem(req.target, req.identity, current, check_marker=False)

    def _live_problem(self, table: str, recorded: dict[str, Any] | None) -> str | None:
        """Why `table` is not the live table that was compared (deleted and created again)."""
        if self.identify is None:
            return None
        return replaced_problem(table, recorded, self.identify(table))

    # -- copy back / undo: writing ----------------------------------------------------------
    def run_copy(self, job_id: str) -> None:
        self._write(job_id, JobState.COPYING, COPY_BACK)

    def run_undo(self, job_id: str) -> None:
        self._write(job_id, JobState.UNDOING, UNDO)

    def _write(self, job_id: str, state: JobState, name: str) -> None:
        job = self._claim(job_id, state)
        if job is None:
            return
        try:
            problem = self._live_problem(job.live_table, job.live_identity)
        except ItemsError as exc:
            problem = (
                f"I could not check that `{job.live_table}` is still the table that was "
                f"compared ({exc}), so nothing was written."
            )
        if problem:
            event = "undo_refused" if name == UNDO else "copy_back_refused"
            self._finish(job_id, JobState.FAILED, event, problem, note=problem)
            return
        files = JobFile(job.job_path)
        try:
            if name == COPY_BACK:
                files.plan_copy_back(**self.plan_args(job))
            else:
                files.plan_undo()
            before = files.write_counts(name)
            client, table = self.route(job.live_table)
            counts = ItemWriter(
                client,
                files,
                write_units_per_second=self.write_units,
                progress=lambda p: self._progress(job_id, p),
                stop=self.stopping,
            ).run(name, table)
        except Stopped:
            self._release(job_id)  # every write so far has its outcome: resumed from there
            return
        finally:
            files.close()
        for what in ("written", "conflict", "failed"):
            self.on_items(what, getattr(counts, what) - getattr(before, what))
        done = asdict(counts)  # planned, written, conflict, failed, already
        words = (
            f"written {counts.written}, skipped (conflict) {counts.conflict}, "
            f"failed {counts.failed}"
        )
        if name == COPY_BACK:
            self._finish(job_id, JobState.COPIED, "copy_back_done", words, copy_counts=done)
        else:
            self._finish(job_id, JobState.UNDONE, "undo_done", words, undo_counts=done)

    # -- restarts, leases, progress ---------------------------------------------------------
    def resume(self) -> int:
        """Run again every job a restart interrupted (its lease is ours or over): at start, and
        every minute, so a job whose replica died is finished by another."""
        resumed = 0
        runs = {
            JobState.COMPARING: self.run_compare,
            JobState.COPYING: self.run_copy,
            JobState.UNDOING: self.run_undo,
        }
        for job in self.store.job_find(states=sorted(RUNNING), limit=1000):
            with self._lock:
                if job.id in self._running:
                    continue
            held = job.lease_owner not in (None, self.owner) and (
                job.lease_until is not None and job.lease_until > self.clock()
            )
            if held:
                continue  # another replica runs it; picked up here if its lease runs out
            if not self._submit(runs[job.state], job.id):
                break
            resumed += 1
        if resumed:
            log.info("item jobs: %d resumed", resumed)
        return resumed

    def _claim(self, job_id: str, state: JobState) -> ItemJob | None:
        """Take the job's lease (compare-and-set); None if another thread or replica runs it."""
        with self._lock:
            if job_id in self._running:
                return None
            self._running.add(job_id)
        for _ in range(CAS_ATTEMPTS):
            job = self.store.job_get(job_id)
            if job is None or job.state != state:
                break
            now = self.clock()
            held = job.lease_owner not in (None, self.owner) and (
                job.lease_until is not None and job.lease_until > now
            )
            if held:
                break
            claimed = self.store.job_save(
                job,
                replace(job, lease_owner=self.owner, lease_until=now + self.lease, updated_at=now),
            )
            if claimed is not None:
                return claimed
        with self._lock:
            self._running.discard(job_id)
        return None

    def _progress(self, job_id: str, progress: Progress) -> None:
        job = self.store.job_get(job_id)
        if job is None:
            return
        now = self.clock()
        if job.lease_owner == self.owner:  # renew the lease while working
            job = (
                self.store.job_save(job, replace(job, lease_until=now + self.lease, updated_at=now))
                or job
            )
        self.on_progress(job, progress)

    def _finish(self, job_id: str, to: JobState, event: str, detail: str, **changes: Any) -> None:
        try:
            for _ in range(CAS_ATTEMPTS):
                job = self.store.job_get(job_id)
                if job is None:
                    return
                new = job.advance(to, self.clock(), lease_owner=None, lease_until=None, **changes)
                kinds = ["items_failed" if to == JobState.FAILED else f"items_{to.value.lower()}"]
                if to == JobState.COMPARED:
                    kinds.append("items_report")  # the diff file: sent (and retried) on its own
                if job.function_execution_id and job.state == JobState.COMPARING:
                    kinds.append("items_step_done")  # the workflow step waiting for it
                entry = self._entry(event, job, None, detail)
                saved = self.store.job_save(job, new, kinds, [entry])
                if saved is not None:
                    self.on_change()
                    return
        finally:
            with self._lock:
                self._running.discard(job_id)

    def _submit(self, work: Callable[[str], None], job_id: str) -> bool:
        """Run `work(job_id)` on the job threads; False once they are shut down (the job stays
        in the store, resumed by the next process)."""
        try:
            writing = work in (self.run_copy, self.run_undo)
            (self.writes if writing else self.pool).submit(self._guard, work, job_id)
        except RuntimeError:  # submit after shutdown: stop() raced a click or a tick
            log.info("item job %s left for the next process (shutting down)", job_id)
            return False
        return True

    def _guard(self, work: Callable[[str], None], job_id: str) -> None:
        try:
            work(job_id)
        except Exception:  # noqa: BLE001 - a thread's boundary: the job stays to be resumed
            log.exception(
                "item job %s failed unexpectedly; it is resumed at the next start", job_id
            )
            with self._lock:
                self._running.discard(job_id)

    # -- audit ------------------------------------------------------------------------------
    def _entry(self, event: str, job: ItemJob, actor: str | None, detail: str) -> AuditEvent:
        return AuditEvent(
            self.clock(), event, job.id, actor, job.channel, job.live_table, detail[:500]
        )

    def _audit(
        self, event: str, job_id: str | None, actor: str, channel: str, table: str, detail: str
    ) -> None:
        self.store.audit(AuditEvent(self.clock(), event, job_id, actor, channel, table, detail))

    def stop(self) -> None:
        """Shutdown: running jobs stop at a checkpoint and give their lease back (resumed by the
        next process); jobs not started yet stay for it too."""
        self.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.writes.shutdown(wait=True, cancel_futures=True)

    def _release(self, job_id: str) -> None:
        try:
            for _ in range(CAS_ATTEMPTS):
                job = self.store.job_get(job_id)
                if job is None or job.lease_owner != self.owner:
                    return
                released = replace(job, lease_owner=None, lease_until=None, updated_at=self.clock())
                if self.store.job_save(job, released) is not None:
                    log.info("item job %s stopped at a checkpoint; it is resumed", job_id)
                    return
        finally:
            with self._lock:
                self._running.discard(job_id)

    def renew_leases(self) -> None:
        """Keep the leases of the jobs this process runs (a write may wait long on retries)."""
        with self._lock:
            running = list(self._running)
        for job_id in running:
            job = self.store.job_get(job_id)
            if job is None or job.state not in RUNNING or job.lease_owner != self.owner:
                continue
            now = self.clock()
            self.store.job_save(job, replace(job, lease_until=now + self.lease, updated_at=now))

    def tick(self) -> None:
        """The periodic work: keep our leases, take over jobs whose process died."""
        self.renew_leases()
        if not self.stopping.is_set():
            self.resume()
