"""Replay the polling schedule (bot/polling.py) on simulated restores, against the waiter.

    .venv/bin/python bench/schedule_model.py [--restores 2000] [--history 5] [--seed 1]

No bot, no network: for each spread s, every restore of a table with a typical duration of
30 min lasts 30 min x lognormal(0, s); its ETA comes from `--history` earlier restores drawn
the same way (bot/eta.py). The bot checks when bot.polling.next_delay says; the waiter is
botocore's own TableExists waiter on a virtual clock (bench/virtual_tracking.py: its model's
Delay and MaxAttempts, re-armed after a WaiterError). Notice lag = first check at or after the
end, minus the end. A quick sweep over spreads; bench/eta_polling.py replays the whole bot
(store, tracker wake-ups) the same way.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from virtual_tracking import waiter_run  # noqa: E402

from bot.eta import Sample, estimate  # noqa: E402
from bot.polling import PollLimits, next_delay  # noqa: E402

TYPICAL = 1800.0


def replay(spread: float, history: int, restores: int, seed: int) -> tuple[float, float]:
    rng = random.Random(seed)
    limits = PollLimits(poll_seconds=10, min_seconds=2, max_seconds=60)
    lags, waiter_lags, calls, waiter_calls = [], [], 0, 0
    for _ in range(restores):
        samples = [Sample("t", TYPICAL * rng.lognormvariate(0, spread)) for _ in range(history)]
        eta = estimate("t", samples) if history else None
        end = TYPICAL * rng.lognormvariate(0, spread)
        t = 0.0
        while t < end:
            t += next_delay(eta, t, limits)
            calls += 1
        lags.append(t - end)
        waiter = waiter_run(end)
        waiter_calls += waiter.calls
        waiter_lags.append(waiter.lag)
    return statistics.median(lags) / statistics.median(waiter_lags), calls / waiter_calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--restores", type=int, default=2000)
    parser.add_argument("--history", type=int, default=5, help="earlier restores per table")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print("spread | lag median bot/waiter | DescribeTable calls bot/waiter")
    for spread in (0.02, 0.05, 0.10, 0.20):
        lag, calls = replay(spread, args.history, args.restores, args.seed)
        print(f"{spread:>5.0%}  | {lag:>21.2f} | {calls:>30.2f}")
    lag, calls = replay(0.10, 0, args.restores, args.seed)
    print(f"no history (10 %): lag {lag:.2f}, calls {calls:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
