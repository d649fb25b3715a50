"""Cold start and idle footprint of `pitr-bot serve`.

    .venv/bin/python bench/cold_start.py [--runs 5] [--idle 10]

Each run spawns `python -m bot serve` (fresh SQLite state, FakeSlack for auth.test, moto
behind the AwsSimulator proxy as AWS) and times spawn -> first GET /healthz 200, polling every
10 ms. The last run then stays idle for --idle seconds and its RSS is read from
/proc/<pid>/status. Targets: <= 2 s to healthy, <= 120 MB idle RSS. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (  # noqa: E402
    TimedSim,
    cpu_seconds,
    dump_json,
    print_machine,
    print_table,
    start_bot,
    start_fake_slack,
    status_kb,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="spawns to time (5)")
    parser.add_argument("--idle", type=float, default=10, help="idle seconds before RSS (10)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args()

    print_machine()
    sim = TimedSim().start()
    sim.create_table("MusicCollection", pitr=True)
    fake = start_fake_slack()
    times: list[float] = []
    rss_ready = rss_idle = hwm = 0
    idle_cpu = 0.0
    try:
        for run in range(args.runs):
            bot = start_bot(fake, sim)
            try:
                times.append(bot.wait_healthy(interval=0.01))
                rss_ready = status_kb(bot.pid, "VmRSS")
                if run == args.runs - 1:
                    cpu0 = cpu_seconds(bot.pid)
                    time.sleep(args.idle)
                    idle_cpu = (cpu_seconds(bot.pid) - cpu0) / args.idle
                    rss_idle = status_kb(bot.pid, "VmRSS")
                    hwm = status_kb(bot.pid, "VmHWM")
            finally:
                bot.stop()
            print(f"run {run + 1}: healthy after {times[-1]:.3f} s", flush=True)
    finally:
        fake.stop()
        sim.stop()

    print_table(
        "cold start (spawn -> /healthz 200) and idle footprint",
        [
            ["runs", str(len(times))],
            ["spawn -> healthy, min (s)", f"{min(times):.2f}"],
            ["spawn -> healthy, median (s)", f"{statistics.median(times):.2f}"],
            ["spawn -> healthy, max (s)", f"{max(times):.2f}"],
            ["RSS when healthy, last run (MB)", f"{rss_ready / 1024:.0f}"],
            [f"RSS after {args.idle:g} s idle (MB)", f"{rss_idle / 1024:.0f}"],
            ["VmHWM (peak RSS) by then (MB)", f"{hwm / 1024:.0f}"],
            ["CPU while idle (% of one core)", f"{100 * idle_cpu:.2f}"],
        ],
        ["what", "value"],
    )
    dump_json(
        args.json,
        {
            "times": times,
            "min_s": min(times),
            "median_s": statistics.median(times),
            "rss_idle_mb": rss_idle / 1024,
            "vmhwm_mb": hwm / 1024,
            "idle_cpu_share": idle_cpu,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
