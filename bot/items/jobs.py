"""Getting the data back: the item job record and its state machine (pure).

One job per comparison of a restored table with its live source. It may then copy the lost items
back (after an approval) and undo that copy back (after another approval). Like a restore,
every step is a compare-and-set on `version` in the store, so a double click, a Slack retry or a
second replica never runs a step twice; the heavy data (every item read, every write's
outcome) lives in the job file (`bot.items.jobfile`) whose path the record keeps.

    COMPARING -> COMPARED -> COPY_REQUESTED -> COPYING -> COPIED
                 ^  (denied) |                             |
                 +-----------+      UNDONE <- UNDOING <- UNDO_REQUESTED
                                              (denied: back to COPIED)
    COMPARING, COPYING and UNDOING may end in FAILED (the message says why).

No Slack, no boto3 here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.documents import dump, load
from bot.restores import InvalidTransition, new_id


class JobState(StrEnum):
    COMPARING = "COMPARING"
    COMPARED = "COMPARED"
    COPY_REQUESTED = "COPY_REQUESTED"
    COPYING = "COPYING"
    COPIED = "COPIED"
    UNDO_REQUESTED = "UNDO_REQUESTED"
    UNDOING = "UNDOING"
    UNDONE = "UNDONE"
    FAILED = "FAILED"


S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.COMPARING: frozenset({S.COMPARED, S.FAILED}),
    S.COMPARED: frozenset({S.COPY_REQUESTED}),
    S.COPY_REQUESTED: frozenset({S.COPYING, S.COMPARED}),
    S.COPYING: frozenset({S.COPIED, S.FAILED}),
    S.COPIED: frozenset({S.UNDO_REQUESTED}),
    S.UNDO_REQUESTED: frozenset({S.UNDOING, S.COPIED}),
    S.UNDOING: frozenset({S.UNDONE, S.FAILED}),
}
FINAL = frozenset({S.UNDONE, S.FAILED})
# Work a process runs (and resumes after a restart): the lease says which replica runs it.
RUNNING = frozenset({S.COMPARING, S.COPYING, S.UNDOING})
# Waiting for an Approve / Deny click.
AWAITING = frozenset({S.COPY_REQUESTED, S.UNDO_REQUESTED})


@dataclass(frozen=True)
class ItemJob:
    restore_id: str
    live_table: str  # the restore's source: the production table written to
    restored_table: str  # the restore's target
    channel: str
    thread_ts: str | None  # the restore card's thread
    requested_by: str  # who clicked Compare items / typed /pitr-diff
    created_at: datetime
    job_path: str  # the on-disk job file (bot.items.jobfile)
    partition_keys: list[str] | None = None  # /pitr-diff ... keys: K1,K2
    id: str = field(default_factory=lambda: "j" + new_id())
    state: JobState = JobState.COMPARING
    version: int = 0
    updated_at: datetime | None = None
    # Which replica runs the job now, until when (replicas share the store).
    lease_owner: str | None = None
    lease_until: datetime | None = None
    # The comparison: counts, and the message edited in place with progress.
    missing: int = 0
    changed: int = 0
    added: int = 0
    unchanged: int = 0
    progress_ts: str | None = None
    progress_text: str = ""
    # The copy back: what was asked, by whom, who decided; then the counts.
    include_changed: bool = False
    # What the copy back leaves out, decided before approval: items whose TTL has passed
    # (unless include_expired) and the keys in leave_out (canonical key texts); `plan` counts
    # what it would write and leave out (bot/items/jobfile.CopyPlan), for the card.
    include_expired: bool = False
    leave_out: tuple[str, ...] = ()
    plan: dict[str, int] = field(default_factory=dict)
    ttl_attribute: str = ""
    copy_requested_by: str | None = None
    copy_decided_by: str | None = None
    copy_counts: dict[str, int] = field(default_factory=dict)
    undo_requested_by: str | None = None
    undo_decided_by: str | None = None
    undo_counts: dict[str, int] = field(default_factory=dict)
    decision_ts: str | None = None  # the current approval card (its buttons go when decided)
    # The copy back's or undo's approvals so far, and how many the live table's rule needs
    # (read when it was asked for, as a restore's are).
    approvals: tuple[str, ...] = ()
    required_approvals: int = 1
    # The live table as it was compared (bot/table_identity.py): written to only while it
    # is still that table.
    live_identity: dict | None = None
    note: str = ""  # the last refusal/denial or failure, in plain words
    # When the job files were deleted (retention over): no copy back or undo after that.
    files_removed_at: datetime | None = None
    # Item data delivered to its readers (bot/delivery.py): the places done ("dm:U1",
    # "channel:C9"), and the Slack files shared, deleted with the job's files.
    delivered: tuple[str, ...] = ()
    slack_files: tuple[str, ...] = ()

    # The export path (bot/items/export_flow.py): instant, periods, export ARNs; None for a
    # comparison with a restored table.
    export: dict | None = None
    # The Workflow Builder run waiting for this comparison (commands/compare_step.py): it is
    # completed once, from the outbox, when the comparison ends.
    function_execution_id: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def table(self) -> str:
        return self.live_table

    @property
    def to_copy(self) -> int:
        if self.plan:
            return self.plan.get("missing", 0) + self.plan.get("changed", 0)
        return self.missing + (self.changed if self.include_changed else 0)

    @property
    def approvals_missing(self) -> int:
        return max(0, self.required_approvals - len(self.approvals))

    def advance(self, to: JobState, now: datetime, **changes: object) -> ItemJob:
        """A copy in state `to`; raises InvalidTransition if the machine forbids it."""
        if to not in TRANSITIONS.get(self.state, frozenset()):
            raise InvalidTransition(f"item job {self.id}: {self.state} -> {to} is not allowed")
        return replace(self, state=to, updated_at=now, **changes)  # type: ignore[arg-type]

    def to_record(self) -> dict[str, Any]:
        return dump(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> ItemJob:
        return load(
            cls,
            data,
            state=JobState,
            approvals=tuple,
            leave_out=tuple,
            delivered=tuple,
            slack_files=tuple,
        )


@dataclass(frozen=True)
class Outcome:
    """What a step of the engine (bot/items/recovery.py) tells the person who asked."""

    ok: bool
    message: str = ""
    job: ItemJob | None = None


STALE_DECISION = (
    "This card is out of date: what it asked about was decided, and the job now waits on "
    "another question. Use the newest card in the thread."
)


def already(job: ItemJob) -> str:
    """Why a click finds nothing to do in the job's state (in plain words)."""
    return {
        JobState.COMPARING: "The comparison is still running.",
        JobState.COMPARED: "Nothing is waiting for a decision here.",
        JobState.COPY_REQUESTED: "A copy back is already waiting for approval.",
        JobState.COPYING: "The copy back was already approved and is running.",
        JobState.COPIED: "The copy back already ran.",
        JobState.UNDO_REQUESTED: "An undo is already waiting for approval.",
        JobState.UNDOING: "The undo was already approved and is running.",
        JobState.UNDONE: "The copy back was already undone.",
        JobState.FAILED: "This job failed; start a new comparison.",
    }[job.state]
