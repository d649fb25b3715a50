"""When to check a restore, planned as what it is: a budget of DescribeTable calls spent
where the restore is likely to end. Pure: no Slack, no boto3.

The problem: choose check instants t1 < t2 < ... (seconds since the restore call) so that
the notice lag (the first check at or after the end, minus the end) is small, given the
distribution of the end (the table's earlier durations), spending in expectation no more
DescribeTable calls than boto3's `table_exists` waiter would on the same restore.

- **The distribution.** The earlier durations, smoothed: a mixture of log-normal kernels, one
  per earlier restore (restore times are positive and vary by a factor, so the smoothing is
  on their logarithm). The kernel width is Silverman's rule on the log-durations, never under
  KERNEL_FLOOR (three alike durations must not make the plan bet on one second).
- **The allocation.** What is measured (and promised) is the *median* lag, not the mean. A
  median lag of x needs half the ends seen within x; the cheapest place to see an end soon is
  where the end is most likely per call spent there (the hazard, f / S: a check costs a call
  only if the restore is still running), which for restore times is late, up to the longest
  known duration. So first a **zone**: the last `share` of the smoothed mass up to the
  longest duration, checked every `gap` seconds, the smallest gap the budget allows (the
  sparsest checks before it); an end in it waits at most `gap`, the median one about
  gap x 0.5 / share, and the share (ZONE_SHARES, all over a half: five earlier restores place
  the zone only roughly) is the one making that smallest. Then what is left of the budget goes
  before the zone, as a check density proportional to the square root of the density of the
  end (the least *mean* lag: an end in a stretch checked every h seconds waits h/2 on
  average, so with a fixed number of checks the lag is least for h proportional to
  1/sqrt(f)). Every gap stays within PITR_BOT_POLL_MIN_SECONDS and PITR_BOT_POLL_MAX_SECONDS.
  bench/poll_bound.py gives the fewest calls any schedule needs for the median goal, and
  docs/performance.md the measured lag and calls against it.
- **The budget.** What boto3's waiter would spend on the same restore (botocore's DynamoDB
  `TableExists`: a call at once, then one every Delay seconds, MaxAttempts per wait(), called
  again at once after a WaiterError, as a script that must see the end does; `waiter_calls`),
  in expectation over the same smoothed distribution, as bench/eta_polling.py counts "the
  waiter's calls" (calls until the end is seen, summed over restores). The zone's gap and the
  density's scale are the smallest and the largest (bisection) whose expected calls (after
  the plan: the plain interval) stay within BUDGET_SHARE of that, both on the smoothed
  history and on it moved LATER standard errors later. Where even the sparsest plan is over
  (a history so wide that much of its weight lies past the longest restore, where the plain
  interval applies), the plan is the sparsest: a check every PITR_BOT_POLL_MAX_SECONDS.
- **Past the plan.** The plan covers the known durations, up to the longest; after its last
  instant the plain PITR_BOT_POLL_SECONDS, forever (a restore may take longer than any before).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# botocore's DynamoDB waiter model, "TableExists" (botocore/data/dynamodb/2012-08-10/
# waiters-2.json); tests/unit/test_poll_plan.py checks these against the installed botocore.
WAITER_DELAY = 20.0
WAITER_MAX_ATTEMPTS = 25
KERNEL_FLOOR = 0.03  # the smallest kernel width, on log-duration (about ±3 %)
GRID = 1.0  # seconds: the density is tabulated at this step
BISECTIONS = 30
# Spend at most this share of the waiter's expected calls, on the smoothed history and on it
# moved LATER standard errors of its mean later (five earlier restores place the next ones only
# roughly; those later than their history cross the whole dense zone and cost most). The later
# case is the margin: a flat 95 % alone left the worst of 10 seeds at 1.14-1.23x the waiter's
# calls, both together 1.06-1.09x (docs/performance.md).
BUDGET_SHARE = 1.0
LATER = 1.0
# The dense zone's candidate shares of the smoothed mass up to the longest duration: at least
# a half with a margin (the median end must fall in it), the choice made by the budget.
ZONE_SHARES = (0.6, 0.7, 0.8, 0.9)
# Without a zone (PlanLimits.zone False: a borrowed estimate, fitted on other tables, places
# the end more roughly than its samples' spread says; the zone bet on it cost the worst of 10
# seeds 1.31x the waiter's calls) the plan is sqrt(f) throughout, whose calls vary less with
# a misplaced estimate: a flat share of the waiter's is margin enough (worst seed 1.15-1.16x).
SPREAD_SHARE = 0.95
SPARSEST = 1e-6  # a density scale so small that every gap is the longest allowed


@dataclass(frozen=True)
class PlanLimits:
    poll_seconds: float = 10  # after the plan, for as long as it takes
    min_seconds: float = 2  # never two checks closer than this
    max_seconds: float = 60  # never two checks further apart than this
    waiter_delay: float = WAITER_DELAY
    waiter_max_attempts: int = WAITER_MAX_ATTEMPTS
    zone: bool = True  # False: no dense zone, sqrt(f) throughout (see SPREAD_SHARE)


def waiter_calls(t: float, delay: float = WAITER_DELAY, attempts: int = WAITER_MAX_ATTEMPTS) -> int:
    """DescribeTable calls the re-armed `table_exists` waiter has made by `t` (inclusive).

    One wait() calls at 0, delay, ..., (attempts - 1) x delay and raises after the last call
    without sleeping; the script calls wait() again at once, so a new round starts there.
    """
    if t < 0:
        return 0
    cycle = (attempts - 1) * delay
    rounds = math.floor(t / cycle) if cycle > 0 else 0
    within = t - rounds * cycle
    return rounds * attempts + min(attempts, math.floor(within / delay + 1e-9) + 1)


def plan(durations: tuple[float, ...], limits: PlanLimits) -> tuple[float, ...]:
    """Check instants (seconds since the restore call), strictly increasing, up to the longest
    earlier duration, within the waiter's expected calls. Empty without durations."""
    return _plan(tuple(sorted(d for d in durations if d > 0)), limits)


def next_check(elapsed: float, instants: tuple[float, ...], limits: PlanLimits) -> float:
    """Seconds until the next check of a restore `elapsed` seconds in: the next planned
    instant (not closer than half the minimum gap: a late tick skips one, it doesn't crowd
    two), or past the plan the plain interval, never giving up."""
    i = bisect.bisect_right(instants, elapsed + limits.min_seconds / 2)
    if i < len(instants):
        return instants[i] - elapsed
    return limits.poll_seconds


@lru_cache(maxsize=512)
def _plan(durations: tuple[float, ...], limits: PlanLimits) -> tuple[float, ...]:
    if not durations:
        return ()
    lo = min(limits.min_seconds, limits.poll_seconds)
    hi = max(lo, limits.max_seconds)
    horizon = durations[-1]
    width = _kernel_width(durations)
    root = _root_density(durations, width, horizon)
    cumulative = [0.0]  # integral of sqrt(f) at every grid point
    for value in root:
        cumulative.append(cumulative[-1] + value * GRID)
    survival = _survival(durations, width)
    waiter = _waiter_instants(horizon, limits)
    # The budget holds on the smoothed history and on it moved LATER standard errors later.
    share, errors = (BUDGET_SHARE, LATER) if limits.zone else (SPREAD_SHARE, 0.0)
    later = math.exp(errors * _log_sd(durations) / math.sqrt(len(durations)))
    cases = [survival, _survival(tuple(d * later for d in durations), width)]
    budgets = [share * _expected_calls(waiter, s, limits.waiter_delay) for s in cases]

    def build(dense_from: float, gap: float, scale: float) -> tuple[float, ...]:
        """Instants: from `dense_from` on a check every `gap` seconds; before it a check
        density of scale x sqrt(f); every gap within [lo, hi]."""
        out: list[float] = []
        t = 0.0
        while True:
            if t >= dense_from:
                t += gap
            else:
                step = _invert(cumulative, _at(cumulative, t) + 1 / scale) - t
                # Land on dense_from rather than step over it (no gap under lo, none over hi).
                t = min(t + min(max(step, lo), hi), max(dense_from, t + lo))
            if t > horizon:
                return tuple(out)
            out.append(t)

    def fits(instants: tuple[float, ...]) -> bool:
        return all(
            _expected_calls(instants, s, limits.poll_seconds) <= b
            for s, b in zip(cases, budgets, strict=True)
        )

    def smallest_gap(dense_from: float) -> float | None:
        """The smallest zone gap within the budget, sparsest before the zone (None: none)."""
        if not fits(build(dense_from, hi, SPARSEST)):
            return None
        if fits(build(dense_from, lo, SPARSEST)):
            return lo
        narrow, wide = lo, hi  # wide fits, narrow does not
        for _ in range(BISECTIONS):
            mid = (narrow + wide) / 2
            if fits(build(dense_from, mid, SPARSEST)):
                wide = mid
            else:
                narrow = mid
        return wide

    # 1-2. The zone: the last `share` of the smoothed mass up to the horizon, checked every
    #      `gap` s, the smallest gap the budget allows. A median end in it waits about
    #      gap x 0.5 / share: the zone is chosen to make that smallest.
    ended = 1 - survival(horizon)
    choices = []
    for share in ZONE_SHARES if limits.zone else ():
        start = _invert_survival(survival, 1 - (1 - share) * ended, horizon)
        gap = smallest_gap(start)
        if gap is not None:
            choices.append((gap / share, start, gap))
    if not limits.zone and fits(build(math.inf, hi, SPARSEST)):
        choices.append((0.0, math.inf, hi))  # no zone: all of the budget as sqrt(f)
    if not choices:
        return build(math.inf, hi, SPARSEST)  # nothing fits: a check every hi seconds
    _, dense_from, gap = min(choices)
    # 3. What is left of the budget, before the zone: a check density of scale x sqrt(f).
    low, high = SPARSEST, 1e6
    best = build(dense_from, gap, low)
    for _ in range(BISECTIONS):
        mid = math.sqrt(low * high)
        built = build(dense_from, gap, mid)
        if fits(built):
            low, best = mid, built
        else:
            high = mid
    return best


def expected_calls(
    instants: tuple[float, ...], durations: tuple[float, ...], limits: PlanLimits
) -> tuple[float, float]:
    """(the plan's, the waiter's) expected DescribeTable calls per restore, if restores last
    as the smoothed `durations` say: the budget the plan keeps to."""
    ordered = tuple(sorted(durations))
    survival = _survival(ordered, _kernel_width(ordered))
    waiter = _waiter_instants(ordered[-1], limits)
    return (
        _expected_calls(instants, survival, limits.poll_seconds),
        _expected_calls(waiter, survival, limits.waiter_delay),
    )


def _expected_calls(instants: Any, survival: Callable[[float], float], then: float) -> float:
    """Expected DescribeTable calls until the end is seen: check k is made if the restore
    has not ended by check k-1; after the last instant, one every `then` seconds."""
    total, before = 0.0, 0.0
    for t in instants:
        total += survival(before)
        before = t
    t = before
    while True:
        alive = survival(t)
        if alive < 1e-4:
            return total
        total += alive
        t += then


def _waiter_instants(horizon: float, limits: PlanLimits) -> list[float]:
    """The re-armed waiter's call instants up to the horizon (its first call at 0)."""
    out, k = [], 0
    cycle = (limits.waiter_max_attempts - 1) * limits.waiter_delay
    while True:
        rounds, j = divmod(k, limits.waiter_max_attempts)
        t = rounds * cycle + j * limits.waiter_delay
        if t > horizon:
            return out
        out.append(t)
        k += 1


def _invert_survival(survival: Callable[[float], float], alive: float, before: float) -> float:
    """The t in [0, before] where the survival falls to `alive` (0 if it is lower at 0)."""
    if survival(0.0) <= alive:
        return 0.0
    low, high = 0.0, before
    for _ in range(BISECTIONS):
        mid = (low + high) / 2
        if survival(mid) > alive:
            low = mid
        else:
            high = mid
    return high


def _log_sd(durations: tuple[float, ...]) -> float:
    """The sample standard deviation of the log-durations (0 for one)."""
    logs = [math.log(d) for d in durations]
    n = len(logs)
    mean = sum(logs) / n
    return math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1)) if n > 1 else 0.0


def _kernel_width(durations: tuple[float, ...]) -> float:
    return max(1.06 * _log_sd(durations) * len(durations) ** (-0.2), KERNEL_FLOOR)


def _survival(durations: tuple[float, ...], width: float) -> Callable[[float], float]:
    """P(the restore has not ended by t) under the smoothed distribution: tabulated at GRID
    steps (linear between them) until it is negligible, since the plan's bisections ask for
    it hundreds of thousands of times; exact past the table."""
    logs = [math.log(d) for d in durations]
    scale = width * math.sqrt(2)

    def exact(t: float) -> float:
        if t <= 0:
            return 1.0
        lt = math.log(t)
        return sum(0.5 * math.erfc((lt - m) / scale) for m in logs) / len(logs)

    table = [1.0]
    while table[-1] > 1e-7:
        table.append(exact(len(table) * GRID))

    def alive(t: float) -> float:
        k = int(t / GRID)
        if t <= 0:
            return 1.0
        if k + 1 >= len(table):
            return exact(t)
        frac = t / GRID - k
        return table[k] + (table[k + 1] - table[k]) * frac

    return alive


def _root_density(durations: tuple[float, ...], width: float, horizon: float) -> list[float]:
    """sqrt of the smoothed density of the end, at GRID steps over [0, horizon]."""
    logs = [math.log(d) for d in durations]
    n = len(logs)
    norm = 1 / (n * width * math.sqrt(2 * math.pi))
    out = []
    steps = int(horizon / GRID) + 2
    for k in range(steps):
        x = (k + 0.5) * GRID
        lx = math.log(x)
        density = norm / x * sum(math.exp(-0.5 * ((lx - m) / width) ** 2) for m in logs)
        out.append(math.sqrt(density))
    return out


def _at(cumulative: list[float], t: float) -> float:
    """The integral of sqrt(f) from 0 to t (linear between grid points)."""
    k = min(int(t / GRID), len(cumulative) - 2)
    frac = t / GRID - k
    return cumulative[k] + (cumulative[k + 1] - cumulative[k]) * min(frac, 1.0)


def _invert(cumulative: list[float], value: float) -> float:
    """The t at which the integral of sqrt(f) reaches `value` (past the grid: far away)."""
    k = bisect.bisect_left(cumulative, value)
    if k >= len(cumulative):
        return math.inf
    if k == 0:
        return 0.0
    below, above = cumulative[k - 1], cumulative[k]
    frac = (value - below) / (above - below) if above > below else 1.0
    return (k - 1 + frac) * GRID
