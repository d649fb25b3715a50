"""bench/poll_bound.py: the fewest calls any polling schedule needs for a median lag."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "poll_bound", Path(__file__).resolve().parents[2] / "bench" / "poll_bound.py"
)
poll_bound = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(poll_bound)


def test_the_bound_grows_with_the_spread_and_vanishes_as_it_shrinks() -> None:
    bounds = [poll_bound.min_calls(1800.0, sigma, 2.0) for sigma in (0.01, 0.05, 0.1, 0.2, 0.3)]
    assert bounds == sorted(bounds)
    assert bounds[0] < 5  # 1 % spread: half the ends lie within ~20 s, a few checks see them


def test_the_goal_is_cheap_at_ten_percent_and_out_of_reach_at_thirty() -> None:
    # What docs/performance.md rests its verdicts on: against the waiter's calls, the median
    # lag <= 0.2x the waiter's is cheap at 10 %, and needs more calls than it at 30 %.
    def ratio(sigma: float) -> float:
        calls, lag = poll_bound.waiter(1800.0, sigma)
        assert 9 <= lag <= 11  # the waiter's 20 s grid
        return poll_bound.min_calls(1800.0, sigma, 0.2 * lag) / calls

    assert ratio(0.10) < 0.5
    assert ratio(0.30) > 1


def test_a_longest_gap_or_a_larger_share_only_adds_calls() -> None:
    free = poll_bound.min_calls(1800.0, 0.1, 2.0)
    assert poll_bound.min_calls(1800.0, 0.1, 2.0, max_gap=60) > free
    assert poll_bound.min_calls(1800.0, 0.1, 2.0, share=0.6) > free
