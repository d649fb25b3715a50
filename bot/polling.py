"""When to look at a restore next, from what its ETA says. Pure: no Slack, no boto3.

An estimate that carries its samples (the durations it stands on: the table's own restores,
or the account's other tables' fitted by size) is polled as bot/poll_plan.py plans it: the
least expected notice lag within boto3's waiter's calls (issue 22). What follows is the
schedule of issue 15, kept for estimates stored without samples by earlier versions.

Each DescribeTable is worth most where the restore is likely to end. With an estimate:

- before the typical range: a third of the remaining distance to it each time (between the
  min and max interval), so a 40-minute restore costs about one call a minute early on and
  arrives at the range polling densely;
- inside the typical range (median ± MAD), widened by half a MAD on each side: the minimum
  interval, where most restores end;
- after it, up to the longest restore known: back off gently (a third of the time past the
  widened range), since the end gets less likely per second the later it is;
- past the longest known duration: the plain PITR_BOT_POLL_SECONDS, for as long as it takes
  (never give up).

Without an estimate: every PITR_BOT_POLL_SECONDS, as before; with only the configured minimum
(PITR_BOT_MIN_RESTORE_MINUTES) sparse until it, then every PITR_BOT_POLL_SECONDS.

Why these numbers: bench/eta_polling.py replays the shipped tracker (store, wake-ups, this
function) and botocore's own waiter on a virtual clock over the same drawn restores. A third
(APPROACH) keeps early checks sparse yet arrives at the dense zone in time; widening that zone
by half a MAD (MARGIN) brought the notice lag median from 0.19–0.42x the waiter's to
0.14–0.16x, at 0.59–0.72x its DescribeTable calls, with 5 earlier restores varying by 5 %
(docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import poll_plan
from bot.eta import BORROWED, FLOOR, Eta

APPROACH = 3  # each wait is this fraction of the distance to (or past) the typical range
# The dense zone reaches half a MAD beyond the typical range on both sides: with five earlier
# restores the range (median ± MAD) holds only about half of the ends, and an end just outside
# it, met by backing-off polls, cost most of the notice lag (bench/eta_polling.py).
MARGIN = 0.5
# With two or three earlier restores the MAD can be near 0 by chance (two alike durations):
# the dense zone is never narrower than if the MAD were 2 % of the typical duration.
MIN_MAD = 0.02


@dataclass(frozen=True)
class PollLimits:
    poll_seconds: float = 10  # PITR_BOT_POLL_SECONDS: no history, and past the longest known
    min_seconds: float = 2  # PITR_BOT_POLL_MIN_SECONDS: densest, around the expected end
    max_seconds: float = 60  # PITR_BOT_POLL_MAX_SECONDS: sparsest, while the end is unlikely
    budget_seconds: float = 20  # PITR_BOT_POLL_BUDGET_SECONDS: the waiter's Delay (the budget)


def next_delay(eta: Eta | None, elapsed: float, limits: PollLimits) -> float:
    """Seconds until the next DescribeTable of a restore `elapsed` seconds in."""
    # Around the expected end never poll less often than without an estimate.
    lo = min(limits.min_seconds, limits.poll_seconds)
    hi = max(lo, limits.max_seconds)

    def clamp(x: float) -> float:
        return min(max(x, lo), hi)

    if eta is None:
        return limits.poll_seconds
    if eta.samples and eta.basis != FLOOR:
        # The planned instants: expected lag smallest within the waiter's calls (issue 22).
        # A borrowed estimate places the end too roughly for a dense zone (bot/poll_plan.py).
        plan_limits = poll_plan.PlanLimits(
            limits.poll_seconds, lo, hi, limits.budget_seconds, zone=eta.basis != BORROWED
        )
        return poll_plan.next_check(elapsed, poll_plan.plan(eta.samples, plan_limits), plan_limits)
    # An estimate stored by an earlier version (no samples): the schedule of issue 15.
    if eta.basis == FLOOR:
        if elapsed < eta.typical:
            return clamp((eta.typical - elapsed) / APPROACH)
        return limits.poll_seconds
    mad = max(eta.high - eta.typical, MIN_MAD * eta.typical)
    low = max(0.0, eta.typical - (1 + MARGIN) * mad)
    high = eta.typical + (1 + MARGIN) * mad
    if elapsed < low:
        return clamp((low - elapsed) / APPROACH)
    if elapsed <= high:
        return lo
    if elapsed <= max(eta.longest, high):
        return clamp((elapsed - high) / APPROACH)
    return limits.poll_seconds


def lease_seconds(delay: float, limits: PollLimits) -> float:
    """How long a tracker holds a restore: past its next poll, plus three ordinary polls.

    A lease shorter than the gap to the next poll would let another replica take a restore
    whose holder is alive and merely waiting (60 s gaps against a 30 s lease, say).
    """
    return delay + 3 * limits.poll_seconds
