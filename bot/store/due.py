"""When an in-flight request is next due for a check: shared by both stores."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime


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


def split_due(
    rows: Iterable[tuple[str, datetime | None]], now: datetime, limit: int
) -> tuple[list[str], datetime | None]:
    """(id, due at) rows -> up to `limit` ids due now, most overdue first, and when the
    first of the rest falls due (`now` if one is already due, None if there is none)."""
    ordered = sorted(rows, key=lambda row: (row[1] is not None, row[1] or now))
    due = [rid for rid, at in ordered[:limit] if at is None or at <= now]
    rest = ordered[len(due) :]
    return due, (rest[0][1] or now) if rest else None
