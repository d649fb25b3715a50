"""Several tables restored to one instant: the common window and the start queue. Pure.

Tables restored together must come back to the *same* instant or their data disagrees, so the
instant must lie inside every table's restorable window, and `latest` means the latest instant
common to all, resolved once and used for every table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.period_change import RESTORE
from bot.restores import RestoreRequest, State, Window
from bot.tableref import account_of

# DynamoDB runs at most 50 restores at once per account; more are queued by the bot.
MAX_RESTORES_PER_ACCOUNT = 50
# After AWS says LimitExceededException, wait at most this long before asking again.
MAX_LIMIT_BACKOFF_SECONDS = 300


@dataclass(frozen=True)
class SlotMove:
    """A transition that takes (+1) or frees (-1) one of its account's restore slots."""

    account: str  # "" for the bot's own account
    restore_id: str
    delta: int


def slot_move(old: RestoreRequest, new: RestoreRequest) -> SlotMove | None:
    """The slot a transition takes or frees, if any: entering RESTORING takes one, leaving it
    (ACTIVE, FAILED, or back to the queue) frees it. The stores apply it in the same write as
    the transition, so the count can never drift from the requests, and a full account
    refuses the transition whichever replica tries it."""
    if new.kind != RESTORE:
        return None
    was, now = old.state == State.RESTORING, new.state == State.RESTORING
    if was == now:
        return None
    return SlotMove(account_of(new.source), new.id, 1 if now else -1)


def limit_backoff(attempt: int, poll_seconds: float) -> float:
    """Seconds to wait before asking AWS again after its `attempt`-th LimitExceededException
    in a row (1, 2, ...): the poll interval, doubling, up to a few minutes."""
    base = max(poll_seconds, 1.0)
    return min(base * 2 ** max(attempt - 1, 0), max(MAX_LIMIT_BACKOFF_SECONDS, base))


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
