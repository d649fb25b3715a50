"""When an in-flight request is next due for a check: shared by both stores.

Both stores keep a request's scheduling fields (`next_check_at`, `lease_owner`,
`lease_until`) beside its document, written in the same compare-and-set, so the due scan
reads them without parsing a document; SQLite also indexes them, so a tick reads only what
is due (plus the first of the rest), not every restore in flight.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.restores import RestoreRequest
from bot.tableref import account_of

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
# The stored check time of a request never checked: due at once, and first in line.
NEVER = -1


def micros(at: datetime | None) -> int | None:
    """An instant as whole microseconds since the epoch (exact, unlike a float timestamp)."""
    return None if at is None else (at - _EPOCH) // _MICRO


def from_micros(value: int | None) -> datetime | None:
    return None if value is None or value == NEVER else _EPOCH + value * _MICRO


SCHEDULE_ATTRIBUTES = ("account", "check_at", "lease_owner", "lease_until")


def schedule_fields(req: RestoreRequest) -> dict[str, Any]:
    """The columns (SQLite) or attributes (DynamoDB) the due scan and the start queue read."""
    check = micros(req.next_check_at)
    return {
        "account": account_of(req.source),
        "check_at": NEVER if check is None else check,
        "lease_owner": req.lease_owner,
        "lease_until": micros(req.lease_until),
    }


def check_due_at(
    next_check_at: datetime | None,
    lease_owner: str | None,
    lease_until: datetime | None,
    owner: str,
) -> datetime | None:
    """When `owner` should next look at an in-flight request (None: now).

    A request leased by another replica is not ours to check before its lease runs out.
    """
    at = next_check_at
    if lease_owner not in (None, owner) and lease_until is not None:
        at = lease_until if at is None else max(at, lease_until)
    return at


def due_of(row: tuple[Any, int | None, str | None, int | None], owner: str) -> datetime | None:
    """check_due_at for a stored (id, check_at, lease_owner, lease_until) row."""
    return check_due_at(from_micros(row[1]), row[2], from_micros(row[3]), owner)


def split_due(
    rows: Iterable[tuple[str, datetime | None]], now: datetime, limit: int
) -> tuple[list[str], datetime | None]:
    """(id, due at) rows -> up to `limit` ids due now, most overdue first, and when the
    first of the rest falls due (`now` if one is already due, None if there is none)."""
    ordered = sorted(rows, key=lambda row: (row[1] is not None, row[1] or now))
    due = [rid for rid, at in ordered[:limit] if at is None or at <= now]
    rest = ordered[len(due) :]
    return due, (rest[0][1] or now) if rest else None
