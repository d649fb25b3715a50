"""Polling that follows the ETA, measured: the bot against boto3's waiter on the same restores.

    .venv/bin/python bench/eta_polling.py [--restores 50] [--compress 20] [--spread 0.05]
                                          [--history 5] [--fresh] [--seed 7] [--json FILE]

Time is compressed by --compress (C): every duration and every interval is divided by C
(PITR_BOT_POLL_SECONDS 10/C, _MIN_ 2/C, _MAX_ 60/C, the waiter's Delay 20/C with no attempt
limit), and every number below is scaled back to real time (lags x C, restore-hours x C).

--tables source tables (PITR on) have typical restore durations of 20, 30, 40, ... minutes.
A restore of table i lasts typical_i x lognormal(0, --spread), drawn with a fixed seed.

1. History (skipped with --fresh): --history restores of every table through the bot
   (signed /pitr-restore, signed Approve), so the bot's store holds real durations.
2. Measured: --restores restores through the bot, round-robin over the tables, approved at
   once; at the same moment this process starts the same number of restores with boto3 and
   blocks in `table_exists` waiters, restore k of each side lasting the same time.

Notice lag: the ACTIVE broadcast reaching FakeSlack (bot) or wait() returning (waiter), minus
the instant the simulator turns the table ACTIVE. DescribeTable calls per restore-hour: calls
on the contender's new tables from its restore call to its notice, over the summed CREATING
time. Bot CPU: the bot process's CPU time from the approvals to the last broadcast, over that
wall time; compressed time makes the bot do C times the work per second, so the real-time
estimate is the measured share / C. Nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3  # noqa: E402
from benchlib import (  # noqa: E402
    APPROVE,
    ProcSampler,
    TimedSim,
    card_of,
    dump_json,
    median,
    print_machine,
    print_table,
    start_bot,
    start_fake_slack,
)
from botocore.config import Config  # noqa: E402
from support.signed import block_action_body, slash_command_body  # noqa: E402

TARGET_RE = re.compile(r"(?:Hist\d{2}x\d{2}|BotRestore\d{3})")


def broadcasts(fake) -> dict[str, float]:
    """target -> when its ACTIVE broadcast reached Slack."""
    out: dict[str, float] = {}
    for call in fake.calls("chat.postMessage"):
        if call.failed or call.args.get("reply_broadcast") not in (True, "true", "1", "True"):
            continue
        text = str(call.args.get("text", "")) + str(call.args.get("blocks", ""))
        match = TARGET_RE.search(text)
        if match and "ACTIVE" in text:
            out.setdefault(match.group(0), call.at)
    return out


def through_bot(bot, fake, sender, url, jobs: list[tuple[str, str]], timeout: float):
    """(source, target) -> cards -> returns an approve-all function and the card map."""

    def ask(job: tuple[str, str]) -> int:
        body = slash_command_body("/pitr-restore", f"{job[0]} {job[1]} latest", "U1", "C1", url)
        return sender.post(body).status

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(ask, jobs))
    wanted = {target for _, target in jobs}
    deadline = time.monotonic() + timeout
    cards: dict[str, tuple[str, str]] = {}
    while time.monotonic() < deadline and len(cards) < len(wanted):
        for call in fake.calls("chat.postMessage"):
            card = card_of(call)
            match = TARGET_RE.search(card[1]) if card else None
            if card and match and match.group(0) in wanted and card[2]:
                cards[match.group(0)] = (card[0], card[2])
        time.sleep(0.1)
    if len(cards) < len(wanted):
        raise RuntimeError(f"only {len(cards)}/{len(wanted)} cards were posted")

    def approve(target: str) -> int:
        restore_id, ts = cards[target]
        return sender.post(block_action_body(APPROVE, restore_id, "U2", "C1", ts, url)).status

    return approve


def wait_broadcasts(fake, targets: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if targets <= set(broadcasts(fake)):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{len(targets - set(broadcasts(fake)))} restores never announced")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--restores", type=int, default=50, help="measured restores per side")
    parser.add_argument("--tables", type=int, default=3, help="source tables (3)")
    parser.add_argument("--history", type=int, default=5, help="earlier restores per table (5)")
    parser.add_argument("--compress", type=float, default=20, help="time compression (20)")
    parser.add_argument("--spread", type=float, default=0.05, help="lognormal sigma (0.05)")
    parser.add_argument("--fresh", action="store_true", help="no history: plain polling")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    c, n = args.compress, args.restores
    print_machine()
    rng = random.Random(args.seed)
    sources = [f"Source{i}" for i in range(args.tables)]
    typical = {s: (20 + 10 * i) * 60 / c for i, s in enumerate(sources)}  # compressed seconds

    def draw(source: str) -> float:
        return typical[source] * rng.lognormvariate(0, args.spread)

    history = (
        []
        if args.fresh
        else [
            (s, f"Hist{i:02d}x{k:02d}") for i, s in enumerate(sources) for k in range(args.history)
        ]
    )
    measured = [(sources[k % len(sources)], f"BotRestore{k:03d}") for k in range(n)]
    waiters = [(src, f"WaiterRestore{k:03d}") for k, (src, _) in enumerate(measured)]

    sim = TimedSim().start()
    for s in sources:
        sim.create_table(s, pitr=True, items=5)
    for (source, target), (_, waiter) in zip(measured, waiters, strict=True):
        sim.creating_for[target] = sim.creating_for[waiter] = draw(source)
    for s, target in history:
        sim.creating_for[target] = draw(s)
    fake = start_fake_slack()
    env = {
        "PITR_BOT_POLL_MIN_SECONDS": f"{2 / c:.4f}",
        "PITR_BOT_POLL_MAX_SECONDS": f"{60 / c:.4f}",
    }
    bot = start_bot(fake, sim, poll_seconds=round(10 / c, 4), extra_env=env)
    longest = max(sim.creating_for.values())
    try:
        bot.wait_healthy()
        sender, url = bot.sender(), fake.response_url("bench")
        if history:
            approve = through_bot(bot, fake, sender, url, history, timeout=120)
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(approve, [t for _, t in history]))
            wait_broadcasts(fake, {t for _, t in history}, timeout=longest * 2 + 120)
            print(f"history: {len(history)} restores recorded by the bot")
        approve = through_bot(bot, fake, sender, url, measured, timeout=max(300, 3 * n))
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=sim.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
            # The simulator's proxy drops connections under 500 at once: retry those.
            config=Config(
                max_pool_connections=n + 10, retries={"mode": "standard", "max_attempts": 10}
            ),
        )
        waiter_done: dict[str, float] = {}
        waiter_errors: list[str] = []
        lock, go = threading.Lock(), threading.Event()

        def waiter_run(source: str, target: str) -> None:
            go.wait()
            try:
                client.restore_table_to_point_in_time(
                    SourceTableName=source, TargetTableName=target, UseLatestRestorableTime=True
                )
                client.get_waiter("table_exists").wait(
                    TableName=target, WaiterConfig={"Delay": 20 / c, "MaxAttempts": 100_000}
                )
            except Exception as exc:  # noqa: BLE001 - counted and reported, not hidden
                with lock:
                    waiter_errors.append(f"{target}: {type(exc).__name__}")
                return
            with lock:
                waiter_done[target] = time.time()

        threads = [threading.Thread(target=waiter_run, args=w, daemon=True) for w in waiters]
        for t in threads:
            t.start()
        sampler = ProcSampler(bot.pid, interval=0.5).start()
        with ThreadPoolExecutor(max_workers=min(n, 50)) as pool:
            futures = [pool.submit(approve, t) for _, t in measured]
            go.set()
            [f.result() for f in futures]
        wait_broadcasts(fake, {t for _, t in measured}, timeout=longest * 2 + 300)
        sampler.stop()
        for t in threads:
            t.join(timeout=longest + 60)
    finally:
        bot.stop()
        fake.stop()
        sim.stop()

    # -- numbers (scaled back to real time) ----------------------------------------------
    told = broadcasts(fake)
    bot_targets = [t for _, t in measured]
    waiter_targets = [t for _, t in waiters if t in waiter_done]
    bot_lag = [(told[t] - sim.active_at(t)) * c for t in bot_targets]
    waiter_lag = [(waiter_done[t] - sim.active_at(t)) * c for t in waiter_targets]
    hours = sum(sim.creating_for[t] for t in bot_targets) * c / 3600
    restored = sim.restored_at_wall
    bot_calls = sim.describe_count(set(bot_targets), after=restored, before=told)
    waiter_calls = sim.describe_count(set(waiter_targets), after=restored, before=waiter_done)
    waiter_hours = sum(sim.creating_for[t] for t in waiter_targets) * c / 3600
    bot_rate, waiter_rate = bot_calls / hours, waiter_calls / waiter_hours
    lag_ratio = median(bot_lag) / median(waiter_lag)

    def seen(targets: list[str]) -> list[float]:
        """ACTIVE -> the first DescribeTable that sees it (the schedule's share of the lag)."""
        out = []
        for t in targets:
            first = sim.first_describe_after(t, sim.active_at(t))
            if first is not None:
                out.append((first - sim.active_at(t)) * c)
        return out

    bot_seen, waiter_seen = seen(bot_targets), seen(waiter_targets)
    calls_ratio = bot_rate / waiter_rate
    mode = "no history" if args.fresh else f"history: {args.history} earlier restores per table"
    print_table(
        f"{n} restores, {mode}, spread {args.spread:.0%}, time compressed {c:g}x (real units)",
        [
            [
                "notice lag median (s)",
                f"{median(bot_lag):.1f}",
                f"{median(waiter_lag):.1f}",
                f"{lag_ratio:.2f}",
            ],
            ["notice lag max (s)", f"{max(bot_lag):.1f}", f"{max(waiter_lag):.1f}", ""],
            [
                "ACTIVE -> first DescribeTable seeing it, median (s)",
                f"{median(bot_seen):.1f}",
                f"{median(waiter_seen):.1f}",
                f"{median(bot_seen) / median(waiter_seen):.2f}",
            ],
            [
                "DescribeTable calls per restore-hour",
                f"{bot_rate:.0f}",
                f"{waiter_rate:.0f}",
                f"{calls_ratio:.2f}",
            ],
            [
                "announced / returned",
                f"{len(told.keys() & set(bot_targets))}/{n}",
                f"{len(waiter_done)}/{n} ({len(waiter_errors)} errors)",
                "",
            ],
        ],
        ["", "bot", "boto3 waiter", "bot / waiter"],
    )
    print_table(
        "bot CPU while tracking",
        [
            [
                "measured (compressed)",
                f"{sampler.cpu_share:.1%} of a core over {sampler.wall:.0f} s",
            ],
            ["real-time estimate (/ C)", f"{sampler.cpu_share / c:.2%} of a core"],
        ],
        ["", "value"],
    )
    dump_json(
        args.json,
        {
            "restores": n,
            "fresh": args.fresh,
            "spread": args.spread,
            "compress": c,
            "bot_lag_median": median(bot_lag),
            "waiter_lag_median": median(waiter_lag),
            "lag_ratio": lag_ratio,
            "bot_seen_median": median(bot_seen),
            "waiter_seen_median": median(waiter_seen),
            "bot_calls_per_restore_hour": bot_rate,
            "waiter_calls_per_restore_hour": waiter_rate,
            "calls_ratio": calls_ratio,
            "cpu_share_measured": sampler.cpu_share,
            "cpu_share_real_estimate": sampler.cpu_share / c,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
