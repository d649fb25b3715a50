"""The fewest DescribeTable calls any polling schedule needs for a given notice lag: a lower
bound, independent of the planner, with the true distribution of the end known.

    .venv/bin/python bench/poll_bound.py [--ratio 0.2] [--max-gap 60]

Restores last median x lognormal(0, sigma), with the medians of bench/eta_polling.py's tables
(20, 30, 40 min) and its spreads (sigma 5, 10, 20, 30 %). The waiter (botocore's TableExists,
re-armed: bot/poll_plan.waiter_calls) checks on a 20 s grid, so its median notice lag is about
10 s; the goal "bot lag <= 0.2x the waiter's" then means half of all restores must be seen
within L = 0.2 x that median (about 2 s) of their end.

Why it is a bound. A check at c sees within L only ends in (c - L, c], and it is made only if
the restore has not ended before it: it costs at least S(c) = P(D > c) calls, and S(c) <=
S(t + L) for every t in that window. So any schedule seeing mass m within L pays at least the
integral of S(t + L) / L over the union U of its windows, with the integral of f over U >= m.
The cheapest U takes t in order of f(t) / S(t + L) (about L x the hazard) until it holds half
the mass. `--max-gap G` adds what a schedule that never waits longer than G seconds between
checks (the bot's PITR_BOT_POLL_MAX_SECONDS) pays, about, outside U: S(t) / G per second.

Stdlib only (statistics.NormalDist); deterministic (quantile grids, no sampling).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.poll_plan import WAITER_DELAY, waiter_calls  # noqa: E402

MEDIANS = (1200.0, 1800.0, 2400.0)  # bench/eta_polling.py: 20, 30, 40 min tables
SIGMAS = (0.05, 0.10, 0.20, 0.30)
STEP = 0.5  # seconds: the integration grid
QUANTILES = 20_000  # restores, one per quantile, for the waiter's calls and median lag
NORMAL = statistics.NormalDist()


def waiter(median: float, sigma: float) -> tuple[float, float]:
    """(expected calls, median notice lag) of the re-armed waiter over lognormal durations."""
    calls, lags = 0.0, []
    for i in range(QUANTILES):
        d = median * math.exp(sigma * NORMAL.inv_cdf((i + 0.5) / QUANTILES))
        calls += waiter_calls(d) + 1  # the calls made by d, and the one that sees the end
        # Its calls are all on the Delay grid (a round is MaxAttempts - 1 Delays long).
        lags.append(math.ceil(d / WAITER_DELAY) * WAITER_DELAY - d)
    return calls / QUANTILES, statistics.median(lags)


def min_calls(
    median: float, sigma: float, window: float, share: float = 0.5, max_gap: float | None = None
) -> float:
    """The fewest expected calls per restore of any schedule that sees `share` of the ends
    within `window` seconds (the bound above), lognormal(median, sigma) durations; with
    `max_gap`, plus the least a schedule pays that checks at least every max_gap seconds."""
    mu = math.log(median)
    start = median * math.exp(sigma * NORMAL.inv_cdf(1e-7))
    stop = median * math.exp(sigma * NORMAL.inv_cdf(1 - 1e-9))

    def survival(t: float) -> float:
        return 1 - NORMAL.cdf((math.log(t) - mu) / sigma)

    def density(t: float) -> float:
        return NORMAL.pdf((math.log(t) - mu) / sigma) / (sigma * t)

    cells = []  # (mass, cost if inside U, cost if outside U) per grid cell
    t = start
    while t < stop:
        mid = t + STEP / 2
        inside = survival(mid + window) * STEP / window
        outside = survival(mid) * STEP / max_gap if max_gap else 0.0
        cells.append((density(mid) * STEP, inside, outside))
        t += STEP
    # Cheapest first: the mass each cell adds per extra call it costs.
    cells.sort(key=lambda c: c[0] / max(c[1] - c[2], 1e-300), reverse=True)
    total = sum(c[2] for c in cells)  # everything outside U, then move cells into it
    mass = 0.0
    for m, inside, outside in cells:
        if mass >= share:
            break
        mass += m
        total += inside - outside
    return total


def rows(ratio: float, max_gap: float) -> list[list[str]]:
    out = []
    for sigma in SIGMAS:
        for median in MEDIANS:
            calls, lag = waiter(median, sigma)
            window = ratio * lag
            bound = min_calls(median, sigma, window)
            gapped = min_calls(median, sigma, window, max_gap=max_gap)
            out.append(
                [
                    f"{sigma:.0%}",
                    f"{median / 60:.0f} min",
                    f"{calls:.1f}",
                    f"{lag:.1f} s",
                    f"{window:.1f} s",
                    f"{bound:.1f} = **{bound / calls:.2f}×**",
                    f"{gapped:.1f} = **{gapped / calls:.2f}×**",
                ]
            )
    return out


def print_table(title: str, body: list[list[str]], header: list[str]) -> None:
    """A Markdown table, as bench/benchlib.py prints them (not imported: that needs the venv)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in body:
        print("| " + " | ".join(row) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratio", type=float, default=0.2, help="bot lag / waiter lag (0.2)")
    parser.add_argument("--max-gap", type=float, default=60, help="the bot's max gap (60 s)")
    args = parser.parse_args()
    print_table(
        f"Fewest calls for a median notice lag <= {args.ratio:g}x the waiter's (lower bound)",
        rows(args.ratio, args.max_gap),
        [
            "spread σ",
            "median duration",
            "waiter calls",
            "waiter lag median",
            "bot lag goal",
            "fewest bot calls (any schedule) = × waiter",
            f"… checking at least every {args.max_gap:g} s",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
