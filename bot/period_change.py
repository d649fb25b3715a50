"""Changing a table's PITR recovery period: which changes need a second person.

Pure: no Slack, no boto3. Enabling PITR or raising its recovery period only adds protection,
so it is one step. Lowering the period throws away restore history for good, so it becomes a
request of kind `PERIOD_CHANGE` on the same record, state machine, approval card and outbox
as a restore (see bot/workflow.py): four-eyes, expiry and exactly-once come with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

# RestoreRequest.kind values.
RESTORE = "restore"
PERIOD_CHANGE = "pitr_period"

DEFAULT_DAYS = 35  # DynamoDB's recovery period when none is given


class Change(StrEnum):
    ENABLE = "enable"  # PITR is off: turning it on only adds protection
    RAISE = "raise"  # a longer period keeps what exists and reaches further back later
    SAME = "same"  # nothing would change: say so, announce nothing
    SHRINK = "shrink"  # restore history is lost: needs approval


def classify(enabled: bool, current_days: int | None, wanted_days: int | None) -> Change:
    """What `/pitr-enable TABLE [DAYS]` would do to a table in this state."""
    if not enabled:
        return Change.ENABLE
    current = current_days or DEFAULT_DAYS
    wanted = wanted_days or DEFAULT_DAYS
    if wanted > current:
        return Change.RAISE
    if wanted == current:
        return Change.SAME
    return Change.SHRINK


def history_lost_before(now: datetime, days: int) -> datetime:
    """Restore history older than this is gone once the period is `days` (as of `now`)."""
    return now - timedelta(days=days)
