"""Several tables restored to one instant: the common window and the start queue. Pure.

Tables restored together must come back to the *same* instant or their data disagrees, so the
instant must lie inside every table's restorable window, and `latest` means the latest instant
common to all, resolved once and used for every table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.restores import Window

# DynamoDB runs at most 50 restores at once per account; more are queued by the bot.
MAX_RESTORES_PER_ACCOUNT = 50


@dataclass(frozen=True)
class Common:
    """The window every table shares, or the reason there is none."""

    window: Window | None
    reason: str = ""


def common_window(windows: Mapping[str, Window]) -> Common:
    """Intersect the tables' windows; name the table that makes it empty."""
    if not windows:
        return Common(None, "No tables.")
    latest_start = max(windows.items(), key=lambda kv: kv[1].earliest)
    earliest_end = min(windows.items(), key=lambda kv: kv[1].latest)
    if latest_start[1].earliest > earliest_end[1].latest:
        return Common(
            None,
            f"The tables have no restorable instant in common: `{latest_start[0]}` can only be "
            f"restored from {_utc(latest_start[1].earliest)}, `{earliest_end[0]}` only up to "
            f"{_utc(earliest_end[1].latest)}.",
        )
    return Common(Window(latest_start[1].earliest, earliest_end[1].latest))


def outside_reason(instant: datetime, windows: Mapping[str, Window]) -> str | None:
    """Why `instant` cannot be used for all tables (naming the first table that refuses it)."""
    for name, window in windows.items():
        if instant < window.earliest:
            return (
                f"{_utc(instant)} is before the restorable window of `{name}` (it starts "
                f"{_utc(window.earliest)}). All tables must be restored to the same instant; "
                "pick a later one."
            )
        if instant > window.latest:
            return (
                f"{_utc(instant)} is after the latest restorable time of `{name}` "
                f"({_utc(window.latest)}). Use `latest` or an earlier instant."
            )
    return None


def queue_positions(
    waiting: Iterable[tuple[str, str]], running_per_account: Mapping[str, int]
) -> dict[str, int | None]:
    """For each (restore key, account) waiting, in order: None if it may start now, else how
    many queued restores of its account are ahead of it ("queued: 3 ahead").

    Each account has MAX_RESTORES_PER_ACCOUNT slots; those already running use them up.
    """
    free = {a: MAX_RESTORES_PER_ACCOUNT - n for a, n in running_per_account.items()}
    ahead: dict[str, int | None] = {}
    queued: dict[str, int] = {}
    for key, account in waiting:
        slots = free.get(account, MAX_RESTORES_PER_ACCOUNT)
        if slots > 0:
            free[account] = slots - 1
            ahead[key] = None
        else:
            ahead[key] = queued.get(account, 0)
            queued[account] = ahead[key] + 1
    return ahead


def _utc(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%d %H:%M:%S UTC")
