"""A restore request and its state machine.

Pure: no Slack, no boto3. Every change of state goes through `advance`, which refuses any
transition the machine does not allow; the store then applies it as a compare-and-set on
`version`, so two racing actors can never both move the same request.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class State(StrEnum):
    REQUESTED = "REQUESTED"
    APPROVED = "APPROVED"
    RESTORING = "RESTORING"
    ACTIVE = "ACTIVE"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.REQUESTED: frozenset({State.APPROVED, State.DENIED, State.EXPIRED, State.CANCELLED}),
    State.APPROVED: frozenset({State.RESTORING, State.FAILED}),
    # RESTORING -> APPROVED: back in the queue when AWS refused the start for its limit on
    # concurrent restores; only while no restore call succeeded (see advance()).
    State.RESTORING: frozenset({State.ACTIVE, State.FAILED, State.APPROVED}),
}
FINAL: frozenset[State] = frozenset(
    {State.ACTIVE, State.DENIED, State.EXPIRED, State.CANCELLED, State.FAILED}
)
IN_FLIGHT: frozenset[State] = frozenset({State.APPROVED, State.RESTORING})

# DynamoDB's own rule for table names.
TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")


class InvalidTransition(Exception):
    """A transition the state machine does not allow (a bug or a stale copy)."""


def table_name_problem(name: str, label: str = "Table name") -> str | None:
    """Why `name` is not a valid DynamoDB table name, or None when it is."""
    if not 3 <= len(name) <= 255:
        return f"{label} must be 3 to 255 characters long."
    if not TABLE_NAME.fullmatch(name):
        return f"{label} may contain only letters, digits, `_`, `-` and `.`."
    return None


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Window:
    """The restorable window of a table with PITR on."""

    earliest: datetime
    latest: datetime

    def contains(self, instant: datetime) -> bool:
        return self.earliest <= instant <= self.latest


@dataclass(frozen=True)
class RestoreRequest:
    source: str
    target: str
    requester: str
    channel: str
    # None means "the latest restorable time", which DynamoDB resolves itself.
    restore_at: datetime | None
    created_at: datetime
    expires_at: datetime
    requester_tz: str = "UTC"
    reason: str = ""
    window: Window | None = None
    required_approvals: int = 1
    id: str = field(default_factory=new_id)
    state: State = State.REQUESTED
    version: int = 0
    approvals: tuple[str, ...] = ()
    decided_by: str | None = None
    decided_at: datetime | None = None
    card_ts: str | None = None
    progress_ts: str | None = None
    progress_at: datetime | None = None
    restore_called_at: datetime | None = None
    table_arn: str | None = None
    target_status: str | None = None
    finished_at: datetime | None = None
    item_count: int | None = None
    size_bytes: int | None = None
    error: str | None = None
    polls: int = 0
    error_streak: int = 0
    missing_polls: int = 0
    lease_owner: str | None = None
    lease_until: datetime | None = None
    updated_at: datetime | None = None
    # What the approver sees about the source, captured when the request was checked.
    source_items: int | None = None
    source_bytes: int | None = None
    source_billing: str | None = None
    source_indexes: tuple[str, ...] = ()
    source_encryption: str | None = None
    estimate: str = ""
    eta: dict | None = None  # bot.eta.Eta.to_dict(): for the card, then read again at the start
    next_check_at: datetime | None = None  # when the tracker looks at it next (bot/polling.py)
    # Restore overrides the API offers: billing_mode, exclude_indexes, sse_key.
    overrides: dict | None = None
    # APPROVED but waiting for one of the account's 50 restore slots: how many wait before it.
    queued_ahead: int | None = None
    # LimitExceededException from AWS in a row; the next try waits longer (bot/batches/model.py).
    limit_retries: int = 0
    # Several tables to one instant (bot/batches/): the leader's id (the leader's own for the
    # leader), this table's place in the request, and "the summary was queued" on the leader.
    batch_id: str | None = None
    batch_index: int = 0
    batch_done: bool = False
    batch_members: tuple[str, ...] = ()  # on the leader: every table's request id, in order
    # After ACTIVE (bot/aftercare/steps.py, bot/reminders.py); every change a compare-and-set.
    aftercare: dict | None = None  # comparison with the source, claims and fixes done
    aftercare_ts: str | None = None  # the thread reply listing the differences
    reminded_at: datetime | None = None  # the cleanup reminder was claimed (sent once)
    reminder_ts: str | None = None  # the reminder reply (later the deletion card)
    delete_state: str | None = None  # REQUESTED, APPROVED, DELETED, DENIED, REFUSED, FAILED
    delete_requested_by: str | None = None
    delete_decided_by: str | None = None
    delete_note: str | None = None  # why a deletion was refused or failed
    # "restore", or "pitr_period" for lowering a recovery period (bot/period_change.py):
    # same approval, store and outbox; `source` is the table, and nothing is restored.
    kind: str = "restore"
    recovery_days: int | None = None  # pitr_period: the period asked for
    previous_days: int | None = None  # pitr_period: the period when it was asked
    # The restored table as it was at ACTIVE (TableArn, TableId, RestoreSummary, marker tag):
    # destructive follow-ups act only on that table, never on a later one with its name.
    identity: dict | None = None
    # Break-glass (policy `break_glass`): the requester approved their own restore with this
    # reason; a review card stays open until another approver clicks Reviewed.
    break_glass_reason: str = ""
    review_ts: str | None = None
    reviewed_by: str | None = None
    review_reminded_at: datetime | None = None
    # Started by a Workflow Builder step: its run, completed (success or error) once final.
    function_execution_id: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def withdrawn(self) -> bool:
        """Denied by the person who asked: they took it back, nobody refused them."""
        return self.state == State.DENIED and self.decided_by == self.requester

    def advance(self, to: State, now: datetime, **changes: object) -> RestoreRequest:
        """A copy in state `to`; raises InvalidTransition if the machine forbids it."""
        if to not in TRANSITIONS.get(self.state, frozenset()):
            raise InvalidTransition(f"{self.id}: {self.state} -> {to} is not allowed")
        if self.state == State.RESTORING and to == State.APPROVED and self.table_arn:
            raise InvalidTransition(f"{self.id}: its restore runs; it can't be queued again")
        return replace(self, state=to, updated_at=now, **changes)  # type: ignore[arg-type]

    def with_approval(self, user: str) -> RestoreRequest:
        """A copy with `user` counted once among the approvals."""
        if user in self.approvals:
            return self
        return replace(self, approvals=(*self.approvals, user))

    @property
    def approvals_missing(self) -> int:
        return max(0, self.required_approvals - len(self.approvals))

    def elapsed(self, now: datetime) -> timedelta:
        start = self.restore_called_at or self.decided_at or self.created_at
        end = self.finished_at or now
        return end - start


def expiry(created_at: datetime, ttl_minutes: float) -> datetime:
    return created_at + timedelta(minutes=ttl_minutes)


def human_duration(delta: timedelta) -> str:
    """'1 h 05 min', '12 min 30 s', '8 s': short and unambiguous at 3 a.m."""
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def human_size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "unknown"
    size = float(size_bytes)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size_bytes} bytes"  # unreachable, keeps type checkers calm


# What a restored table does not inherit from its source (AWS documentation).
NOT_CARRIED_OVER: tuple[str, ...] = (
    "point-in-time recovery (PITR)",
    "time to live (TTL)",
    "tags",
    "DynamoDB Streams settings",
    "auto scaling policies",
    "CloudWatch alarms",
    "IAM policies",
)
