"""Fifty restores approved at once, tracked by the bot, against a boto3-waiter baseline.

    .venv/bin/python bench/fifty_restores.py [--poll 10] [--restores 50] [--seed 7]

One source table (MusicCollection, PITR on) and 2 x N new tables. Restore i stays CREATING
for d[i] seconds, d drawn uniformly from 30-60 s with a fixed seed, for both contenders:

- the bot: `python -m bot serve` (child process, default poll interval 10 s). N signed
  `/pitr-restore MusicCollection BotRestoreNNN latest` commands post N cards; then N signed
  Approve clicks by U2 are sent at once (thread pool). The bot calls RestoreTableToPointInTime,
  polls DescribeTable and announces ACTIVE with a reply_broadcast chat.postMessage.
- the baseline, at the same moment against the same proxy: this process starts N restores
  (WaiterRestoreNNN) with boto3 and runs one thread per restore blocked in
  `client.get_waiter("table_exists").wait(TableName=...)` (defaults: Delay 20 s,
  MaxAttempts 25).

The proxy (AwsSimulator, with wall-clock bookkeeping in benchlib.TimedSim) knows the instant a
table turns ACTIVE: the restore call's answer + d[i]. Notice lag is the broadcast reaching
FakeSlack (bot) or wait() returning (waiter) minus that instant. DescribeTable calls per
restore-hour count the calls on each contender's new tables after its restore call, divided by
the summed CREATING hours. Nothing here asserts timings.

Targets: bot lag median <= 0.6 x waiter's at <= 2 x its DescribeTable calls per restore-hour;
<= 10 Slack posts (chat.postMessage + chat.update) per restore; bot CPU <= 5 % of a core
while tracking; all N announced.
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
    ask_for_cards,
    broadcast_times,
    dump_json,
    is_broadcast,
    median,
    print_machine,
    print_table,
    start_bot,
    start_fake_slack,
    status_kb,
)
from botocore.config import Config  # noqa: E402
from support.signed import block_action_body  # noqa: E402

SOURCE = "MusicCollection"
BOT_RE = re.compile(r"BotRestore\d{3}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--restores", type=int, default=50, help="restores per contender (50)")
    parser.add_argument("--poll", type=float, default=10, help="PITR_BOT_POLL_SECONDS (10)")
    parser.add_argument("--min-creating", type=float, default=30, help="seconds (30)")
    parser.add_argument("--max-creating", type=float, default=60, help="seconds (60)")
    parser.add_argument("--seed", type=int, default=7, help="seed for the CREATING times (7)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args()
    n = args.restores

    print_machine()
    rng = random.Random(args.seed)
    durations = [rng.uniform(args.min_creating, args.max_creating) for _ in range(n)]
    bot_targets = [f"BotRestore{i:03d}" for i in range(n)]
    waiter_targets = [f"WaiterRestore{i:03d}" for i in range(n)]

    sim = TimedSim().start()
    sim.create_table(SOURCE, pitr=True, items=5)
    for i, seconds in enumerate(durations):
        sim.creating_for[bot_targets[i]] = seconds
        sim.creating_for[waiter_targets[i]] = seconds
    fake = start_fake_slack()
    bot = start_bot(fake, sim, poll_seconds=args.poll)
    try:
        ready = bot.wait_healthy()
        print(f"\nbot pid {bot.pid} healthy after {ready:.2f} s, poll {args.poll:g} s")
        respond_url = fake.response_url("bench")
        sender = bot.sender()

        # 1. N requests -> N cards.
        _, cards = ask_for_cards(bot, fake, SOURCE, bot_targets, BOT_RE, timeout=120)
        time.sleep(1)
        print(f"{n} cards posted; approving all at once, starting {n} waiter restores too")

        # 2. Approve all at once, and start the waiter baseline at the same moment.
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=sim.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
            config=Config(max_pool_connections=n + 10),
        )
        waiter_done: dict[str, float] = {}
        waiter_errors: list[str] = []
        lock = threading.Lock()
        go = threading.Event()

        def waiter_run(target: str) -> None:
            go.wait()
            try:
                client.restore_table_to_point_in_time(
                    SourceTableName=SOURCE, TargetTableName=target, UseLatestRestorableTime=True
                )
                client.get_waiter("table_exists").wait(TableName=target)
                with lock:
                    waiter_done[target] = time.time()
            except Exception as exc:
                with lock:
                    waiter_errors.append(f"{target}: {exc}")

        def approve(target: str) -> int:
            go.wait()
            restore_id, ts = cards[target]
            body = block_action_body(APPROVE, restore_id, "U2", "C1", ts, respond_url)
            return sender.post(body).status

        threads = [
            threading.Thread(target=waiter_run, args=(t,), daemon=True) for t in waiter_targets
        ]
        for t in threads:
            t.start()
        sampler = ProcSampler(bot.pid, interval=0.2).start()
        approved_at = time.time()
        with ThreadPoolExecutor(max_workers=n) as pool:
            futures = [pool.submit(approve, t) for t in bot_targets]
            go.set()
            click_status = [f.result() for f in futures]

        # 3. Wait for every broadcast (bot) and every waiter.
        deadline = time.monotonic() + args.max_creating + 3 * max(args.poll, 20) + 60
        tracking_stopped = False
        while time.monotonic() < deadline:
            announced = sum(1 for c in fake.calls("chat.postMessage") if is_broadcast(c))
            if announced >= n and not tracking_stopped:
                sampler.stop()
                tracking_stopped = True
            with lock:
                waiters_left = n - len(waiter_done) - len(waiter_errors)
            if tracking_stopped and waiters_left == 0:
                break
            time.sleep(0.1)
        if not tracking_stopped:
            sampler.stop()
        time.sleep(max(2.0, min(args.poll, 5.0)))  # trailing card edits
        hwm_kb = status_kb(bot.pid, "VmHWM")
        bot_log_errors = sum(" ERROR " in line for line in bot.stderr().splitlines())
    finally:
        bot.stop()
        fake.stop()
        sim.stop()

    # -- numbers -------------------------------------------------------------------------
    restore_hours = sum(durations) / 3600
    broadcasts = broadcast_times(fake, BOT_RE)
    bot_lag = [broadcasts[t] - sim.active_at(t) for t in bot_targets if t in broadcasts]
    waiter_lag = [waiter_done[t] - sim.active_at(t) for t in waiter_targets if t in waiter_done]

    # Where the lag goes: ACTIVE -> the first DescribeTable that sees it -> the notice.
    def split(done: dict[str, float], targets: list[str]) -> tuple[list[float], list[float]]:
        seen, told = [], []
        for t in targets:
            active = sim.active_at(t)
            first = sim.first_describe_after(t, active) if active is not None else None
            if first is not None and t in done:
                seen.append(first - active)
                told.append(done[t] - first)
        return seen, told

    bot_seen, bot_told = split(broadcasts, bot_targets)
    waiter_seen, waiter_told = split(waiter_done, waiter_targets)
    restored = sim.restored_at_wall
    # Tracking = from the restore call to the notice. After it, the bot's aftercare reads the
    # new table again to compare it with the source; that is not the cost of tracking.
    bot_calls = sim.describe_count(set(bot_targets), after=restored, before=broadcasts)
    bot_calls_all = sim.describe_count(set(bot_targets)) + sim.describe_count({SOURCE})
    waiter_calls = sim.describe_count(set(waiter_targets), after=restored)
    bot_rate = bot_calls / restore_hours
    waiter_rate = waiter_calls / restore_hours
    start_lag = [restored[t] - approved_at for t in bot_targets if t in restored]

    card_ts = {ts for _, ts in cards.values()}
    posts = [c for c in fake.calls("chat.postMessage") if not c.failed]
    updates = [c for c in fake.calls("chat.update") if not c.failed]
    n_cards = sum(1 for c in posts if not c.args.get("thread_ts"))
    n_broadcast = sum(1 for c in posts if is_broadcast(c))
    n_progress = len(posts) - n_cards - n_broadcast
    n_card_edits = sum(1 for c in updates if c.args.get("ts") in card_ts)
    n_progress_edits = len(updates) - n_card_edits
    others = {}
    for c in fake.calls():
        if c.method not in ("chat.postMessage", "chat.update"):
            others[c.method] = others.get(c.method, 0) + 1

    def fm(x: float) -> str:
        return f"{x:.1f}"

    lag_ratio = median(bot_lag) / median(waiter_lag) if waiter_lag else float("nan")
    calls_ratio = bot_rate / waiter_rate if waiter_rate else float("nan")
    print_table(
        f"{n} restores, CREATING {args.min_creating:g}-{args.max_creating:g} s "
        f"(seed {args.seed}, {restore_hours:.3f} restore-hours per contender)",
        [
            [
                "announced / returned",
                f"{len(broadcasts)}/{n}",
                f"{len(waiter_done)}/{n}",
                "",
            ],
            [
                "notice lag median (s)",
                fm(median(bot_lag)),
                fm(median(waiter_lag)),
                f"{lag_ratio:.2f}",
            ],
            [
                "notice lag max (s)",
                fm(max(bot_lag, default=float("nan"))),
                fm(max(waiter_lag, default=float("nan"))),
                "",
            ],
            [
                "… ACTIVE -> first DescribeTable seeing it, median / max (s)",
                f"{median(bot_seen):.1f} / {max(bot_seen, default=float('nan')):.1f}",
                f"{median(waiter_seen):.1f} / {max(waiter_seen, default=float('nan')):.1f}",
                "",
            ],
            [
                "… that DescribeTable -> notice, median / max (s)",
                f"{median(bot_told):.2f} / {max(bot_told, default=float('nan')):.2f}",
                f"{median(waiter_told):.2f} / {max(waiter_told, default=float('nan')):.2f}",
                "",
            ],
            [
                "DescribeTable calls while tracking",
                str(bot_calls),
                str(waiter_calls),
                "",
            ],
            [
                "DescribeTable calls per restore-hour",
                f"{bot_rate:.0f}",
                f"{waiter_rate:.0f}",
                f"{calls_ratio:.2f}",
            ],
        ],
        [
            "metric",
            f"bot (poll {args.poll:g} s)",
            "boto3 waiter (Delay 20 s)",
            "bot / waiter",
        ],
    )
    per = max(n, 1)
    print_table(
        "the bot's side",
        [
            ["click answers that were 200", f"{click_status.count(200)}/{n}"],
            [
                "approval -> RestoreTableToPointInTime answered, median / max (s)",
                f"{median(start_lag):.2f} / {max(start_lag, default=float('nan')):.2f}",
            ],
            [
                "Slack posts per restore (chat.postMessage + chat.update)",
                f"{(len(posts) + len(updates)) / per:.1f}",
            ],
            [
                "… chat.postMessage per restore (card, progress reply, broadcast)",
                f"{len(posts) / per:.1f} ({n_cards}, {n_progress}, {n_broadcast})",
            ],
            [
                "… chat.update per restore (card edits, progress edits)",
                f"{len(updates) / per:.1f} ({n_card_edits}, {n_progress_edits})",
            ],
            ["other Slack calls (total)", ", ".join(f"{k} {v}" for k, v in sorted(others.items()))],
            [
                "DescribeTable by the bot incl. preflight (source + target), total",
                str(bot_calls_all),
            ],
            [
                "bot CPU while tracking (% of one core)",
                f"{100 * sampler.cpu_share:.2f} ({sampler.cpu_used:.2f} s CPU "
                f"over {sampler.wall:.0f} s)",
            ],
            [
                "bot RSS peak while tracking / VmHWM (MB)",
                f"{sampler.rss_peak_kb / 1024:.0f} / {hwm_kb / 1024:.0f}",
            ],
            ["ERROR lines in the bot's log", str(bot_log_errors)],
            ["waiter errors", str(len(waiter_errors))],
        ],
        ["what", "value"],
    )
    for err in waiter_errors[:3]:
        print("  waiter error:", err)
    dump_json(
        args.json,
        {
            "restores": n,
            "poll": args.poll,
            "announced": len(broadcasts),
            "waiters_returned": len(waiter_done),
            "bot_lag_median": median(bot_lag),
            "bot_lag_max": max(bot_lag, default=None),
            "waiter_lag_median": median(waiter_lag),
            "waiter_lag_max": max(waiter_lag, default=None),
            "lag_ratio": lag_ratio,
            "bot_calls_per_restore_hour": bot_rate,
            "waiter_calls_per_restore_hour": waiter_rate,
            "calls_ratio": calls_ratio,
            "slack_posts_per_restore": (len(posts) + len(updates)) / per,
            "post_message_per_restore": len(posts) / per,
            "update_per_restore": len(updates) / per,
            "bot_cpu_share": sampler.cpu_share,
            "bot_rss_peak_mb": sampler.rss_peak_kb / 1024,
            "bot_vmhwm_mb": hwm_kb / 1024,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
