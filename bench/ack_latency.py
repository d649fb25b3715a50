"""Ack latency under open-loop load: how fast does `pitr-bot serve` answer Slack?

    .venv/bin/python bench/ack_latency.py [--rate 50] [--seconds 20]

Starts FakeSlack, moto behind the AwsSimulator proxy, and `python -m bot serve` as a child
process. A setup phase posts approval cards (it doubles as warm-up). Then a *separate load
generator process* (so the simulators' CPU in this process cannot delay its clock) sends signed
requests at fixed times, whatever the answers: a scheduler thread hands each request to a
thread pool at its planned instant (open loop; a slow answer never delays the next request).
The mix, shuffled with a fixed seed:

  30 %  /pitr-status MusicCollection              (DescribeTable + DescribeContinuousBackups)
  30 %  /pitr-restore MusicCollection <new> latest (preflight, users.info, card post)
  40 %  button clicks on the setup cards, four per card in this order:
          Approve by the requester U1  -> refused (four-eyes rule)
          Approve (even cards) or Deny (odd cards) by U2 -> accepted (Approve starts a restore)
          Approve by U3                -> refused (already decided)
          Deny by U2                   -> refused (already decided)

Latency is measured client-side, from just before the request is sent until the response is
read. "from plan" also counts the time a request waited for its send slot (which would expose
coordinated omission if the client fell behind). Errors are non-200 answers and exceptions.
Target: p99 <= 50 ms and no errors. Nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (  # noqa: E402
    APPROVE,
    DENY,
    SECRET,
    ProcSampler,
    TimedSim,
    ask_for_cards,
    cpu_seconds,
    dump_json,
    pct,
    print_machine,
    print_table,
    start_bot,
    start_fake_slack,
    wait_cards,
)
from support.signed import block_action_body, post_signed, slash_command_body  # noqa: E402

SOURCE = "MusicCollection"
SEED = 20240611
TARGET_RE = re.compile(r"Ack(?:Card|Load)\d{5}")


# -- the load generator (runs in its own process) ----------------------------------------------
def loadgen(plan_path: str, out_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text())
    url, secret, items, workers = plan["url"], plan["secret"], plan["items"], plan["workers"]
    results: list[dict] = [{} for _ in items]

    def send(index: int, planned: float) -> None:
        item = items[index]
        start = time.monotonic()
        status, error = 0, ""
        try:
            resp = post_signed(url, secret, item["body"].encode(), timeout=10)
            status = resp.status
        except Exception as exc:  # connection refused/reset, timeout
            error = f"{type(exc).__name__}: {exc}"
        end = time.monotonic()
        results[index] = {
            "kind": item["kind"],
            "latency": end - start,
            "from_plan": end - planned,
            "send_lag": start - planned,
            "status": status,
            "error": error,
        }

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load") as pool:
        # Warm the pool's threads before the clock starts.
        list(pool.map(lambda _: None, range(workers)))
        t0 = time.monotonic() + 0.2
        for index, item in enumerate(items):
            planned = t0 + item["at"]
            delay = planned - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, index, planned)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    Path(out_path).write_text(json.dumps({"results": results, "cpu": cpu}))
    return 0


# -- orchestration -------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50, help="requests per second (50)")
    parser.add_argument("--seconds", type=float, default=20, help="length of the load (20)")
    parser.add_argument(
        "--workers", type=int, default=256, help="load generator threads (256; enough for 5 s)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument("--loadgen", nargs=2, metavar=("PLAN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        return loadgen(*args.loadgen)

    print_machine()
    total = int(round(args.rate * args.seconds))
    rng = random.Random(SEED)
    kinds = (
        ["status"] * int(total * 0.3)
        + ["restore"] * int(total * 0.3)
        + ["click"] * (total - 2 * int(total * 0.3))
    )
    rng.shuffle(kinds)
    n_clicks = kinds.count("click")
    n_cards = math.ceil(n_clicks / 4)

    sim = TimedSim().start()
    sim.creating_seconds = 5.0
    sim.create_table(SOURCE, pitr=True, items=5)
    fake = start_fake_slack()
    bot = start_bot(fake, sim)
    tmp = tempfile.TemporaryDirectory(prefix="pitr-bench-ack-")
    try:
        ready = bot.wait_healthy()
        print(f"\nbot pid {bot.pid} healthy after {ready:.2f} s; setting up {n_cards} cards…")
        respond_url = fake.response_url("bench")
        sender = bot.sender()

        # Setup (and warm-up): the cards the clicks will land on.
        setup = [f"AckCard{i:05d}" for i in range(n_cards)]
        statuses, cards = ask_for_cards(bot, fake, SOURCE, setup, TARGET_RE, timeout=180)
        if any(s != 200 for s in statuses):
            print(f"setup: {sum(s != 200 for s in statuses)} non-200 answers", file=sys.stderr)
        time.sleep(2)  # let the announcer and the listeners go idle

        items = []
        card_index = click_index = load_index = 0
        for n, kind in enumerate(kinds):
            at = n / args.rate
            if kind == "status":
                body = slash_command_body("/pitr-status", SOURCE, "U3", "C1", respond_url)
                items.append({"at": at, "kind": "status", "body": body.decode()})
            elif kind == "restore":
                text = f"{SOURCE} AckLoad{load_index:05d} latest"
                load_index += 1
                body = slash_command_body("/pitr-restore", text, "U1", "C1", respond_url)
                items.append({"at": at, "kind": "restore", "body": body.decode()})
            else:
                card_index, step = divmod(click_index, 4)
                click_index += 1
                restore_id, ts = cards[f"AckCard{card_index:05d}"]
                action, user, label = [
                    (APPROVE, "U1", "click: refused (own request)"),
                    (
                        (APPROVE, "U2", "click: approve (accepted)")
                        if card_index % 2 == 0
                        else (DENY, "U2", "click: deny (accepted)")
                    ),
                    (APPROVE, "U3", "click: refused (decided)"),
                    (DENY, "U2", "click: refused (decided)"),
                ][step]
                body = block_action_body(action, restore_id, user, "C1", ts, respond_url)
                items.append({"at": at, "kind": label, "body": body.decode()})

        plan_path = Path(tmp.name) / "plan.json"
        out_path = Path(tmp.name) / "results.json"
        plan = {"url": sender.url, "secret": SECRET, "items": items, "workers": args.workers}
        plan_path.write_text(json.dumps(plan))
        print(
            f"load: {total} requests at {args.rate:g}/s for {args.seconds:g} s "
            f"({kinds.count('status')} status, {kinds.count('restore')} restore, "
            f"{n_clicks} clicks on {n_cards} cards), open loop, {args.workers} client threads"
        )
        restores_before = sim.count("RestoreTableToPointInTime")
        sampler = ProcSampler(bot.pid).start()
        started = time.monotonic()
        own_cpu = cpu_seconds(os.getpid())
        subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "--loadgen", str(plan_path), str(out_path)],
            check=True,
        )
        sampler.stop()
        load_wall = time.monotonic() - started
        sim_cpu = cpu_seconds(os.getpid()) - own_cpu
        out = json.loads(out_path.read_text())
        results, gen_cpu = out["results"], out["cpu"]

        # How long the after-ack work (cards for the load's restore requests) took to drain.
        load_targets = {f"AckLoad{i:05d}" for i in range(load_index)}
        drain_start = time.monotonic()
        drained = wait_cards(fake, load_targets, TARGET_RE, timeout=120, quiet=True)
        drain = time.monotonic() - drain_start
        restore_calls = sim.count("RestoreTableToPointInTime") - restores_before
        approved = len(
            {r.get("TargetTableName") for r in sim.requests("RestoreTableToPointInTime")}
        )
        bot_errors = sum(" ERROR " in line for line in bot.stderr().splitlines())
    finally:
        bot.stop()
        fake.stop()
        sim.stop()
        tmp.cleanup()

    report(results, args, load_wall, sampler, len(drained), len(load_targets), drain)
    cores = os.cpu_count() or 1
    print_table(
        f"where the CPU went during the load ({cores} cores = {100 * cores}% available)",
        [
            ["the bot (pitr-bot serve)", f"{100 * sampler.cpu_share:.0f}%"],
            [
                "simulators: FakeSlack + AWS proxy + moto (this process)",
                f"{100 * sim_cpu / load_wall:.0f}%",
            ],
            ["load generator process", f"{100 * gen_cpu / load_wall:.0f}%"],
            ["everything else on the machine", "not measured (see loadavg)"],
        ],
        ["process", "CPU, % of one core"],
    )
    print_table(
        "after-ack work",
        [
            ["restore cards posted for the load's /pitr-restore", f"{len(drained)}/{load_index}"],
            ["extra wait after the last answer until all were posted (s)", f"{drain:.1f}"],
            [
                "tables restored by accepted Approve clicks (RestoreTable calls)",
                f"{approved}/{(n_cards + 1) // 2} ({restore_calls})",
            ],
            ["ERROR lines in the bot's log", bot_errors],
        ],
        ["what", "value"],
    )
    return 0


def report(results, args, wall, sampler, drained, load_targets, drain) -> None:
    def row(name: str, rs: list[dict]) -> list[str]:
        lat = [r["latency"] * 1000 for r in rs]
        errors = sum(1 for r in rs if r.get("status") != 200)
        return [
            name,
            str(len(rs)),
            f"{pct(lat, 50):.1f}",
            f"{pct(lat, 99):.1f}",
            f"{max(lat):.1f}",
            str(errors),
        ]

    kinds = sorted({r["kind"] for r in results})
    rows = [row(k, [r for r in results if r["kind"] == k]) for k in kinds]
    rows.append(row("**all**", results))
    print_table(
        f"ack latency, {args.rate:g} req/s for {args.seconds:g} s (ms, client-side)",
        rows,
        ["request", "n", "p50", "p99", "max", "errors"],
    )
    window = 5.0
    planned = [n / args.rate for n in range(len(results))]
    windows = []
    for w in range(int(math.ceil(args.seconds / window))):
        rs = [
            r for r, at in zip(results, planned, strict=True) if w * window <= at < (w + 1) * window
        ]
        if rs:
            windows.append(row(f"{w * window:g}-{(w + 1) * window:g} s", rs))
    print_table(
        "ack latency over time (ms, by planned send time)",
        windows,
        ["window", "n", "p50", "p99", "max", "errors"],
    )
    from_plan = [r["from_plan"] * 1000 for r in results]
    lag = [r["send_lag"] * 1000 for r in results]
    errors = [r for r in results if r.get("status") != 200]
    print_table(
        "load health",
        [
            ["achieved rate (req/s)", f"{len(results) / args.seconds:.1f}"],
            ["latency from planned send time p99 / max (ms)", fmt2(from_plan)],
            ["send lag behind plan p99 / max (ms)", fmt2(lag)],
            ["load generator wall time (s)", f"{wall:.1f}"],
            ["bot CPU during the load (% of one core)", f"{100 * sampler.cpu_share:.0f}"],
            ["bot RSS peak during the load (MB)", f"{sampler.rss_peak_kb / 1024:.0f}"],
            ["errors (non-200 or exception)", str(len(errors))],
        ],
        ["what", "value"],
    )
    for r in errors[:5]:
        print(f"  error: {r['kind']}: status {r['status']} {r['error']}")
    all_lat = [r["latency"] * 1000 for r in results]
    dump_json(
        args.json,
        {
            "rate": args.rate,
            "seconds": args.seconds,
            "n": len(results),
            "p50_ms": pct(all_lat, 50),
            "p99_ms": pct(all_lat, 99),
            "max_ms": max(all_lat),
            "errors": len(errors),
            "bot_cpu_share": sampler.cpu_share,
            "cards_drained": f"{drained}/{load_targets}",
            "drain_s": drain,
        },
    )


def fmt2(values: list[float]) -> str:
    return f"{pct(values, 99):.1f} / {max(values):.1f}"


if __name__ == "__main__":
    sys.exit(main())
