"""How long a restore will take, from how long earlier ones took. Pure: no Slack, no boto3.

AWS gives no formula for restore time and advises teams to keep their own averages; this is
that average, made robust. Chosen statistic: the MEDIAN as the typical duration and
MEDIAN ± MAD (median absolute deviation) as the typical range. For well-behaved (normal-ish)
durations median ± MAD is the same central half an interquartile range gives; unlike the IQR
or a mean ± stddev it is not dragged by one freak restore in three (its breakdown point is
50 %), and it already works with two or three samples, which is what a team usually has.

Where the table has no history, restores of tables of similar size (source bytes, else items,
within a factor of 2) stand in. Where there is none either, PITR_BOT_MIN_RESTORE_MINUTES gives
a floor ("at least N min"), or there is no estimate at all.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

OWN = "own"  # earlier restores of this very table
SIMILAR = "similar"  # restores of tables of similar size
FLOOR = "floor"  # no history: only the configured minimum

HISTORY = 20  # the most recent restores that count; older ones describe an older table
SIMILAR_FACTOR = 2.0


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
    similar = [
        s.seconds for s in history if s.source != table and _similar(s, source_bytes, source_items)
    ][:HISTORY]
    if similar:
        return _from(similar, SIMILAR)
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


def _similar(sample: Sample, size_bytes: int | None, items: int | None) -> bool:
    """Same order of size: bytes within a factor of 2 (or items, when bytes are unknown)."""
    if size_bytes is not None and sample.source_bytes is not None:
        return _close(sample.source_bytes, size_bytes)
    if items is not None and sample.source_items is not None:
        return _close(sample.source_items, items)
    return False


def _close(a: int, b: int) -> bool:
    if a <= 0 or b <= 0:
        return a == b  # both empty tables: alike; one empty, one not: not
    return max(a, b) / min(a, b) <= SIMILAR_FACTOR


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
    whose = f"`{table}`" if eta.basis == OWN else "tables of similar size"
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
