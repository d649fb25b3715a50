"""The polling schedule: sparse while the end is unlikely, dense around it, never giving up."""

from __future__ import annotations

from dataclasses import replace

from bot import poll_plan
from bot.eta import BORROWED, FLOOR, OWN, Eta
from bot.polling import PollLimits, lease_seconds, next_delay

MIN = 60.0
LIMITS = PollLimits(poll_seconds=10, min_seconds=2, max_seconds=60)
# Earlier restores of 35, 40, 50 min: typical 35–45 min (MAD 5), longest 50; dense from half a
# MAD before the range to half a MAD after it: 32.5–47.5 min.
ETA = Eta(typical=40 * MIN, low=35 * MIN, high=45 * MIN, longest=50 * MIN, count=3, basis=OWN)


def schedule(eta: Eta | None, until: float) -> list[tuple[float, float]]:
    """(elapsed, delay) of every check from the start until `until` seconds."""
    out, t = [], 0.0
    while t < until:
        delay = next_delay(eta, t, LIMITS)
        out.append((t, delay))
        t += delay
    return out


def test_no_history_polls_at_the_plain_interval() -> None:
    assert {d for _, d in schedule(None, 3600)} == {10}


def test_with_history_sparse_early_dense_in_the_typical_range() -> None:
    checks = schedule(ETA, 45 * MIN)
    early = [d for t, d in checks if t < 20 * MIN]
    in_range = [d for t, d in checks if 32.5 * MIN <= t <= 45 * MIN]
    assert early and all(d == 60 for d in early)
    assert in_range and all(d == 2 for d in in_range)
    # No check steps over the start of the dense zone.
    assert any(32.5 * MIN <= t <= 32.5 * MIN + 2 for t, _ in checks)
    # Cheaper than a plain 10 s poll until then.
    assert len([t for t, _ in checks if t < 32.5 * MIN]) < 32.5 * MIN / 10 / 3


def test_after_the_range_backs_off_then_plain_interval_past_the_longest() -> None:
    assert next_delay(ETA, 47.5 * MIN + 30, LIMITS) == 10
    assert 30 < next_delay(ETA, 49.5 * MIN, LIMITS) <= 60
    # Overdue: past every earlier restore, the ordinary interval, forever.
    for hours in (1, 5, 48):
        assert next_delay(ETA, hours * 3600, LIMITS) == 10


def test_ends_just_outside_the_typical_range_are_still_polled_densely() -> None:
    # With a few earlier restores, median ± MAD holds only about half of the ends: an end a
    # minute before or after it must not wait for a backing-off poll (20 s here before).
    assert next_delay(ETA, 34 * MIN, LIMITS) == 2
    assert next_delay(ETA, 46 * MIN, LIMITS) == 2
    assert next_delay(ETA, 30 * MIN, LIMITS) == 50  # sparse further out


def test_alike_earlier_durations_still_leave_a_dense_zone() -> None:
    # Three restores of 40, 40 and 41 min: MAD 0, a zero-width typical range. The dense zone
    # still spans 2 % of the typical duration (x 1.5) either side: 38.8–41.2 min.
    same = Eta(40 * MIN, 40 * MIN, 40 * MIN, 41 * MIN, count=3, basis=OWN)
    assert next_delay(same, 39 * MIN, LIMITS) == 2
    assert next_delay(same, 41 * MIN, LIMITS) == 2
    assert next_delay(same, 30 * MIN, LIMITS) == 60


def test_an_outlier_in_the_history_only_delays_the_fallback() -> None:
    wild = Eta(32 * MIN, 30 * MIN, 34 * MIN, longest=300 * MIN, count=3, basis=OWN)
    assert next_delay(wild, 31 * MIN, LIMITS) == 2  # still dense around the usual end
    assert next_delay(wild, 200 * MIN, LIMITS) == 60  # sparse while between
    assert next_delay(wild, 301 * MIN, LIMITS) == 10


def test_floor_without_history_is_sparse_until_the_minimum() -> None:
    floor = Eta(20 * MIN, 20 * MIN, 20 * MIN, 20 * MIN, 0, FLOOR)
    assert next_delay(floor, 0, LIMITS) == 60
    assert next_delay(floor, 20 * MIN - 3, LIMITS) == 2
    assert next_delay(floor, 21 * MIN, LIMITS) == 10


def test_dense_polling_is_never_slower_than_the_plain_interval() -> None:
    fast = PollLimits(poll_seconds=0.5, min_seconds=2, max_seconds=60)
    assert next_delay(ETA, 40 * MIN, fast) == 0.5


def test_a_lease_outlives_the_wait_for_the_next_poll() -> None:
    for elapsed in (0, 20 * MIN, 40 * MIN, 48 * MIN, 5 * 3600):
        delay = next_delay(ETA, elapsed, LIMITS)
        assert lease_seconds(delay, LIMITS) > delay + 2 * LIMITS.poll_seconds


def test_a_borrowed_estimate_is_planned_without_the_dense_zone() -> None:
    # Fitted on other tables, a borrowed estimate places the end too roughly to bet a dense
    # zone on it (bot/poll_plan.py): its checks follow the zone-less plan; its own history's
    # the zoned one, and the two differ.
    samples = (1900.0, 2000.0, 2100.0, 2150.0, 2300.0)
    own = Eta(2100, 2000, 2150, 2300, 5, OWN, samples=samples)
    borrowed = replace(own, basis=BORROWED)
    limits = poll_plan.PlanLimits(10, 2, 60, 20)
    zoneless = poll_plan.plan(samples, replace(limits, zone=False))
    zoned = poll_plan.plan(samples, limits)
    assert zoneless != zoned
    for t in (0.0, 600.0, 1900.0, 2050.0, 2200.0, 2400.0):
        assert next_delay(borrowed, t, LIMITS) == poll_plan.next_check(t, zoneless, limits)
        assert next_delay(own, t, LIMITS) == poll_plan.next_check(t, zoned, limits)
