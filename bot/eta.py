"""How long a restore will take, from how long earlier ones took. Pure: no Slack, no boto3.

AWS gives no formula for restore time and advises teams to keep their own averages; this is
that average, made robust. Chosen statistic: the MEDIAN as the typical duration and
MEDIAN ± MAD (median absolute deviation) as the typical range. For well-behaved (normal-ish)
durations median ± MAD is the same central half an interquartile range gives; unlike the IQR
or a mean ± stddev it is not dragged by one freak restore in three (its breakdown point is
50 %), and it already works with two or three samples, which is what a team usually has.

Where the table has no history, the account's other restores stand in, BORROWED (issue 22):
restore time grows with table size, so log(duration) is fitted to log(source size) by least
squares over them (bytes, else items; the slope kept within 0..MAX_SLOPE, and 0 when their
sizes are alike), and their durations, each moved along the fit to this table's size, are the
estimate's samples. The card says it is borrowed and from how many restores. Where there is
none either, PITR_BOT_MIN_RESTORE_MINUTES gives a floor ("at least N min"), or no estimate.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.tableref import account_of

OWN = "own"  # earlier restores of this very table
SIMILAR = "similar"  # restores of tables of similar size (estimates stored by earlier versions)
BORROWED = "borrowed"  # the account's other tables' restores, fitted by size
FLOOR = "floor"  # no history: only the configured minimum

HISTORY = 20  # the most recent restores that count; older ones describe an older table
BORROW_MIN = 3  # fewer restores of other tables than this: no borrowed estimate
BORROW_HISTORY = 50  # the most recent restores of other tables that count
MAX_SLOPE = 1.5  # duration grows at most as size^1.5 in the fit (a wild fit on few points)
ALIKE = math.log(2)  # sizes within a factor of 2 of each other: no slope, the plain durations


@dataclass(frozen=True)
class Sample:
    """One finished restore: which table, how big its source was, how long it took."""

    source: str
    seconds: float
    source_bytes: int | None = None
    source_items: int | None = None


@dataclass(frozen=True)
class Eta:
    typical: float  # seconds, the median
    low: float  # seconds: the typical range, median - MAD
    high: float  # seconds: median + MAD
    longest: float  # seconds: the longest duration among the samples used
    count: int
    basis: str  # OWN, SIMILAR, BORROWED or FLOOR
    # The durations the estimate stands on, sorted (seconds): the polling plan's distribution
    # (bot/poll_plan.py). Empty in estimates stored by earlier versions.
    samples: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": list(self.samples),
            "typical": self.typical,
            "low": self.low,
            "high": self.high,
            "longest": self.longest,
            "count": self.count,
            "basis": self.basis,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Eta | None:
        if not data:
            return None
        try:
            return cls(
                typical=float(data["typical"]),
                low=float(data["low"]),
                high=float(data["high"]),
                longest=float(data["longest"]),
                count=int(data["count"]),
                basis=str(data["basis"]),
                samples=tuple(float(x) for x in data.get("samples") or ()),
            )
        except (KeyError, TypeError, ValueError):
            return None  # written by another version: no estimate rather than a crash


def estimate(
    table: str,
    history: list[Sample],
    source_bytes: int | None = None,
    source_items: int | None = None,
    min_minutes: float = 0,
) -> Eta | None:
    """The ETA of a restore of `table`; `history` holds finished restores, newest first."""
    own = [s.seconds for s in history if s.source == table][:HISTORY]
    if own:
        return _from(own, OWN)
    borrowed = _borrow(table, history, source_bytes, source_items)
    if borrowed is not None:
        return borrowed
    if min_minutes > 0:
        floor = min_minutes * 60
        return Eta(floor, floor, floor, floor, 0, FLOOR)
    return None


def _from(seconds: list[float], basis: str) -> Eta:
    mid = statistics.median(seconds)
    mad = statistics.median(abs(s - mid) for s in seconds)
    return Eta(
        typical=mid,
        low=max(0.0, mid - mad),
        high=mid + mad,
        longest=max(seconds),
        count=len(seconds),
        basis=basis,
        samples=tuple(sorted(seconds)),
    )


def _borrow(
    table: str, history: list[Sample], size_bytes: int | None, items: int | None
) -> Eta | None:
    """From the account's restores of other tables, fitted by size (see the module doc)."""
    use_bytes = size_bytes is not None
    size = size_bytes if use_bytes else items
    if size is None:
        return None
    account = account_of(table)
    points = []
    for s in history:
        other = s.source_bytes if use_bytes else s.source_items
        if s.source != table and account_of(s.source) == account and other is not None:
            if s.seconds > 0:
                points.append((math.log(max(other, 1)), math.log(s.seconds)))
    points = points[:BORROW_HISTORY]
    if len(points) < BORROW_MIN:
        return None
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = 0.0
    if max(xs) - min(xs) > ALIKE:
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in points) / var
        slope = min(max(slope, 0.0), MAX_SLOPE)
    at = math.log(max(size, 1))
    moved = [math.exp(y + slope * (at - x)) for x, y in points]
    return _from(moved, BORROWED)


# -- words -------------------------------------------------------------------------------------
def _minutes(seconds: float) -> int:
    return max(1, round(seconds / 60))


def _amount(seconds: float, short: bool) -> str:
    return f"{max(1, round(seconds))} s" if short else f"{_minutes(seconds)} min"


def typical_range(eta: Eta) -> str:
    """'35–50 min' (or '40 min' when the range is one value; seconds for very short ones)."""
    short = eta.high < 120
    low, high = _amount(eta.low, short), _amount(eta.high, short)
    return low if low == high else f"{low.split()[0]}–{high}"


def card_text(eta: Eta | None, table: str) -> str:
    """What the approval card says under Expected duration (nothing has started yet)."""
    if eta is None:
        return "no history"
    if eta.basis == FLOOR:
        return f"at least {_minutes(eta.typical)} min (no history; configured minimum)"
    noun = "restore" if eta.count == 1 else "restores"
    if eta.basis == BORROWED:
        return (
            f"typical {typical_range(eta)} (median {_amount(eta.typical, eta.high < 120)}; "
            f"borrowed: estimated from {eta.count} {noun} of other tables in this account, "
            "by size)"
        )
    whose = f"of `{table}`" if eta.basis == OWN else "of tables of similar size"
    return (
        f"typical {typical_range(eta)} (median {_amount(eta.typical, eta.high < 120)}, "
        f"{eta.count} earlier {noun} {whose})"
    )


def progress_text(eta: Eta | None, table: str, started: datetime, now: datetime) -> str:
    """'expected 11:20–11:45 UTC, typical 35–50 min for `orders` · 62 % of typical'."""
    if eta is None:
        return "no estimate yet (no earlier restore of this table or one of its size)"
    elapsed = (now - started).total_seconds()
    if eta.basis == FLOOR:
        end = started + timedelta(seconds=eta.typical)
        return f"expected no sooner than {_clock(end, False)} UTC (configured minimum, no history)"
    start, end = started + timedelta(seconds=eta.low), started + timedelta(seconds=eta.high)
    fine = eta.high < 600  # short restores: to the second
    span = _clock(start, fine)
    if _clock(end, fine) != span:
        span += f"–{_clock(end, fine)}"
    names = {OWN: f"`{table}`", BORROWED: "other tables in this account (borrowed, by size)"}
    whose = names.get(eta.basis, "tables of similar size")
    share = round(100 * elapsed / eta.typical) if eta.typical > 0 else 100
    text = f"expected {span} UTC, typical {typical_range(eta)} for {whose} · {share} % of typical"
    if overdue(eta, elapsed):
        text += " · taking longer than any earlier restore of this table"
    return text


def overdue(eta: Eta | None, elapsed_seconds: float) -> bool:
    """Longer than every earlier restore of this very table (similar tables don't count)."""
    return eta is not None and eta.basis == OWN and elapsed_seconds > eta.longest


def _clock(at: datetime, seconds: bool) -> str:
    return at.strftime("%H:%M:%S" if seconds else "%H:%M")
