"""Starting and tracking: the one restore call, adopting our own table after a crash or a
retried call, polling each restore when its ETA says, leases between replicas, failure.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot import eta as etas
from bot.batches.model import MAX_RESTORES_PER_ACCOUNT, limit_backoff, queue_positions
from bot.engine.context import CAS_ATTEMPTS, Context
from bot.engine.history import estimate_for
from bot.logs import restore_context
from bot.period_change import PERIOD_CHANGE, RESTORE
from bot.pitr import AwsError, TableInfo
from bot.policy import table_name_of
from bot.polling import lease_seconds, next_delay
from bot.restores import IN_FLIGHT, InvalidTransition, RestoreRequest, State
from bot.table_identity import identity
from bot.tableref import account_of

log = logging.getLogger(__name__)

# After this many consecutive failed polls a restore is declared FAILED (about 30 minutes of
# AWS errors at the default 10 s poll); throttling alone is retried for far longer.
MAX_ERROR_STREAK = 180
MAX_MISSING_POLLS = 3
POLL_THREADS = 8
# The restore call's "the target exists / is being created or deleted" errors.
TARGET_TAKEN = {"TableAlreadyExistsException", "ResourceInUseException", "TableInUseException"}
# AWS keeps RestoreDateTime to the second or millisecond; our instant may carry microseconds.
RESTORE_TIME_SLACK = timedelta(seconds=1)
# Our clock against AWS's CreationDateTime: a few seconds apart at most on NTP-synced hosts.
CLOCK_SKEW = timedelta(seconds=5)
# The progress reply moves with time but costs a chat.update per edit: about one a minute (50
# restores in flight stay within chat.update's Tier 3 rate limit, 50+ a minute).
PROGRESS_EDIT_SECONDS = 60.0


class Tracking:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._poll_pool = ThreadPoolExecutor(POLL_THREADS, thread_name_prefix="pitr-poll")
        self._slots_lock = threading.Lock()
        self.batches: Any = None  # bot.batches.engine.Batches, set by the Workflow facade

    def start(self, restore_id: str) -> None:
        """APPROVED -> RESTORING, then the one RestoreTableToPointInTime call; or, when the
        account already runs its 50 restores, stay APPROVED and say how many wait before."""
        with restore_context(restore_id), self._working_on(restore_id) as mine:
            if not mine:
                return
            # One slot count and claim at a time in this process; across replicas the
            # store's slot record refuses the claim when the account's 50 are taken.
            with self._slots_lock:
                req = self.ctx.store.get(restore_id)
                if req is None or req.state != State.APPROVED:
                    return
                now = self.ctx.clock()
                if req.limit_retries and req.next_check_at and req.next_check_at > now:
                    return  # AWS said LimitExceeded: wait for the retry time (any replica)
                ahead = self._queue_ahead(req)
                if ahead is not None:
                    self._mark_queued(req, ahead)
                    return
                started = req.advance(
                    State.RESTORING,
                    now,
                    restore_called_at=now,
                    lease_owner=self.ctx.owner,
                    lease_until=now + self._lease(),
                )
                claimed = self.ctx.store.save(req, started, announce=self.ctx.owed(req, started))
            if claimed is None:
                fresh = self.ctx.store.get(restore_id)
                if fresh is not None and fresh.version == req.version:
                    # Unchanged, yet not saved: another replica took the account's last slot.
                    self._mark_queued(fresh, self._queue_ahead(fresh) or 0)
                return  # else another thread or replica started it
            if claimed.kind == PERIOD_CHANGE:
                self._change_period(claimed)
                return
            self._call_restore(claimed)

    def _queue_ahead(self, req: RestoreRequest) -> int | None:
        """None if `req` may start now, else how many approved restores of its account wait
        before it (oldest approval first). Only restores count (not PITR period changes)."""
        if req.kind != RESTORE:
            return None
        # The common case first, without reading any request: when every approved request of
        # the account fits in its free slots, `req` (one of them) is not queued. Only an
        # account with more approved than free slots needs the order of approval below.
        running, approved = self.ctx.store.account_load(account_of(req.source))
        if approved <= MAX_RESTORES_PER_ACCOUNT - running:
            return None
        in_flight = [
            r for r in self.ctx.store.find(states=list(IN_FLIGHT), limit=5000) if r.kind == RESTORE
        ]
        running = Counter(account_of(r.source) for r in in_flight if r.state == State.RESTORING)
        waiting = sorted(
            (r for r in in_flight if r.state == State.APPROVED),
            key=lambda r: (r.decided_at or r.created_at, r.id),
        )
        positions = queue_positions([(r.id, account_of(r.source)) for r in waiting], running)
        return positions.get(req.id)

    def _mark_queued(self, req: RestoreRequest, ahead: int, error: str | None = None) -> None:
        if req.queued_ahead == ahead and error in (None, req.error):
            return  # nothing new to tell
        first = req.queued_ahead is None
        new = replace(req, queued_ahead=ahead, updated_at=self.ctx.clock())
        if error is not None:
            new = replace(new, error=error)
        audit = [self.ctx.audit_entry("restore_queued", req, None, detail=f"{ahead} ahead")]
        if self.ctx.save(req, new, ["queued", "card_update"], audit=audit if first else []):
            self.ctx.on_change()

    def _requeue(self, req: RestoreRequest, error: str) -> None:
        """AWS refused the start for its limit on concurrent restores: back in the queue, and
        ask again later, waiting longer each time (the retry time is stored with the request,
        so any replica, or this one after a restart, keeps to it)."""
        now = self.ctx.clock()
        attempt = req.limit_retries + 1
        retry_at = now + timedelta(seconds=limit_backoff(attempt, self.ctx.poll_seconds))
        try:
            new = req.advance(
                State.APPROVED,
                now,
                restore_called_at=None,
                lease_owner=None,
                lease_until=None,
                error_streak=0,
                error=error,
                limit_retries=attempt,
                next_check_at=retry_at,
                queued_ahead=req.queued_ahead or 0,
            )
        except InvalidTransition:
            return
        audit = []
        if req.queued_ahead is None:  # the first time it waits, not every retry
            audit = [self.ctx.audit_entry("restore_queued", req, None, detail="AWS limit")]
        if self.ctx.save(req, new, ["queued", "card_update"], audit=audit) is not None:
            log.info("restore %s: AWS limit reached, retrying at %s", req.id, retry_at.isoformat())
            self.ctx.on_change()

    def _call_restore(self, req: RestoreRequest) -> None:
        try:
            # In another account the call runs under its own attributed session (pitr.py).
            attribution = (
                {"restore_id": req.id, "approver": req.decided_by} if account_of(req.source) else {}
            )
            info = self.ctx.pitr.restore(
                req.source, req.target, req.restore_at, req.overrides, **attribution
            )
        except AwsError as exc:
            if exc.code in TARGET_TAKEN:
                self._target_taken(req, exc)
                return
            if exc.code == "LimitExceededException":
                self._requeue(req, exc.message)
                return
            if exc.retryable:
                log.warning("restore %s: start failed, will retry: %s", req.id, exc)
                self._save_retry(req, str(exc))
                return
            self.fail(req, exc.message)
            return
        log.info("restore %s: RestoreTableToPointInTime called for %s", req.id, req.target)
        self._record_started(req, info)

    def _change_period(self, req: RestoreRequest) -> None:
        """The one UpdateContinuousBackups of an approved period change, then ACTIVE."""
        try:
            result = self.ctx.pitr.enable_pitr(req.source, req.recovery_days)
        except AwsError as exc:
            if exc.retryable:
                self._save_retry(req, exc.message)
            else:
                self.fail(req, exc.message)
            return
        now = self.ctx.clock()
        new = req.advance(
            State.ACTIVE,
            now,
            finished_at=now,
            recovery_days=result.recovery_days or req.recovery_days,
            lease_owner=None,
            lease_until=None,
        )
        detail = f"recovery period {req.previous_days} -> {new.recovery_days} days"
        if self.ctx.save(
            req,
            new,
            announce=["period_changed", "card_update"],
            audit=[self.ctx.audit_entry("pitr_period_changed", req, req.decided_by, detail=detail)],
        ):
            log.info("request %s: %s", req.id, detail)
            self.ctx.on_change()

    def _target_taken(self, req: RestoreRequest, exc: AwsError) -> None:
        """The restore call met a table of the target's name. botocore retries the call after a
        500 or a timeout, and an earlier crash may have hit after the call: either way the
        table may be our own restore, already running. Adopt it then; fail only on a foreign one.
        A second restore can't start meanwhile: AWS refuses a second table of that name."""
        try:
            existing = self.ctx.pitr.table(req.target)
        except AwsError as describe_error:
            # Can't tell whose table it is yet: look again next tick, don't fail.
            self._save_retry(req, describe_error.message, fatal=not describe_error.retryable)
            return
        if existing is not None and _is_our_restore(existing, req):
            log.info("restore %s: %s is our own restore; tracking it", req.id, req.target)
            self._record_started(req, existing)
            return
        if existing is None:
            # Being deleted, or not visible yet: look again next tick.
            self._save_retry(req, exc.message)
            return
        self.fail(req, exc.message)

    def _record_started(self, req: RestoreRequest, info: TableInfo) -> None:
        # The history as it is now, not as it was when the card was posted: restores that
        # finished while this one waited for approval or a slot count too.
        eta = estimate_for(self.ctx, req.source, req.source_bytes, req.source_items)
        for _ in range(CAS_ATTEMPTS):
            if req.table_arn is not None:
                return  # somebody else recorded it already
            now = self.ctx.clock()
            started = replace(req, eta=eta.to_dict() if eta else req.eta)
            new = replace(
                started,
                table_arn=info.arn or f"arn:unknown:{info.name}",
                target_status=info.status,
                error_streak=0,
                queued_ahead=None,
                limit_retries=0,
                updated_at=now,
                **self._schedule(started, now),
            )
            # A queued card said "queued: N ahead"; it now says the restore runs.
            announce = ["started"] + (["card_update"] if req.queued_ahead is not None else [])
            entry = self.ctx.audit_entry("restore_started", req, None, detail=req.target)
            if self.ctx.save(req, new, announce=announce, audit=[entry]):
                self.ctx.on_change()
                return
            fresh = self.ctx.store.get(req.id)
            if fresh is None or fresh.state != State.RESTORING:
                return
            req = fresh

    def track(self) -> int:
        """One tracker tick (after Workflow.track has expired what nobody decided): start what
        was approved, poll the restores that are due.

        Each restore carries its own next check time (bot/polling.py); the store hands out
        the due ones and says when the next one falls due, which is when the tracker wakes.
        """

        def advance(req: RestoreRequest) -> int:
            if req.state == State.APPROVED:
                self.start(req.id)
                return 0
            return self.poll(req.id)

        # A few polls at a time: with 50 restores in flight, a one-by-one walk would add
        # seconds to the notice of the last ones, for no saving in calls.
        due, _ = self.ctx.store.due(self.ctx.clock(), self.ctx.owner)
        polled = sum(self._poll_pool.map(advance, due))
        _, self.ctx.next_due = self.ctx.store.due(self.ctx.clock(), self.ctx.owner, limit=0)
        return polled

    def poll(self, restore_id: str) -> int:
        with restore_context(restore_id), self._working_on(restore_id) as mine:
            if not mine:
                return 0
            req = self.ctx.store.get(restore_id)
            if req is None or req.state != State.RESTORING:
                return 0
            now = self.ctx.clock()
            leased = (
                req.lease_owner not in (None, self.ctx.owner)
                and req.lease_until is not None
                and req.lease_until > now
            )
            if leased:
                return 0  # another replica tracks it
            if req.kind == PERIOD_CHANGE:
                # Claimed but not finished (a crash): setting the same period again is harmless.
                self._change_period(req)
                return 1
            if req.table_arn is None:
                self._resume_start(req)
                return 1
            try:
                info = self.ctx.pitr.table(req.target)
            except AwsError as exc:
                self._save_retry(req, exc.message, fatal=not exc.retryable)
                return 1
            self._apply(req, info, now)
            return 1

    def _resume_start(self, req: RestoreRequest) -> None:
        """RESTORING without a recorded call: a crash hit between claim and call."""
        try:
            existing = self.ctx.pitr.table(req.target)
        except AwsError as exc:  # "can't tell" is not "absent": never restore twice on it
            self._save_retry(req, exc.message, fatal=not exc.retryable)
            return
        if existing is None:
            self._call_restore(req)
        elif _is_our_restore(existing, req):
            self._record_started(req, existing)
        else:
            self.fail(
                req,
                f"A table named `{req.target}` exists but is not a restore of "
                f"`{req.source}`; it was not touched.",
            )

    def _apply(self, req: RestoreRequest, info: TableInfo | None, now: datetime) -> None:
        lease = self._schedule(req, now)
        if info is None:
            missing = req.missing_polls + 1
            if missing >= MAX_MISSING_POLLS:
                self.fail(req, f"The new table `{req.target}` disappeared while restoring.")
            else:
                self.ctx.store.save(
                    req, replace(req, missing_polls=missing, updated_at=now, **lease)
                )
            return
        if info.status == "ACTIVE":
            new = req.advance(
                State.ACTIVE,
                now,
                finished_at=now,
                target_status="ACTIVE",
                item_count=info.item_count,
                size_bytes=info.size_bytes,
                polls=req.polls + 1,
                lease_owner=None,
                lease_until=None,
                # What later Delete / fix clicks check, so a reused name is never acted on.
                identity=identity(
                    info.arn, info.table_id, info.restored_from, info.restored_at, req.id
                ),
                next_check_at=None,
            )
            entry = self.ctx.audit_entry(
                "restore_finished", req, None, detail=f"{req.target} ACTIVE"
            )
            if self.ctx.save(
                req, new, announce=["done", "card_update", "aftercare"], audit=[entry]
            ):
                if self.batches is not None:
                    self.batches.member_final(new)
                log.info("restore %s: %s is ACTIVE after %d polls", req.id, req.target, new.polls)
                self.ctx.on_change()
            return
        if info.status in {"CREATING", "UPDATING"}:
            new = replace(
                req,
                target_status=info.status,
                polls=req.polls + 1,
                error_streak=0,
                missing_polls=0,
                updated_at=now,
                **lease,
            )
            announce = ["progress"] if self._progress_due(req, now) else []
            if self.ctx.store.save(req, new, announce=announce) and announce:
                self.ctx.on_change()
            return
        self.fail(req, f"The new table `{req.target}` is {info.status} instead of ACTIVE.")

    def _save_retry(self, req: RestoreRequest, error: str, fatal: bool = False) -> None:
        streak = req.error_streak + 1
        if fatal or streak >= MAX_ERROR_STREAK:
            self.fail(req, error)
            return
        now = self.ctx.clock()
        self.ctx.store.save(
            req,
            replace(
                req,
                error_streak=streak,
                error=error,
                updated_at=now,
                lease_owner=self.ctx.owner,
                lease_until=now + self._lease(),
                next_check_at=now + timedelta(seconds=self.ctx.poll_seconds),  # errors: plain pace
            ),
        )

    def fail(self, req: RestoreRequest, error: str) -> None:
        try:
            new = req.advance(
                State.FAILED,
                self.ctx.clock(),
                error=error,
                lease_owner=None,
                lease_until=None,
                next_check_at=None,
            )
        except InvalidTransition:
            return
        entry = self.ctx.audit_entry("restore_failed", req, None, detail=error)
        if self.ctx.save(req, new, announce=["failed", "card_update"], audit=[entry]):
            log.error("restore %s failed: %s", req.id, error)
            self.ctx.on_change()
            if self.batches is not None:
                self.batches.member_final(new)  # one table failing does not stop the others

    def _lease(self) -> timedelta:
        # Renewed at every poll; if the holder dies, another replica takes over within three.
        return timedelta(seconds=3 * self.ctx.poll_seconds)

    def _schedule(self, req: RestoreRequest, now: datetime) -> dict[str, object]:
        """The next check of `req` from its ETA, and a lease that outlives the wait for it."""
        elapsed = req.elapsed(now).total_seconds()
        delay = next_delay(etas.Eta.from_dict(req.eta), elapsed, self.ctx.limits)
        return {
            "next_check_at": now + timedelta(seconds=delay),
            "lease_owner": self.ctx.owner,
            "lease_until": now + timedelta(seconds=lease_seconds(delay, self.ctx.limits)),
        }

    def release_leases(self) -> int:
        """On shutdown: hand our restores to the other replicas now, not after the lease."""
        released = 0
        for req in self.ctx.store.find(states=[State.RESTORING], limit=1000):
            fresh = self.ctx.store.get(req.id)
            if fresh is not None and fresh.lease_owner == self.ctx.owner:
                if self.ctx.store.save(fresh, replace(fresh, lease_owner=None, lease_until=None)):
                    released += 1
        return released

    def _progress_due(self, req: RestoreRequest, now: datetime) -> bool:
        """Edit the progress reply as time passes (elapsed, share of typical, overdue), at
        most about once a minute: every third poll early on, then every elapsed/5, capped at
        PROGRESS_EDIT_SECONDS; and at the first poll past the longest earlier restore of the
        table (issue 22). Its text is rendered at send time from the start and the ETA.
        (Not every poll: chat.update is rate-limited per workspace, and 50 restores started
        together would otherwise edit 300 times in their first minute.)"""
        if req.progress_at is None:
            return True
        elapsed = req.elapsed(now).total_seconds()
        eta = etas.Eta.from_dict(req.eta)
        if etas.overdue(eta, elapsed) and not etas.overdue(
            eta, req.elapsed(req.progress_at).total_seconds()
        ):
            return True  # just passed every earlier restore of the table: news, tell it now

        interval = min(max(elapsed / 5, 3 * self.ctx.poll_seconds), PROGRESS_EDIT_SECONDS)
        return (now - req.progress_at).total_seconds() >= interval

    @contextmanager
    def _working_on(self, restore_id: str) -> Iterator[bool]:
        """Within one process, one thread at a time handles a given restore."""
        with self._busy_lock:
            mine = restore_id not in self._busy
            if mine:
                self._busy.add(restore_id)
        try:
            yield mine
        finally:
            if mine:
                with self._busy_lock:
                    self._busy.discard(restore_id)


def _is_our_restore(info: TableInfo, req: RestoreRequest) -> bool:
    """Is this existing target table the restore this request started (so ours to adopt)?

    Its RestoreSummary must name our source and our instant; for `latest` (whose restore time
    is before the approval) the table must have been created after the approval.
    """
    name = table_name_of(req.source)
    if not (info.restored_from and str(info.restored_from).endswith(f":table/{name}")):
        return False
    if req.restore_at is not None and info.restored_at is not None:
        return abs(info.restored_at - req.restore_at) <= RESTORE_TIME_SLACK
    approved = req.decided_at or req.restore_called_at
    if approved is None or info.created_at is None:
        return False
    return info.created_at >= approved - CLOCK_SKEW
