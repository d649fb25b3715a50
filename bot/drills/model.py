"""Restore drills: the drill record, its state machine and the drill schedule (pure).

A drill proves a table's backups restore: it restores the latest restorable time into a table
of its own, verifies it, records how long the restore took, deletes its table and reports one
line. `bot.drills.engine` drives it; like a restore, every step is a compare-and-set in the
store, so a double tick or a second replica never runs a step twice.

    [AWAITING_APPROVAL ->] STARTED -> RESTORING -> VERIFYING -> CLEANING -> PASSED | FAILED
    (any state before CLEANING may also end in FAILED: nothing to clean up yet)
    AWAITING_APPROVAL -> CANCELLED (denied, or not approved in time: nothing was started)

No Slack, no boto3 here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from bot.documents import dump, load
from bot.restores import InvalidTransition, human_duration, new_id

__all__ = [
    "DRILL_TABLE",
    "DRILL_TAG",
    "Drill",
    "DrillState",
    "InvalidTransition",
    "Schedule",
    "drill_name_problem",
    "drill_status_line",
    "drill_target",
    "parse_every",
    "report_line",
    "slot_drill_id",
]


class DrillState(StrEnum):
    AWAITING_APPROVAL = "AWAITING_APPROVAL"  # the policy's `require_approval`: a card is out
    STARTED = "STARTED"
    RESTORING = "RESTORING"
    VERIFYING = "VERIFYING"
    CLEANING = "CLEANING"
    PASSED = "PASSED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TRANSITIONS: dict[DrillState, frozenset[DrillState]] = {
    DrillState.AWAITING_APPROVAL: frozenset({DrillState.STARTED, DrillState.CANCELLED}),
    DrillState.STARTED: frozenset({DrillState.RESTORING, DrillState.FAILED}),
    DrillState.RESTORING: frozenset({DrillState.VERIFYING, DrillState.FAILED}),
    DrillState.VERIFYING: frozenset({DrillState.CLEANING}),
    DrillState.CLEANING: frozenset({DrillState.PASSED, DrillState.FAILED}),
}
FINAL = frozenset({DrillState.PASSED, DrillState.FAILED, DrillState.CANCELLED})
LIVE = frozenset(set(DrillState) - FINAL)

# The names drill tables get (`TABLE-drill-<yyyymmddhhmm>`): the start-up sweep only ever
# looks at tables named so.
DRILL_TABLE = re.compile(r"^(?P<source>.+)-drill-(?P<stamp>\d{12})$")
# The tag a drill table carries, valued with its drill's id: a key of its own, which restored
# tables (marked with `pitr-bot:restore-id`) never carry, so a drill's clean-up can never take
# a restore's table for its own.
DRILL_TAG = "pitr-bot:drill-id"


def drill_name_problem(name: str) -> str | None:
    """Why a restore may not be made into `name`: the drill tables' names are theirs alone."""
    if DRILL_TABLE.match(name):
        return (
            f"`{name}` is named like a restore drill's table (`TABLE-drill-<12 digits>`), and "
            "those are deleted after their drill. Choose another target name."
        )
    return None


@dataclass(frozen=True)
class Drill:
    source: str
    target: str
    channel: str
    slot: datetime  # the scheduled instant (or the moment /pitr-drill was typed)
    created_at: datetime
    requested_by: str | None = None  # None: the schedule
    id: str = field(default_factory=lambda: "d" + new_id())
    state: DrillState = DrillState.STARTED
    version: int = 0
    # `require_approval`: the card's deadline and message, and who decided (approved/denied)
    expires_at: datetime | None = None
    card_ts: str | None = None
    decided_by: str | None = None
    restore_called_at: datetime | None = None
    table_arn: str | None = None  # recorded when the restore call returns
    # Recorded at ACTIVE: TableId and creation time; cleanup deletes only this very table.
    table_id: str | None = None
    active_at: datetime | None = None
    finished_at: datetime | None = None
    source_items: int | None = None
    items: int | None = None
    sampled: int = 0  # keys read from both tables
    matched: int = 0  # of those, equal in both
    passed: bool | None = None  # the verdict, set when leaving VERIFYING
    problem: str | None = None  # why it failed (or why cleanup did not happen)
    cleanup: str | None = None  # what cleanup did, in words
    error_streak: int = 0
    missing_polls: int = 0
    lease_owner: str | None = None
    lease_until: datetime | None = None
    updated_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def advance(self, to: DrillState, now: datetime, **changes: object) -> Drill:
        """A copy in state `to`; raises InvalidTransition if the machine forbids it."""
        if to not in TRANSITIONS.get(self.state, frozenset()):
            raise InvalidTransition(f"drill {self.id}: {self.state} -> {to} is not allowed")
        return replace(self, state=to, updated_at=now, **changes)  # type: ignore[arg-type]

    @property
    def restore_duration(self) -> timedelta | None:
        """How long the restore itself took (call -> ACTIVE): the history an ETA reads."""
        if self.restore_called_at is None or self.active_at is None:
            return None
        return self.active_at - self.restore_called_at

    def leased_by_other(self, owner: str, now: datetime) -> bool:
        return (
            self.lease_owner not in (None, owner)
            and self.lease_until is not None
            and self.lease_until > now
        )

    # -- the store's JSON document ------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        return dump(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Drill:
        return load(cls, data, state=DrillState)


def drill_target(source: str, at: datetime) -> str:
    """`TABLE-drill-<yyyymmddhhmm>` (UTC)."""
    return f"{source}-drill-{at.astimezone(UTC):%Y%m%d%H%M}"


def slot_drill_id(source: str, slot: datetime) -> str:
    """The one id a scheduled slot of a table can have: claiming it is inserting it."""
    digest = hashlib.sha256(f"{source}\0{slot.isoformat()}".encode()).hexdigest()
    return "s" + digest[:12]


# -- the schedule ---------------------------------------------------------------------------
INTERVAL = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>[smhd])\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A slot missed by more than this (every replica was down) is skipped, not run late: a drill
# hours after its time would surprise people; the next slot comes anyway.
CATCH_UP = timedelta(hours=1)


@dataclass(frozen=True, eq=False)
class Schedule:
    """`every` of a drill: an interval ("7d", "12h", "30m", "10s") or a 5-field cron (UTC).

    Interval slots are aligned on the Unix epoch, so every replica computes the same ones.
    """

    text: str
    period: timedelta | None = None
    cron: CronTrigger | None = None

    def due_slot(self, now: datetime) -> datetime | None:
        """The latest slot at or before `now`, if it is still recent enough to run."""
        if self.period is not None:
            step = self.period.total_seconds()
            slot = EPOCH + timedelta(seconds=((now - EPOCH).total_seconds() // step) * step)
            return slot if now - slot < min(CATCH_UP, self.period) else None
        assert self.cron is not None
        last, nxt = None, self.cron.get_next_fire_time(None, now - CATCH_UP)
        while nxt is not None and nxt <= now:
            last = nxt
            nxt = self.cron.get_next_fire_time(nxt, nxt + timedelta(seconds=1))
        return last


def parse_every(text: str) -> Schedule:
    """Read `every`; ValueError with what is accepted."""
    match = INTERVAL.match(text)
    if match:
        seconds = int(match["n"]) * UNITS[match["unit"]]
        if seconds <= 0:
            raise ValueError(f"`every: {text}` must be longer than zero")
        return Schedule(text, period=timedelta(seconds=seconds))
    fields = text.split()
    if len(fields) == 5:
        try:
            minute, hour, day, month, weekday = fields
            cron = CronTrigger(
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=_weekdays(weekday),
                timezone=UTC,
            )
            return Schedule(text, cron=cron)
        except ValueError as exc:
            raise ValueError(f"`every: {text}` is not a valid cron expression: {exc}") from exc
    raise ValueError(
        f"`every: {text}` is neither an interval (7d, 12h, 30m, 10s) "
        "nor a cron expression of 5 fields (minute hour day month weekday, UTC)"
    )


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NUMERIC = re.compile(r"^(?P<a>\d)(?:-(?P<b>\d))?(?:/(?P<step>\d+))?$")


def _weekdays(field: str) -> str:
    """Cron's weekday numbers (0 or 7 = Sunday) as names: APScheduler 3 counts from Monday
    (its from_crontab keeps that "historical mistake"), so "1" would mean Tuesday."""
    parts = []
    for part in field.split(","):
        match = _NUMERIC.match(part)
        if not match:
            parts.append(part)  # names, "*", "*/2": the same in both
            continue
        first = int(match["a"])
        last = int(match["b"]) if match["b"] else first
        if first > 7 or last > 7 or first > last:
            raise ValueError(f"weekday {part!r} is not within 0-7")
        step = int(match["step"] or 1)
        parts += [_DAYS[day] for day in range(first, last + 1, step)]
    return ",".join(dict.fromkeys(parts))


# -- what people read ------------------------------------------------------------------------
def report_line(drill: Drill) -> str:
    """The one line a finished drill posts to its channel."""
    if drill.state == DrillState.CANCELLED:
        by = f" by <@{drill.decided_by}>" if drill.decided_by else ""
        return f":no_entry_sign: Restore drill of `{drill.source}` not run: {drill.problem}{by}"
    took = drill.restore_duration
    restored = f"restored in {human_duration(took)}" if took is not None else "not restored"
    items = "items unknown" if drill.items is None else f"{drill.items} items"
    if drill.source_items is not None and drill.items is not None:
        items += f" (source {drill.source_items})"
    sample = f", {drill.matched}/{drill.sampled} sampled keys equal" if drill.sampled else ""
    who = f" (asked by <@{drill.requested_by}>)" if drill.requested_by else ""
    if drill.state == DrillState.PASSED:
        head = f":white_check_mark: Restore drill of `{drill.source}` passed"
    else:
        head = f":x: Restore drill of `{drill.source}` FAILED"
    tail = f" — {_plain(drill.problem)}" if drill.problem else ""
    clean = f"; {_plain(drill.cleanup)}" if drill.cleanup else ""
    return f"{head}: {restored}, {items}{sample}{clean}{who}{tail}"


def _plain(text: str) -> str:
    """AWS's words as plain text in Slack (its three control characters escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def duration_range(drills: list[Drill]) -> tuple[timedelta, timedelta] | None:
    durations = [d.restore_duration for d in drills if d.restore_duration is not None]
    if not durations:
        return None
    return min(durations), max(durations)


def drill_status_line(drills: list[Drill]) -> str | None:
    """'/pitr-status' line: the last drill and the range of passed drills' restore times."""
    drills = [d for d in drills if d.state != DrillState.CANCELLED]  # never ran
    finished = [d for d in drills if d.final]
    live = [d for d in drills if not d.final]
    if not finished and not live:
        return None
    parts = []
    if live:
        if live[0].state == DrillState.AWAITING_APPROVAL:
            parts.append("a drill waits for approval")
        else:
            parts.append(f"a drill is running ({live[0].state.value})")
    if finished:
        last = max(finished, key=lambda d: d.finished_at or d.created_at)
        when = (last.finished_at or last.created_at).astimezone(UTC)
        verdict = "passed" if last.state == DrillState.PASSED else "failed"
        parts.append(f"last drill {verdict} {when:%Y-%m-%d %H:%M} UTC")
        span = duration_range([d for d in finished if d.state == DrillState.PASSED])
        if span is not None:
            low, high = (human_duration(x) for x in span)
            parts.append(f"restore took {low}" if low == high else f"restores took {low}–{high}")
    return "Drills: " + ", ".join(parts) + "."
