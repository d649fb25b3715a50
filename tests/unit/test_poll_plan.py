"""The polling planner (bot/poll_plan.py): check instants under the waiter's call budget."""

from __future__ import annotations

import bisect
import math
import random
import statistics
from types import SimpleNamespace
from unittest import mock

import botocore.session
import botocore.waiter
import pytest

from bot import poll_plan
from bot.poll_plan import PlanLimits, expected_calls, next_check, plan, waiter_calls

LIMITS = PlanLimits(poll_seconds=10, min_seconds=2, max_seconds=60)


def histories():
    rng = random.Random(3)
    out = [(1800.0,), (1800.0, 1800.0, 1800.0), (600.0, 3600.0)]
    for spread in (0.02, 0.05, 0.1, 0.2, 0.3):
        for typical in (120.0, 1200.0, 2400.0):
            out.append(tuple(typical * rng.lognormvariate(0, spread) for _ in range(5)))
    return out


# A borrowed estimate is planned without the dense zone (bot/polling.py): same guarantees.
ZONELESS = PlanLimits(poll_seconds=10, min_seconds=2, max_seconds=60, zone=False)


@pytest.mark.parametrize("limits", [LIMITS, ZONELESS])
@pytest.mark.parametrize("durations", histories())
def test_instants_increase_within_the_gap_bounds_and_stop_at_the_longest(durations, limits) -> None:
    instants = plan(durations, limits)
    assert instants, "a history gives a plan"
    gaps = [b - a for a, b in zip((0.0, *instants), instants, strict=False)]
    assert all(g >= LIMITS.min_seconds - 1e-9 for g in gaps)  # strictly increasing, too
    assert all(g <= LIMITS.max_seconds + 1e-9 for g in gaps)
    assert instants[-1] <= max(durations)


@pytest.mark.parametrize("limits", [LIMITS, ZONELESS])
@pytest.mark.parametrize("durations", histories()[:2] + histories()[3:])
def test_the_plan_keeps_within_the_waiters_expected_calls(durations, limits) -> None:
    ours, waiter = expected_calls(plan(durations, limits), durations, limits)
    assert ours <= waiter


@pytest.mark.parametrize("durations", histories()[:2] + histories()[3:])
def test_the_plan_also_keeps_within_the_waiters_calls_if_restores_run_later_than_before(
    durations,
) -> None:
    # Five earlier restores place the next ones only roughly; the later ones cost most (they
    # cross the whole dense zone). One standard error of the mean log-duration later:
    logs = [math.log(d) for d in durations]
    sd = statistics.stdev(logs) if len(logs) > 1 else 0.0
    later = tuple(d * math.exp(sd / math.sqrt(len(logs))) for d in durations)
    ours, waiter = expected_calls(plan(durations, LIMITS), later, LIMITS)
    assert ours <= waiter * (1 + 1e-9)


def test_when_no_plan_fits_the_budget_it_is_the_sparsest() -> None:
    # 10 min and 60 min: much of the smoothed weight lies past the longest, where the plain
    # interval (10 s, twice the waiter's pace) applies; no plan fits, so it checks rarely.
    instants = plan((600.0, 3600.0), LIMITS)
    gaps = {round(b - a, 6) for a, b in zip((0.0, *instants), instants, strict=False)}
    assert gaps == {LIMITS.max_seconds}


def test_checks_are_densest_where_earlier_restores_ended() -> None:
    durations = (1700.0, 1750.0, 1800.0, 1850.0, 1900.0)
    instants = plan(durations, LIMITS)
    near = [t for t in instants if 1650 <= t <= 1950]
    early = [t for t in instants if t < 1200]
    assert len(near) > len(early)  # 300 s near the end hold more checks than the first 20 min
    assert len(early) <= 1200 / 60 + 1  # early on: about one a minute at most


def seen(instants: tuple[float, ...], end: float) -> tuple[float, int]:
    """(notice lag, calls) of a restore ending at `end`: the planned instants, then the plain
    interval (what next_check walks)."""
    k = bisect.bisect_left(instants, end)
    if k < len(instants):
        return instants[k] - end, k + 1
    last = instants[-1] if instants else 0.0
    more = math.ceil((end - last) / LIMITS.poll_seconds)
    return last + more * LIMITS.poll_seconds - end, len(instants) + more


@pytest.mark.parametrize("typical", [1200.0, 1800.0, 2400.0])
def test_at_ten_percent_spread_the_median_lag_is_about_a_fifth_of_the_waiters_within_its_calls(
    typical,
) -> None:
    # Restores last typical x lognormal(0, 10 %); the history is five of them, at the 10th,
    # 30th, ..., 90th percentile. Over the true distribution (2000 restores, one per quantile)
    # the waiter's median lag is 10 s (its 20 s grid); the goal is <= 2 s at no more calls.
    # A check density proportional to sqrt(f) (the least *mean* lag) gave 2.9 s; the plan
    # gives 1.9-2.0 s (its calls also fit a later history than this one: 0.81x here).
    normal = statistics.NormalDist()
    history = tuple(typical * math.exp(0.1 * normal.inv_cdf(q)) for q in (0.1, 0.3, 0.5, 0.7, 0.9))
    instants = plan(history, LIMITS)
    ends = [typical * math.exp(0.1 * normal.inv_cdf((i + 0.5) / 2000)) for i in range(2000)]
    ours = [seen(instants, end) for end in ends]
    waiter_lag = statistics.median(math.ceil(end / 20) * 20 - end for end in ends)
    assert statistics.median(lag for lag, _ in ours) <= 0.21 * waiter_lag
    assert sum(calls for _, calls in ours) <= sum(waiter_calls(end) + 1 for end in ends)


def test_past_the_plan_it_polls_at_the_plain_interval_forever() -> None:
    durations = (1700.0, 1800.0, 1900.0)
    instants = plan(durations, LIMITS)
    for elapsed in (instants[-1], 1900.0, 1950.0, 5000.0, 10 * 86400.0):
        assert next_check(elapsed, instants, LIMITS) == LIMITS.poll_seconds
    # Walking the schedule from the start: every check past the longest earlier restore is
    # followed by the next within the plain interval, and the checks never stop.
    t, checks = 0.0, []
    while t < 4000:
        t += next_check(t, instants, LIMITS)
        checks.append(t)
    past = [c for c in checks if c > max(durations)]
    assert len(past) >= (4000 - 1900) / LIMITS.poll_seconds - 1
    assert all(b - a <= LIMITS.poll_seconds + 1e-9 for a, b in zip(past, past[1:], strict=False))


def test_a_late_tick_takes_the_next_planned_instant_not_a_crowded_one() -> None:
    instants = (60.0, 120.0, 124.0, 128.0)
    assert next_check(0.0, instants, LIMITS) == 60.0
    assert next_check(123.5, instants, LIMITS) == pytest.approx(4.5)  # 128, not 124 (0.5 s)
    assert next_check(60.0, instants, LIMITS) == 60.0


def test_no_history_no_plan() -> None:
    assert plan((), LIMITS) == ()
    assert next_check(30.0, (), LIMITS) == LIMITS.poll_seconds


def test_the_budget_is_botocores_own_table_exists_waiter() -> None:
    model = botocore.session.get_session().get_waiter_model("dynamodb")
    config = model.get_waiter("TableExists")
    assert (config.delay, config.max_attempts) == (
        poll_plan.WAITER_DELAY,
        poll_plan.WAITER_MAX_ATTEMPTS,
    )
    # Count the calls the real waiter makes (re-armed after WaiterError) on a fake clock.
    now, calls = [0.0], []

    def describe_table(**_):
        calls.append(now[0])
        return {"Table": {"TableStatus": "ACTIVE" if now[0] >= 1300 else "CREATING"}}

    def sleep(seconds):
        now[0] += seconds

    waiter = botocore.waiter.Waiter("TableExists", config, describe_table)
    with mock.patch.object(botocore.waiter, "time", SimpleNamespace(sleep=sleep)):
        while True:
            try:
                waiter.wait(TableName="t")
                break
            except botocore.waiter.WaiterError:
                continue
    for t in (0, 19.9, 20, 479, 480, 500, 960, 1299):
        assert waiter_calls(t) == sum(1 for c in calls if c <= t), t
