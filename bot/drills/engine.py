"""The drill engine: schedule, run, verify and clean up restore drills (bot/drills/model.py).

The same shape as the restore workflow: each step reads the drill, acts, and writes the next
state with compare-and-set; a lost race is dropped, never forced. A scheduled slot is claimed
by inserting the drill under an id derived from (table, slot), so however many replicas tick,
one drill runs per slot. Each live drill is leased by the replica stepping it (renewed at
every step), so a dead replica's drill is taken over and finished by another, or by itself
after a restart. Cleanup deletes only the table this drill made: its name, its ARN, TableId
and creation time recorded at ACTIVE, and the bot's marker tag with the drill's id must match.

A drilled table may live in another account or region (`prod:orders@eu-west-1`, see
bot/places.py): the drill table is made beside it (`prod:orders-drill-…@eu-west-1`), every
call goes to that place's client (the gateway routes references), and the start-up sweep
looks in every place that has drills configured.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.drills.approval import card_of, expire_if_due
from bot.drills.aws import DrillService
from bot.drills.limits import DrillLimits, drill_limit_problem
from bot.drills.model import (
    CATCH_UP,
    DRILL_TABLE,
    LIVE,
    Drill,
    DrillState,
    drill_target,
    slot_drill_id,
)
from bot.pitr import AwsError
from bot.places import is_glob, parse_pattern, pattern_places, place_of
from bot.policy import DrillRule, Members, Policy, table_name_of
from bot.restores import InvalidTransition, table_name_problem, utcnow
from bot.store import AuditEvent, Store
from bot.tableref import RefError, parse_ref

log = logging.getLogger(__name__)

SAMPLE = 5  # keys read from both tables
MAX_ERROR_STREAK = 180  # consecutive failed steps before a drill gives up (as restores)
MAX_MISSING_POLLS = 3


def counts_close(source: int | None, restored: int | None) -> bool:
    """DescribeTable's counts are refreshed about every 6 hours: allow 5 % (at least 10)."""
    if source is None or restored is None:
        return False
    return abs(source - restored) <= max(10, source // 20)


@dataclass(frozen=True)
class DrillOutcome:
    ok: bool
    message: str
    drill: Drill | None = None


class DrillEngine:
    def __init__(
        self,
        store: Store,
        aws: DrillService,
        policy: Policy,
        members: Members,
        clock: Callable[[], datetime] = utcnow,
        poll_seconds: float = 10,
        owner: str = "local",
    ):
        self.store = store
        self.aws = aws
        self.policy = policy
        self.swept = threading.Event()  # the start-up sweep is done
        self.limits = DrillLimits()  # caps and the restore slots kept free (bot/settings.py)
        self.members = members
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.owner = owner
        self.on_change: Callable[[], None] = lambda: None  # the announcer's kick
        self.on_event: Callable[[str], None] = lambda event: None  # metrics
        self._handled: set[tuple[int, datetime]] = set()  # slots this replica has looked at
        self._maybe_live = True  # until a tick has seen no drill in flight
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()

    @property
    def home(self) -> str | None:
        """The bot's own region: table references never write it."""
        return self.aws.client.meta.region_name

    # -- starting -------------------------------------------------------------------------
    def refusal(self, table: str, user: str, channel: str) -> str | None:
        """Why `user` may not run a drill of `table` now; None when they may. No writes."""
        rule = self.policy.drill_for(table, self.home)
        if rule is None:
            return (
                f"`{table}` has no restore drill in the policy. Add it to the policy file under "
                f'`drills:` (for example `- tables: ["{table}"]`, `every: "7d"`, '
                "`channel: C…`) and restart the bot."
            )
        decision = self.policy.may_request(user, channel, table, self.members)
        if not decision.allowed:
            return decision.reason
        if self.store.drill_find(states=LIVE, source=table, limit=1):
            return f"A drill of `{table}` is already running; its result will be posted."
        return drill_limit_problem(self.store, self.limits, table, user)

    def start_now(self, table: str, user: str, channel: str) -> DrillOutcome:
        """/pitr-drill: a drill of `table` now, if allowed (a refusal writes nothing)."""
        problem = self.refusal(table, user, channel)
        if problem:
            return DrillOutcome(False, problem)
        rule = self.policy.drill_for(table, self.home)
        assert rule is not None
        now = self.clock()
        # One drill a table a minute (its table's name has the minute): two people typing
        # /pitr-drill at once, or a scheduled slot of this minute, make one drill, not two.
        minute = now.replace(second=0, microsecond=0)
        drill = self._new_drill(
            table, rule, now, now, requested_by=user, drill_id=slot_drill_id(table, minute)
        )
        if isinstance(drill, str):
            return DrillOutcome(False, drill)
        self._maybe_live = True
        requested = self.entry("drill_requested", drill, user, drill.target)
        if not self.store.drill_add(drill, announce=card_of(drill), audit=[requested]):
            return DrillOutcome(
                False,
                f"A drill of `{table}` was started this minute already; its result "
                "will be posted. Try again in a minute for another one.",
            )
        self.on_event("drill_requested")
        return DrillOutcome(True, f"Restore drill of `{table}` started.", drill)

    def _new_drill(
        self,
        table: str,
        rule: DrillRule,
        slot: datetime,
        now: datetime,
        requested_by: str | None = None,
        drill_id: str | None = None,
    ) -> Drill | str:
        # Beside its source (same account and region), named so the policy's target_pattern
        # (and so the IAM policy) covers it.
        try:
            source = parse_ref(table)
        except RefError as exc:
            return str(exc)
        name = self.policy.suggest_target(drill_target(source.name, slot))
        problem = table_name_problem(name, "Drill table name")
        if problem:
            return f"{problem} (`{name}`)"
        target = str(replace(source, name=name))
        extra: dict[str, Any] = {"id": drill_id} if drill_id else {}
        if rule.require_approval:  # a card first (drills/approval.py), expiring as a request
            ttl = timedelta(minutes=self.policy.for_table(table).request_ttl_minutes)
            extra |= {"state": DrillState.AWAITING_APPROVAL, "expires_at": now + ttl}
        return Drill(
            source=table,
            target=target,
            channel=rule.channel,
            slot=slot,
            created_at=now,
            updated_at=now,
            requested_by=requested_by,
            **extra,
        )

    def schedule_due(self) -> int:
        """Claim the due slot of every drilled table (once per slot, across replicas)."""
        now = self.clock()
        claimed = 0
        for index, rule in enumerate(self.policy.drills):
            slot = rule.schedule.due_slot(now)
            if slot is None or (index, slot) in self._handled:
                continue
            try:
                tables = self._tables(rule)
            except AwsError as exc:
                log.warning("drills: cannot list tables for %s: %s", rule.tables, exc.message)
                continue  # try again next tick
            for table in tables:
                if self.policy.drill_for(table, self.home) is not rule:
                    continue  # an earlier entry drills it
                if self.store.drill_find(states=LIVE, source=table, limit=1):
                    log.info("drill slot %s of %s skipped: a drill is still running", slot, table)
                    continue
                if problem := drill_limit_problem(self.store, self.limits, table):
                    log.info("drill slot %s of %s skipped: %s", slot, table, problem)
                    continue
                drill = self._new_drill(table, rule, slot, now, drill_id=slot_drill_id(table, slot))
                if isinstance(drill, str):
                    log.warning("drill of %s not scheduled: %s", table, drill)
                    continue
                entry = self.entry("drill_scheduled", drill, None, f"slot {slot.isoformat()}")
                # False: another replica claimed this slot
                if self.store.drill_add(drill, announce=card_of(drill), audit=[entry]):
                    claimed += 1
                    self.on_event("drill_scheduled")
            self._handled.add((index, slot))
        # Slots older than the catch-up window can never be due again: forget them.
        self._handled = {(i, s) for i, s in self._handled if now - s <= CATCH_UP}
        return claimed

    def _tables(self, rule: DrillRule) -> list[str]:
        """The stored references of the tables `rule` drills: its names, and what its globs
        match in their place (listed there)."""
        home = self.home
        refs: list[str] = []
        globs = []
        for entry in rule.tables:
            pattern = parse_pattern(entry)
            if not self.policy.place_allowed(pattern.account, pattern.region).allowed:
                log.warning("drills: %s is outside the policy's accounts; skipped", entry)
                continue
            if is_glob(pattern):
                globs.append(pattern)
            else:
                refs.append(place_of(pattern, home).ref(pattern.name))
        for place in pattern_places([str(g) for g in globs], home):
            here = [g for g in globs if place_of(g, home) == place]
            for name in self.aws.list_tables(account=place.account, region=place.region):
                if DRILL_TABLE.match(name):
                    continue  # never drill a drill table
                ref = place.ref(name)
                if any(fnmatch.fnmatchcase(name, g.name) for g in here) and ref not in refs:
                    refs.append(ref)
        return refs

    # -- the clock's tick -----------------------------------------------------------------
    def tick(self) -> None:
        if self.policy.drills:
            try:
                self.schedule_due()
            except Exception:  # noqa: BLE001 - scheduling must not stop running drills
                log.exception("drills: scheduling failed; next tick will retry")
        elif not self._maybe_live:
            return  # no drills in the policy and none left in flight: cost nothing
        live = self.store.drill_find(states=LIVE, limit=1000)
        self._maybe_live = bool(live)
        for drill in live:
            try:
                self.step(drill.id)
            except Exception:  # noqa: BLE001 - one bad drill must not stop the others
                log.exception("drill %s: step failed; next tick will retry", drill.id)

    def run(self, drill_id: str, timeout: float | None = None) -> None:
        """Step one drill until it is finished or waits for AWS (e.g. after /pitr-drill)."""
        for _ in range(5):
            before = self.store.drill_get(drill_id)
            if before is None or before.final:
                return
            self.step(drill_id)
            after = self.store.drill_get(drill_id)
            if after is None or after.state == before.state:
                return  # waiting (CREATING) or someone else holds it: the tick goes on

    def step(self, drill_id: str) -> None:
        with self._working_on(drill_id) as mine:
            if not mine:
                return
            drill = self.store.drill_get(drill_id)
            if drill is None or drill.final or drill.leased_by_other(self.owner, self.clock()):
                return
            if drill.state == DrillState.AWAITING_APPROVAL:
                expire_if_due(self, drill)
            elif drill.state == DrillState.STARTED:
                self._start(drill)
            elif drill.state == DrillState.RESTORING:
                self._track(drill)
            elif drill.state == DrillState.VERIFYING:
                self._verify(drill)
            elif drill.state == DrillState.CLEANING:
                self._clean(drill)

    # -- the steps -------------------------------------------------------------------------
    def _start(self, drill: Drill) -> None:
        now = self.clock()
        claimed = self.store.drill_save(
            drill,
            drill.advance(DrillState.RESTORING, now, restore_called_at=now, **self._lease()),
            audit=[self.entry("drill_started", drill, None, drill.target)],
        )
        if claimed is None:
            return
        self.on_event("drill_started")
        self._call_restore(claimed)

    def _call_restore(self, drill: Drill) -> None:
        try:
            # The latest restorable time. In another account, under a session named for the
            # drill (and whoever asked for it), so that account's CloudTrail shows it.
            info = self.aws.restore(
                drill.source,
                drill.target,
                None,
                restore_id=drill.id,
                approver=drill.requested_by,
            )
        except AwsError as exc:
            if exc.retryable:
                self._retry(drill, exc.message)
            else:
                self._fail(drill, exc.message)
            return
        self._save(drill, table_arn=info.arn or f"arn:unknown:{info.name}")

    def _track(self, drill: Drill) -> None:
        try:
            desc = self.aws.describe(drill.target)
        except AwsError as exc:
            self._retry(drill, exc.message, fatal=not exc.retryable)
            return
        if drill.table_arn is None:
            # Killed between the claim and the restore call's answer: adopt or call again.
            if desc is None:
                self._call_restore(drill)
            elif _restored_from(desc, drill.source):
                self._save(drill, table_arn=desc.get("TableArn"))
            else:
                self._fail(drill, f"`{drill.target}` exists but is not this drill's; untouched.")
            return
        if desc is None:
            missing = drill.missing_polls + 1
            if missing >= MAX_MISSING_POLLS:
                self._fail(drill, f"The drill table `{drill.target}` disappeared while restoring.")
            else:
                self._save(drill, missing_polls=missing)
            return
        if desc.get("TableArn") != drill.table_arn:
            self._fail(drill, f"`{drill.target}` is not the table this drill created; untouched.")
            return
        status = desc.get("TableStatus")
        if status in {"CREATING", "UPDATING"}:
            self._save(drill, missing_polls=0, error_streak=0)
            return
        if status != "ACTIVE":
            self._fail(drill, f"The drill table `{drill.target}` is {status} instead of ACTIVE.")
            return
        try:
            self.aws.mark(drill.table_arn, drill.target, drill.id)  # ours, for the cleanup
        except AwsError as exc:
            self._retry(drill, f"could not tag the drill table: {exc.message}", not exc.retryable)
            return
        now = self.clock()
        new = drill.advance(
            DrillState.VERIFYING,
            now,
            active_at=now,
            table_id=_identity(desc),
            items=desc.get("ItemCount"),
            error_streak=0,
            **self._lease(),
        )
        entry = self.entry("drill_restored", drill, None, f"{drill.target} ACTIVE")
        if self.store.drill_save(drill, new, audit=[entry]):
            self.on_event("drill_restored")

    def _verify(self, drill: Drill) -> None:
        try:
            verdict = self._check(drill)
        except AwsError as exc:
            if exc.retryable and drill.error_streak + 1 < MAX_ERROR_STREAK:
                self._save(drill, error_streak=drill.error_streak + 1, problem=exc.message)
                return
            verdict = {"passed": False, "problem": f"could not verify: {exc.message}"}
        new = drill.advance(DrillState.CLEANING, self.clock(), error_streak=0, **verdict)
        new = replace(new, **self._lease())
        outcome = "verified" if verdict["passed"] else f"not verified: {verdict['problem']}"
        entry = self.entry("drill_verified", drill, None, outcome)
        if self.store.drill_save(drill, new, audit=[entry]):
            self.on_event("drill_verified")

    def _check(self, drill: Drill) -> dict[str, Any]:
        """ACTIVE, item count close to the source's, sampled keys equal in both tables."""
        target = self.aws.describe(drill.target)
        source = self.aws.describe(drill.source)
        if target is None or target.get("TableStatus") != "ACTIVE":
            return {"passed": False, "problem": f"`{drill.target}` is not ACTIVE any more"}
        if source is None:
            return {"passed": False, "problem": f"the source `{drill.source}` is gone"}
        found = {"items": target.get("ItemCount"), "source_items": source.get("ItemCount")}
        keys = [k["AttributeName"] for k in source.get("KeySchema", [])]
        sampled = matched = 0
        for item in self.aws.sample(drill.target, SAMPLE):
            sampled += 1
            key = {k: item[k] for k in keys if k in item}
            if len(key) == len(keys) and self.aws.get(drill.source, key) == item:
                matched += 1
        found |= {"sampled": sampled, "matched": matched}
        if not counts_close(found["source_items"], found["items"]):
            return found | {
                "passed": False,
                "problem": f"item count {found['items']} is far from the source's "
                f"{found['source_items']}",
            }
        if matched < sampled:
            return found | {
                "passed": False,
                "problem": f"{sampled - matched} of {sampled} sampled items differ from the source",
            }
        return found | {"passed": True, "problem": None}

    def _clean(self, drill: Drill) -> None:
        """Delete the drill table, only if it is provably this drill's."""
        try:
            desc = self.aws.describe(drill.target)
            if desc is None:
                self._finish(drill, "drill table already gone")
                return
            if desc.get("TableStatus") == "DELETING":
                self._finish(drill, "drill table deleted")
                return
            ours = (
                desc.get("TableArn") == drill.table_arn
                and _identity(desc) == drill.table_id
                and self.aws.marker(str(desc.get("TableArn")), drill.target) == drill.id
            )
            if not ours:
                self._finish(drill, f"`{drill.target}` was NOT deleted: it is not this drill's")
                return
            self.aws.delete(drill.target)
        except AwsError as exc:
            if exc.retryable and drill.error_streak + 1 < MAX_ERROR_STREAK:
                self._save(drill, error_streak=drill.error_streak + 1, cleanup=exc.message)
                return
            self._finish(drill, f"could not delete `{drill.target}`: {exc.message}")
            return
        self._finish(drill, "drill table deleted")

    def _finish(self, drill: Drill, cleanup: str) -> None:
        clean = cleanup in {"drill table deleted", "drill table already gone"}
        passed = bool(drill.passed) and clean
        to = DrillState.PASSED if passed else DrillState.FAILED
        new = drill.advance(
            to,
            self.clock(),
            finished_at=self.clock(),
            cleanup=cleanup,
            problem=drill.problem or (None if clean else cleanup),
            lease_owner=None,
            lease_until=None,
        )
        event = "drill_passed" if passed else "drill_failed"
        entry = self.entry(event, drill, None, cleanup)
        if self.store.drill_save(drill, new, announce=["drill_report"], audit=[entry]):
            self.on_event(event)
            self.on_change()

    def _fail(self, drill: Drill, problem: str) -> None:
        """FAILED before any table of this drill's was verified: nothing of ours to delete."""
        try:
            new = drill.advance(
                DrillState.FAILED,
                self.clock(),
                finished_at=self.clock(),
                passed=False,
                problem=problem,
                lease_owner=None,
                lease_until=None,
            )
        except InvalidTransition:
            return
        entry = self.entry("drill_failed", drill, None, problem)
        if self.store.drill_save(drill, new, announce=["drill_report"], audit=[entry]):
            self.on_event("drill_failed")
            log.warning("drill %s of %s failed: %s", drill.id, drill.source, problem)
            self.on_change()

    def _retry(self, drill: Drill, error: str, fatal: bool = False) -> None:
        streak = drill.error_streak + 1
        if fatal or streak >= MAX_ERROR_STREAK:
            self._fail(drill, error)
            return
        log.warning("drill %s: %s (will retry)", drill.id, error)
        self._save(drill, error_streak=streak)

    def _save(self, drill: Drill, **changes: Any) -> Drill | None:
        return self.store.drill_save(
            drill, replace(drill, updated_at=self.clock(), **changes, **self._lease())
        )

    # -- start-up sweep ----------------------------------------------------------------------
    def sweep(self) -> int:
        """Delete drill tables left without a live drill (a crash, a lost cleanup).

        Only a table the store knows as a finished drill's: named like a drill table, with
        the drill tag naming that drill, and the very table it recorded (name, ARN, TableId and
        creation time). Anything else is left alone (an approved restore's table above all); a
        live drill's table is left to its drill.
        """
        try:
            return self._sweep()
        finally:
            self.swept.set()

    def _sweep(self) -> int:
        if not self.policy.drills:
            return 0  # no drills configured: none ran, nothing to clean (and no ListTables)
        deleted = 0
        entries = [entry for rule in self.policy.drills for entry in rule.tables]
        names: list[str] = []
        for place in pattern_places(entries, self.home):
            if not self.policy.place_allowed(place.account, place.region).allowed:
                continue
            try:
                found = self.aws.list_tables(account=place.account, region=place.region)
            except AwsError as exc:
                log.warning("drills: start-up sweep of %s skipped: %s", place, exc.message)
                continue
            names += [place.ref(n) for n in found if DRILL_TABLE.match(n)]
        for name in names:
            try:
                desc = self.aws.describe(name)
                if desc is None or desc.get("TableStatus") != "ACTIVE":
                    continue  # CREATING has no tag yet; DELETING is on its way out
                drill_id = self.aws.marker(str(desc.get("TableArn")), name)
                if drill_id is None:
                    continue  # not the bot's
                drill = self.store.drill_get(drill_id)
                if drill is None or not drill.final or not _recorded(drill, name, desc):
                    continue  # not a known drill's table, or its drill will clean it up
                self.aws.delete(name)
            except AwsError as exc:
                log.warning("drills: could not sweep %s: %s", name, exc.message)
                continue
            deleted += 1
            self.store.audit(
                AuditEvent(self.clock(), "drill_table_swept", drill_id, None, None, name)
            )
            log.info("drills: deleted leftover drill table %s (drill %s)", name, drill_id)
        return deleted

    # -- helpers -------------------------------------------------------------------------------
    def _lease(self) -> dict[str, Any]:
        # Renewed at every step; if the holder dies, another replica takes over within three.
        return {
            "lease_owner": self.owner,
            "lease_until": self.clock() + timedelta(seconds=3 * self.poll_seconds),
        }

    def release_leases(self) -> None:
        for drill in self.store.drill_find(states=LIVE, limit=1000):
            if drill.lease_owner == self.owner:
                self.store.drill_save(drill, replace(drill, lease_owner=None, lease_until=None))

    def entry(self, event: str, drill: Drill, actor: str | None, detail: str = "") -> AuditEvent:
        """An audit entry written with the transition it records (drill_add / drill_save), so
        a crash keeps both or neither and a reader who sees the state sees its entry."""
        return AuditEvent(self.clock(), event, drill.id, actor, drill.channel, drill.source, detail)

    @contextmanager
    def _working_on(self, drill_id: str) -> Iterator[bool]:
        with self._busy_lock:
            mine = drill_id not in self._busy
            self._busy.add(drill_id)
        try:
            yield mine
        finally:
            if mine:
                with self._busy_lock:
                    self._busy.discard(drill_id)


def _identity(desc: dict[str, Any]) -> str:
    """Which table this is, beyond its name (a table re-created under the same name has the
    same ARN): its TableId and creation time. Simulators without TableId still differ in time.
    """
    created = desc.get("CreationDateTime")
    if isinstance(created, datetime):
        created = created.timestamp()
    try:
        stamp = f"{float(created):.3f}"
    except (TypeError, ValueError):
        stamp = str(created)
    return f"{desc.get('TableId') or '-'}@{stamp}"


def _recorded(drill: Drill, name: str, desc: dict[str, Any]) -> bool:
    """`desc` is the very table `drill` made, as the store recorded it."""
    return (
        drill.target == name
        and drill.table_arn == desc.get("TableArn")
        and drill.table_id == _identity(desc)
    )


def _restored_from(desc: dict[str, Any], source: str) -> bool:
    arn = str(desc.get("RestoreSummary", {}).get("SourceTableArn") or "")
    return arn.endswith(f":table/{table_name_of(source)}")
