"""The engine: request, decide, start, track. Knows nothing of what a person types.

Every step reads the request, decides on a pure transition and writes it back with
compare-and-set. A lost race is reloaded and re-decided, never forced. Slack messages a step
owes are queued in the same write (the outbox) and sent by the Announcer.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot import eta as etas
from bot.batch import queue_positions
from bot.batches import Batches, is_batch, is_member
from bot.drills import DrillState
from bot.logs import restore_context
from bot.period_change import DEFAULT_DAYS, PERIOD_CHANGE, RESTORE
from bot.pitr import AwsError, PitrInfo, PitrService, TableInfo
from bot.policy import Decision, Members, Policy, table_name_of
from bot.polling import PollLimits, lease_seconds, next_delay
from bot.restores import (
    IN_FLIGHT,
    InvalidTransition,
    RestoreRequest,
    State,
    Window,
    expiry,
    table_name_problem,
    utcnow,
)
from bot.store import AuditEvent, Store
from bot.table_identity import identity
from bot.tableref import RefError, TableRef, account_of, canonical, parse_ref, targets_for
from bot.when import WhenError, format_instant, parse_when

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 20
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


@dataclass(frozen=True)
class Outcome:
    """What to tell the person who acted; `ok` False means a refusal with `message`.

    `field` names the input a refusal is about (source, target, when, overrides), so a form
    can show it next to that field.
    """

    ok: bool
    message: str = ""
    request: RestoreRequest | None = None
    field: str | None = None


@dataclass(frozen=True)
class NewRequest:
    source: str
    target: str
    when: str
    requester: str
    channel: str
    requester_tz: str = "UTC"
    reason: str = ""
    overrides: dict | None = None


@dataclass(frozen=True)
class _Checked:
    instant: datetime | None
    window: Window
    source: TableInfo
    # The tables as stored: canonical references (`prod:orders@eu-west-1`; a plain name in
    # the bot's own account and region).
    source_ref: str
    target_ref: str


class Workflow:
    def __init__(
        self,
        store: Store,
        pitr: PitrService,
        policy: Policy,
        members: Members,
        clock: Callable[[], datetime] = utcnow,
        poll_seconds: float = 10,
        owner: str | None = None,
        limits: PollLimits | None = None,
        min_restore_minutes: float = 0,
    ):
        self.store = store
        self.pitr = pitr
        self.policy = policy
        self.members = members
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.limits = limits or PollLimits(poll_seconds=poll_seconds)
        self.min_restore_minutes = min_restore_minutes
        self.next_due: datetime | None = None  # when the next restore falls due (the tracker)
        self.owner = owner or uuid.uuid4().hex[:8]
        self.on_change: Callable[[], None] = lambda: None  # the announcer's kick
        self.on_event: Callable[[str], None] = lambda event: None  # metrics
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._slots_lock = threading.Lock()
        self._poll_pool = ThreadPoolExecutor(POLL_THREADS, thread_name_prefix="pitr-poll")
        self.batches = Batches(self)

    # -- request ----------------------------------------------------------------------------
    def request(self, new: NewRequest) -> Outcome:
        """Check everything a card promises, then create the request and queue its card."""
        if is_batch(new.source):
            batch = self.batches.request(new)
            if isinstance(batch, RestoreRequest):
                return Outcome(True, "", batch)
            if isinstance(batch, Outcome):
                return batch
            return Outcome(False, batch[1], field=batch[0])
        checked = self.check(new)
        if isinstance(checked, Outcome):
            return checked
        now = self.clock()
        rule = self.policy.for_table(checked.source_ref)
        source = checked.source
        eta = self.eta(checked.source_ref, source.size_bytes, source.item_count)
        req = RestoreRequest(
            source=checked.source_ref,
            target=checked.target_ref,
            requester=new.requester,
            channel=new.channel,
            restore_at=checked.instant,
            created_at=now,
            updated_at=now,
            expires_at=expiry(now, rule.request_ttl_minutes),
            requester_tz=new.requester_tz,
            reason=new.reason,
            window=checked.window,
            required_approvals=rule.required_approvals,
            source_items=source.item_count,
            source_bytes=source.size_bytes,
            source_billing=source.billing_mode,
            source_indexes=source.indexes,
            source_encryption=source.encryption,
            estimate=etas.card_text(eta, checked.source_ref),
            eta=eta.to_dict() if eta else None,
            overrides=new.overrides or None,
        )
        when = format_instant(checked.instant, "UTC") if checked.instant else "latest"
        entry = self.audit_entry("requested", req, new.requester, detail=f"{req.target} at {when}")
        self.store.add(req, announce=["card"], audit=[entry])
        self.on_event(entry.event)
        with restore_context(req.id):
            log.info("restore %s requested: %s -> %s at %s", req.id, req.source, req.target, when)
        self.on_change()
        return Outcome(True, "", req)

    def request_period_change(
        self, table: str, days: int, pitr: PitrInfo, requester: str, channel: str
    ) -> Outcome:
        """Lowering `table`'s recovery period: an approval card, like a restore's.

        The caller has checked the policy and that this is a shrink (bot/period_change.py).
        """
        waiting = [r for r in self.in_flight_from(table) if r.kind == PERIOD_CHANGE]
        if waiting:
            return Outcome(False, f"A change of `{table}`'s recovery period is already waiting.")
        now = self.clock()
        rule = self.policy.for_table(table)
        req = RestoreRequest(
            kind=PERIOD_CHANGE,
            source=table,
            target=table,
            requester=requester,
            channel=channel,
            restore_at=None,
            created_at=now,
            updated_at=now,
            expires_at=expiry(now, rule.request_ttl_minutes),
            window=pitr.window,
            required_approvals=rule.required_approvals,
            recovery_days=days,
            previous_days=pitr.recovery_days or DEFAULT_DAYS,
        )
        detail = f"recovery period {req.previous_days} -> {days} days"
        entry = self.audit_entry("pitr_period_requested", req, requester, detail=detail)
        self.store.add(req, announce=["card"], audit=[entry])
        self.on_event(entry.event)
        self.on_change()
        return Outcome(True, "", req)

    def check(self, new: NewRequest) -> _Checked | Outcome:
        """Every preflight check; a refusal is audited and says which field it is about."""
        result = self._preflight(new)
        if isinstance(result, tuple):
            field, message = result
            self.audit("request_refused", None, new.requester, new.channel, new.source, message)
            return Outcome(False, message, field=field)
        return result

    def eta(
        self, source: str, size_bytes: int | None = None, items: int | None = None
    ) -> etas.Eta | None:
        """The expected duration of a restore of `source`, from the store's finished restores."""
        own = self.store.find(states=[State.ACTIVE], source=source, limit=etas.HISTORY)
        others = self.store.find(states=[State.ACTIVE], limit=200)
        history = [
            etas.Sample(
                r.source,
                (r.finished_at - r.restore_called_at).total_seconds(),
                r.source_bytes,
                r.source_items,
            )
            for r in [*own, *(r for r in others if r.source != source)]
            if r.finished_at is not None and r.restore_called_at is not None and r.kind == RESTORE
        ]
        # Drills are restores too: their durations are this table's history as well.
        passed = self.store.drill_find([DrillState.PASSED], source=source, limit=etas.HISTORY)
        for drill in passed:
            took = drill.restore_duration
            if took is not None:
                history.append(etas.Sample(source, took.total_seconds(), None, drill.source_items))
        return etas.estimate(source, history, size_bytes, items, self.min_restore_minutes)

    def _preflight(self, new: NewRequest) -> _Checked | tuple[str | None, str]:
        places = self._places(new)
        if isinstance(places[0], str):
            return places  # type: ignore[return-value]  # (field, why not)
        source_ref, target_ref = places
        src, tgt = str(source_ref), str(target_ref)
        if src == tgt:
            return "target", "The target must be a new table: it can't be the source table itself."
        for ref, field in ((source_ref, "source"), (target_ref, "target")):
            decision = self.policy.place_allowed(ref.account, ref.region)
            if not decision.allowed:
                return field, decision.reason
        decision = self.policy.may_request(new.requester, new.channel, src, self.members)
        if not decision.allowed:
            return "source", decision.reason
        for field, decision in _target_and_key(self.policy, tgt, new.overrides):
            if not decision.allowed:
                return field, decision.reason
        now = self.clock()
        try:
            instant = parse_when(new.when, new.requester_tz, now)
        except WhenError as exc:
            return "when", str(exc)
        try:
            source = self.pitr.table(src)
            if source is None:
                return "source", (
                    f"Table `{src}` does not exist in "
                    f"{source_ref.region or self.pitr.region}. "
                    "Check the name (it is case-sensitive)."
                )
            pitr = self.pitr.pitr(src)
            if not pitr.enabled or pitr.window is None:
                return "source", (
                    f"Point-in-time recovery is {pitr.status} on `{src}`, so it can't be "
                    f"restored to a point in time. `/pitr-enable {src}` protects it from "
                    "now on."
                )
            if instant is not None and not pitr.window.contains(instant):
                return "when", _outside_window(instant, pitr.window)
            if self.pitr.table(tgt) is not None:
                return "target", (
                    f"Table `{tgt}` already exists. Choose a new name for the target."
                )
            if new.overrides:
                problem = self.pitr.overrides_problem(src, new.overrides)
                if problem:
                    return "overrides", problem
        except AwsError as exc:
            return None, exc.message
        busy = [r for r in self.store.find(states=[State.REQUESTED, *IN_FLIGHT]) if r.target == tgt]
        if busy:
            return "target", (
                f"A restore into `{tgt}` is already {busy[0].state.value.lower()}. "
                "Choose another target name."
            )
        return _Checked(instant, pitr.window, source, src, tgt)

    def _places(self, new: NewRequest) -> tuple[TableRef, TableRef] | tuple[str, str]:
        """The source and target as canonical references, or (field, why not)."""
        for text, field, label in (
            (new.source, "source", "Source table"),
            (new.target, "target", "Target table"),
        ):
            problem = _plain(text) and table_name_problem(text, label)
            if problem:
                return field, problem
        try:
            source = parse_ref(new.source, self.policy.account_aliases())
        except RefError as exc:
            return "source", str(exc)
        problem = table_name_problem(source.name, "Source table")
        if problem:
            return "source", problem
        try:
            (target,) = targets_for([source], new.target)
        except RefError as exc:
            return "target", str(exc)
        problem = table_name_problem(target.name, "Target table")
        if problem:
            return "target", problem
        home = getattr(self.pitr, "region", None)
        return canonical(source, home), canonical(target, home)

    # -- decisions --------------------------------------------------------------------------
    def approve(self, restore_id: str, user: str) -> Outcome:
        with restore_context(restore_id):
            outcome = self._decide(restore_id, user, approve=True)
            if outcome.ok and outcome.request and outcome.request.batch_id:
                self.batches.follow(outcome.request)  # every table starts, or none
            elif outcome.ok and outcome.request and outcome.request.state == State.APPROVED:
                self.start(restore_id)
            return outcome

    def deny(self, restore_id: str, user: str) -> Outcome:
        with restore_context(restore_id):
            outcome = self._decide(restore_id, user, approve=False)
            if outcome.ok and outcome.request and outcome.request.batch_id:
                self.batches.follow(outcome.request)
            return outcome

    def _decide(self, restore_id: str, user: str, approve: bool) -> Outcome:
        for _ in range(CAS_ATTEMPTS):
            req = self.store.get(restore_id)
            if req is None:
                return Outcome(False, "This request no longer exists.")
            now = self.clock()
            if req.state != State.REQUESTED:
                return Outcome(False, _already(req))
            if now >= req.expires_at:
                self.expire(req)
                return Outcome(False, "This request has expired; nothing was restored.")
            check = self.policy.may_approve if approve else self.policy.may_deny
            decision = check(user, req.requester, req.source, self.members)
            if decision.allowed and req.batch_id:
                why_not = self.batches.may_decide(req, user, approve)
                decision = Decision.no(why_not) if why_not else decision
            if not decision.allowed:
                event = "approval_refused" if approve else "denial_refused"
                self.audit(event, req, user, detail=decision.reason)
                return Outcome(False, decision.reason)
            if not approve:
                new = req.advance(State.DENIED, now, decided_by=user, decided_at=now)
                withdrawn = "withdrawn by the requester" if new.withdrawn else ""
                if self.save(
                    req,
                    new,
                    announce=["card_update", "notify_requester"],
                    audit=[self.audit_entry("denied", req, user, detail=withdrawn)],
                ):
                    log.info(
                        "restore %s %s by %s", req.id, "withdrawn" if withdrawn else "denied", user
                    )
                    self.on_change()
                    return Outcome(True, "", new)
                continue
            if user in req.approvals:
                return Outcome(
                    False,
                    f"You already approved this; waiting for {req.approvals_missing} more.",
                )
            new = req.with_approval(user)
            if new.approvals_missing == 0:
                new = new.advance(State.APPROVED, now, decided_by=user, decided_at=now)
            else:
                new = replace(new, updated_at=now)
            entry = self.audit_entry(
                "approved", req, user, detail=f"{len(new.approvals)} of {new.required_approvals}"
            )
            if self.save(req, new, announce=["card_update"], audit=[entry]):
                log.info("restore %s approved by %s (%s)", req.id, user, new.state.value)
                self.on_change()
                return Outcome(True, "", new)
        return Outcome(False, "Too many people clicked at once; please try again.")

    def expire(self, req: RestoreRequest) -> bool:
        new = req.advance(State.EXPIRED, self.clock())
        with restore_context(req.id):
            announce = ["card_update", "notify_requester"]
            if self.save(req, new, announce, audit=[self.audit_entry("expired", req, None)]):
                log.info("restore %s expired undecided", req.id)
                self.on_change()
                if req.batch_id == req.id:
                    self.batches.follow(new)
                return True
        return False

    def expire_due(self) -> int:
        now = self.clock()
        expired = 0
        for req in self.store.find(states=[State.REQUESTED], limit=1000):
            if is_member(req):
                continue  # a batch table follows its leader (catch_up)
            if now >= req.expires_at and self.expire(req):
                expired += 1
        self.batches.catch_up()
        return expired

    # -- starting and tracking --------------------------------------------------------------
    def start(self, restore_id: str) -> None:
        """APPROVED -> RESTORING, then the one RestoreTableToPointInTime call; or, when the
        account already runs its 50 restores, stay APPROVED and say how many wait before."""
        with restore_context(restore_id), self._working_on(restore_id) as mine:
            if not mine:
                return
            # One slot count and claim at a time in this process. Across replicas two may
            # still take the last slot; AWS then says LimitExceeded and it is queued again.
            with self._slots_lock:
                req = self.store.get(restore_id)
                if req is None or req.state != State.APPROVED:
                    return
                now = self.clock()
                ahead = self._queue_ahead(req)
                if ahead is not None:
                    self._mark_queued(req, ahead)
                    return
                claimed = self.store.save(
                    req,
                    req.advance(
                        State.RESTORING,
                        now,
                        restore_called_at=now,
                        lease_owner=self.owner,
                        lease_until=now + self._lease(),
                    ),
                )
            if claimed is None:
                return  # another thread or replica started it
            if claimed.kind == PERIOD_CHANGE:
                self._change_period(claimed)
                return
            self._call_restore(claimed)

    def _queue_ahead(self, req: RestoreRequest) -> int | None:
        """None if `req` may start now, else how many approved restores of its account wait
        before it (oldest approval first). Only restores count (not PITR period changes)."""
        if req.kind != RESTORE:
            return None
        in_flight = [
            r for r in self.store.find(states=list(IN_FLIGHT), limit=5000) if r.kind == RESTORE
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
        new = replace(req, queued_ahead=ahead, updated_at=self.clock())
        if error is not None:
            new = replace(new, error=error)
        audit = [self.audit_entry("restore_queued", req, None, detail=f"{ahead} ahead")]
        if self.save(req, new, ["queued", "card_update"], audit=audit if first else []):
            self.on_change()

    def _requeue(self, req: RestoreRequest, error: str) -> None:
        """AWS refused the start for its limit on concurrent restores: wait for a slot."""
        try:
            new = req.advance(
                State.APPROVED,
                self.clock(),
                restore_called_at=None,
                lease_owner=None,
                lease_until=None,
                error_streak=0,
            )
        except InvalidTransition:
            return
        saved = self.store.save(req, new)
        if saved is not None:
            log.info("restore %s: AWS limit reached, queued again", req.id)
            self._mark_queued(saved, self._queue_ahead(saved) or 0, error)

    def _call_restore(self, req: RestoreRequest) -> None:
        try:
            # In another account the call runs under its own attributed session (pitr.py).
            attribution = (
                {"restore_id": req.id, "approver": req.decided_by} if account_of(req.source) else {}
            )
            info = self.pitr.restore(
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
            result = self.pitr.enable_pitr(req.source, req.recovery_days)
        except AwsError as exc:
            if exc.retryable:
                self._save_retry(req, exc.message)
            else:
                self.fail(req, exc.message)
            return
        now = self.clock()
        new = req.advance(
            State.ACTIVE,
            now,
            finished_at=now,
            recovery_days=result.recovery_days or req.recovery_days,
            lease_owner=None,
            lease_until=None,
        )
        detail = f"recovery period {req.previous_days} -> {new.recovery_days} days"
        if self.save(
            req,
            new,
            announce=["period_changed", "card_update"],
            audit=[self.audit_entry("pitr_period_changed", req, req.decided_by, detail=detail)],
        ):
            log.info("request %s: %s", req.id, detail)
            self.on_change()

    def _target_taken(self, req: RestoreRequest, exc: AwsError) -> None:
        """The restore call met a table of the target's name. botocore retries the call after a
        500 or a timeout, and an earlier crash may have hit after the call: either way the
        table may be our own restore, already running. Adopt it then; fail only on a foreign one.
        A second restore can't start meanwhile: AWS refuses a second table of that name."""
        try:
            existing = self.pitr.table(req.target)
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
        for _ in range(CAS_ATTEMPTS):
            if req.table_arn is not None:
                return  # somebody else recorded it already
            now = self.clock()
            new = replace(
                req,
                table_arn=info.arn or f"arn:unknown:{info.name}",
                target_status=info.status,
                error_streak=0,
                queued_ahead=None,
                updated_at=now,
                **self._schedule(req, now),
            )
            # A queued card said "queued: N ahead"; it now says the restore runs.
            announce = ["started"] + (["card_update"] if req.queued_ahead is not None else [])
            entry = self.audit_entry("restore_started", req, None, detail=req.target)
            if self.save(req, new, announce=announce, audit=[entry]):
                self.on_change()
                return
            fresh = self.store.get(req.id)
            if fresh is None or fresh.state != State.RESTORING:
                return
            req = fresh

    def track(self) -> int:
        """One tracker tick: expire, start what was approved, poll the restores that are due.

        Each restore carries its own next check time (bot/polling.py); the store hands out
        the due ones and says when the next one falls due, which is when the tracker wakes.
        """
        self.expire_due()

        def advance(req: RestoreRequest) -> int:
            if req.state == State.APPROVED:
                self.start(req.id)
                return 0
            return self.poll(req.id)

        # A few polls at a time: with 50 restores in flight, a one-by-one walk would add
        # seconds to the notice of the last ones, for no saving in calls.
        due, _ = self.store.due(self.clock(), self.owner)
        polled = sum(self._poll_pool.map(advance, due))
        _, self.next_due = self.store.due(self.clock(), self.owner, limit=0)
        return polled

    def poll(self, restore_id: str) -> int:
        with restore_context(restore_id), self._working_on(restore_id) as mine:
            if not mine:
                return 0
            req = self.store.get(restore_id)
            if req is None or req.state != State.RESTORING:
                return 0
            now = self.clock()
            leased = (
                req.lease_owner not in (None, self.owner)
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
                info = self.pitr.table(req.target)
            except AwsError as exc:
                self._save_retry(req, exc.message, fatal=not exc.retryable)
                return 1
            self._apply(req, info, now)
            return 1

    def _resume_start(self, req: RestoreRequest) -> None:
        """RESTORING without a recorded call: a crash hit between claim and call."""
        try:
            existing = self.pitr.table(req.target)
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
                self.store.save(req, replace(req, missing_polls=missing, updated_at=now, **lease))
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
            entry = self.audit_entry("restore_finished", req, None, detail=f"{req.target} ACTIVE")
            if self.save(req, new, announce=["done", "card_update", "aftercare"], audit=[entry]):
                self.batches.member_final(new)
                log.info("restore %s: %s is ACTIVE after %d polls", req.id, req.target, new.polls)
                self.on_change()
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
            if self.store.save(req, new, announce=announce) and announce:
                self.on_change()
            return
        self.fail(req, f"The new table `{req.target}` is {info.status} instead of ACTIVE.")

    def _save_retry(self, req: RestoreRequest, error: str, fatal: bool = False) -> None:
        streak = req.error_streak + 1
        if fatal or streak >= MAX_ERROR_STREAK:
            self.fail(req, error)
            return
        now = self.clock()
        self.store.save(
            req,
            replace(
                req,
                error_streak=streak,
                error=error,
                updated_at=now,
                lease_owner=self.owner,
                lease_until=now + self._lease(),
                next_check_at=now + timedelta(seconds=self.poll_seconds),  # errors: plain pace
            ),
        )

    def fail(self, req: RestoreRequest, error: str) -> None:
        try:
            new = req.advance(
                State.FAILED,
                self.clock(),
                error=error,
                lease_owner=None,
                lease_until=None,
                next_check_at=None,
            )
        except InvalidTransition:
            return
        entry = self.audit_entry("restore_failed", req, None, detail=error)
        if self.save(req, new, announce=["failed", "card_update"], audit=[entry]):
            log.error("restore %s failed: %s", req.id, error)
            self.on_change()
            self.batches.member_final(new)  # one table failing does not stop the others

    # -- reads ------------------------------------------------------------------------------
    def table_ref(self, text: str) -> tuple[str | None, str]:
        """A table a person typed (`orders`, `prod:orders@eu-west-1`, an ARN) as stored, or
        (None, why not): for reads such as /pitr-status."""
        if _plain(text):
            problem = table_name_problem(text)
            return (None, problem) if problem else (text, "")
        try:
            ref = parse_ref(text, self.policy.account_aliases())
        except RefError as exc:
            return None, str(exc)
        ref = canonical(ref, getattr(self.pitr, "region", None))
        decision = self.policy.place_allowed(ref.account, ref.region)
        return (str(ref), "") if decision.allowed else (None, decision.reason)

    def in_flight_from(self, source: str) -> list[RestoreRequest]:
        return self.store.find(states=[State.REQUESTED, *IN_FLIGHT], source=source)

    def save(
        self,
        old: RestoreRequest,
        new: RestoreRequest,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> RestoreRequest | None:
        """A transition with its announcements and audit entries, in one write (all or none)."""
        saved = self.store.save(old, new, announce=announce, audit=audit)
        if saved is not None:
            for entry in audit:
                self.on_event(entry.event)
        return saved

    def audit(
        self,
        event: str,
        req: RestoreRequest | None,
        actor: str | None,
        channel: str | None = None,
        table: str | None = None,
        detail: str = "",
    ) -> None:
        """An audit entry on its own: for what changes no request (a refusal, a skip)."""
        self.on_event(event)
        self.store.audit(self.audit_entry(event, req, actor, channel, table, detail))

    def audit_entry(
        self,
        event: str,
        req: RestoreRequest | None,
        actor: str | None,
        channel: str | None = None,
        table: str | None = None,
        detail: str = "",
    ) -> AuditEvent:
        return AuditEvent(
            at=self.clock(),
            event=event,
            restore_id=req.id if req else None,
            actor=actor,
            channel=channel or (req.channel if req else None),
            table=table or (req.source if req else None),
            detail=detail[:1000],
        )

    # -- helpers ----------------------------------------------------------------------------
    def _lease(self) -> timedelta:
        # Renewed at every poll; if the holder dies, another replica takes over within three.
        return timedelta(seconds=3 * self.poll_seconds)

    def _schedule(self, req: RestoreRequest, now: datetime) -> dict[str, object]:
        """The next check of `req` from its ETA, and a lease that outlives the wait for it."""
        elapsed = req.elapsed(now).total_seconds()
        delay = next_delay(etas.Eta.from_dict(req.eta), elapsed, self.limits)
        return {
            "next_check_at": now + timedelta(seconds=delay),
            "lease_owner": self.owner,
            "lease_until": now + timedelta(seconds=lease_seconds(delay, self.limits)),
        }

    def release_leases(self) -> int:
        """On shutdown: hand our restores to the other replicas now, not after the lease."""
        released = 0
        for req in self.store.find(states=[State.RESTORING], limit=1000):
            fresh = self.store.get(req.id)
            if fresh is not None and fresh.lease_owner == self.owner:
                if self.store.save(fresh, replace(fresh, lease_owner=None, lease_until=None)):
                    released += 1
        return released

    def _progress_due(self, req: RestoreRequest, now: datetime) -> bool:
        """Edit the progress reply often early, rarely later: a few edits per restore at most."""
        if req.progress_at is None:
            return True
        elapsed = req.elapsed(now).total_seconds()
        interval = min(max(elapsed / 5, self.poll_seconds), 15 * 60)
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


def _plain(text: str) -> bool:
    """A bare table name (no account, region or ARN)."""
    return ":" not in text and "@" not in text


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


def _already(req: RestoreRequest) -> str:
    who = f" by <@{req.decided_by}>" if req.decided_by else ""
    if req.kind == PERIOD_CHANGE:
        return f"This change of the recovery period was already decided{who} ({req.state.value})."
    return {
        State.APPROVED: f"This restore was already approved{who}.",
        State.RESTORING: f"This restore was already approved{who} and is running.",
        State.ACTIVE: "This restore is already done.",
        State.DENIED: (
            "This request was already withdrawn by the person who asked; nothing was restored."
            if req.withdrawn
            else f"This request was already denied{who}; nothing was restored."
        ),
        State.EXPIRED: "This request expired; nothing was restored. Ask again if needed.",
        State.CANCELLED: "This request was cancelled; nothing was restored.",
        State.FAILED: "This restore already ran and failed; see the thread.",
    }.get(req.state, f"This request is {req.state.value}.")


def _outside_window(instant: datetime, window: object) -> str:
    earliest = format_instant(window.earliest, "UTC")  # type: ignore[attr-defined]
    latest = format_instant(window.latest, "UTC")  # type: ignore[attr-defined]
    when = format_instant(instant, "UTC")
    if instant < window.earliest:  # type: ignore[attr-defined]
        return (
            f"{when} is before the restorable window ({earliest} → {latest}). "
            "PITR keeps only the recovery period; pick a later instant."
        )
    return (
        f"{when} is after the latest restorable time ({latest}); DynamoDB lags about 5 minutes. "
        "Use `latest` or an earlier instant."
    )


def _target_and_key(
    policy: Policy, target: str, overrides: dict | None
) -> Iterator[tuple[str, Decision]]:
    """The policy's limits on what a restore creates: its name and its encryption key."""
    yield "target", policy.target_allowed(target)
    key = (overrides or {}).get("sse_key")
    if key:
        yield "kms_key", policy.kms_key_allowed(str(key))
