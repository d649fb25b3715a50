"""Polling that follows the ETA, measured: the bot against boto3's waiter on the same restores.

    .venv/bin/python bench/eta_polling.py [--restores 50] [--spread 0.05] [--history 5]
                                          [--fresh] [--seed 7] [--json FILE]
    .venv/bin/python bench/eta_polling.py --cpu [--restores 50 [500 ...]] [--compress 10]
                                          [--doc docs/performance.md] ...

--tables source tables have typical restore durations of 20, 30, 40, ... minutes. A restore
of table i lasts typical_i x lognormal(0, --spread), drawn with a fixed seed.

Notice lag and DescribeTable calls (the default): on a virtual clock, in uncompressed time
(bench/virtual_tracking.py). The shipped Workflow, its SQLite store, bot/polling.py and the
real Tracker.wake_at decide when the bot looks; botocore's own TableExists waiter (its model's
Delay and MaxAttempts; wait() called again after a WaiterError) decides when the waiter looks.
First --history restores of every table through the bot (its history; skipped with
--fresh), then --restores restores, round-robin over the tables, approved at one instant;
restore k of the waiter starts at the same instant and lasts the same time. Load on the
machine cannot move these numbers: nothing waits on a real clock.
  Notice lag: the check that sees ACTIVE, minus the instant the table turns ACTIVE (for the
  bot, announcing then costs ~0.1 s more, measured by bench/fifty_restores.py).
  DescribeTable calls per restore-hour: a contender's calls on its new tables from the
  restore call to its notice, over the summed CREATING time.

Bot CPU (--cpu): the real bot, `python -m bot serve`, tracking --restores restores in real
time compressed by --compress (C): every duration and interval divided by C
(PITR_BOT_POLL_SECONDS 10/C, _MIN_ 2/C, _MAX_ 60/C), history built through it first (signed
/pitr-restore and Approve), then the measured restores approved at once. CPU is the bot
process's utime+stime from the approvals to the last ACTIVE broadcast, over that wall time;
compression makes the bot do C times the work per second, so the real-time estimate is the
measured share / C. AWS (and the bot) run at most 50 restores at once per account, so more than
50 restores are spread over ceil(N / 50) accounts: policy `accounts:` acc0, acc1, ... (a role
each in its own moto account), --tables sources in each, restores requested as `accN:SourceI`.
--doc puts the result row into that file's bot CPU table (the row of the same restore count
is replaced). With several counts (`--cpu --restores 50 500`) the runs go one after the
other in this one invocation, each with a fresh bot, and a last table compares them: CPU per
restore in flight (process CPU seconds / N, and % of a core at real time / N) and its ratio to
the first count's, and CPU per DescribeTable call (the planner may poll a little more or less
per restore in one draw of durations than in another: per call is the work per unit).
--py-spy PREFIX samples the bot with py-spy over the largest run's measured window and prints
where its samples fall (inclusive and own, per function).
Nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (  # noqa: E402
    ProcSampler,
    TimedSim,
    account_id,
    accounts_for,
    accounts_policy,
    approve_cards,
    dump_json,
    median,
    print_machine,
    print_table,
    request_cards,
    start_bot,
    start_fake_slack,
    wait_broadcasts,
)
from virtual_tracking import VirtualBot, waiter_config, waiter_run  # noqa: E402

from bot.polling import PollLimits  # noqa: E402

CPU_HEADER = "| run | announced | CPU measured"
TARGET_RE = re.compile(r"(?:Hist\d{2}x\d{2}|BotRestore\d{3})")
# The settings' defaults.
LIMITS = PollLimits(poll_seconds=10, min_seconds=2, max_seconds=60, budget_seconds=20)


def plan(args: argparse.Namespace, scale: float = 1.0, accounts: int = 1):
    """Sources, history and measured (source, target, seconds) jobs, durations divided by
    `scale`; the same draws for the virtual and the real run. With several accounts every
    account has --tables sources (`accN:SourceI`) and restore k runs in account k % accounts,
    so each account holds restores / accounts of them."""
    rng = random.Random(args.seed)
    prefixes = [f"acc{a}:" for a in range(accounts)] if accounts > 1 else [""]
    sources = [f"{p}Source{i}" for p in prefixes for i in range(args.tables)]
    typical = {s: (20 + 10 * (n % args.tables)) * 60 for n, s in enumerate(sources)}

    def draw(source: str) -> float:
        return typical[source] * rng.lognormvariate(0, args.spread) / scale

    def source_of(k: int) -> str:
        return sources[(k % accounts) * args.tables + (k // accounts) % args.tables]

    measured = [(source_of(k), f"BotRestore{k:03d}") for k in range(args.restores)]
    measured_jobs = [(s, t, draw(s)) for s, t in measured]
    history = (
        []
        if args.fresh
        else [
            (s, f"Hist{i:02d}x{k:02d}", draw(s))
            for i, s in enumerate(sources)
            for k in range(args.history)
        ]
    )
    return sources, history, measured_jobs


def virtual(args: argparse.Namespace, quiet: bool = False) -> dict[str, float]:
    sources, history, jobs = plan(args, accounts=accounts_for(args.restores))
    sizes = None
    if args.borrow:
        # A table never restored: its typical time lies between the others' (35 min when they
        # are 20/30/40), sizes grow as time squared (a restore ~ sqrt(size), any power would
        # do); its restores get a borrowed estimate fitted on the others' history.
        rng = random.Random(args.seed + 1000)
        sizes = {s: int(1e9 * (20 + 10 * (n % args.tables)) ** 2) for n, s in enumerate(sources)}
        sizes["NewTable"] = int(1e9 * 35**2)
        jobs = [("NewTable", t, 35 * 60 * rng.lognormvariate(0, args.spread)) for _, t, _ in jobs]
    bot = VirtualBot(LIMITS)
    try:
        if history:
            bot.run(history, sizes)
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        if profiler:
            bot.run_polls_inline()
        cpu_before = time.process_time()
        if profiler:
            profiler.enable()
        ours = bot.run(jobs, sizes)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        tracking_cpu = time.process_time() - cpu_before
    finally:
        bot.close()
    theirs = [waiter_run(seconds) for _, _, seconds in jobs]
    hours = sum(seconds for _, _, seconds in jobs) / 3600
    bot_lag = [o.lag for o in ours.values()]
    waiter_lag = [o.lag for o in theirs]
    bot_rate = sum(o.calls for o in ours.values()) / hours
    waiter_rate = sum(o.calls for o in theirs) / hours
    config = waiter_config()
    mode = "no history" if args.fresh else f"history: {args.history} earlier restores per table"
    if args.borrow:
        mode += ", measured on a table without history (borrowed estimate)"
    numbers = {
        "tracking_cpu_seconds": tracking_cpu,
        "bot_lag_median": statistics.median(bot_lag),
        "waiter_lag_median": statistics.median(waiter_lag),
        "lag_ratio": statistics.median(bot_lag) / statistics.median(waiter_lag),
        "bot_calls_per_restore_hour": bot_rate,
        "waiter_calls_per_restore_hour": waiter_rate,
        "calls_ratio": bot_rate / waiter_rate,
    }
    if quiet:
        return numbers
    print_table(
        f"{args.restores} restores, {mode}, spread {args.spread:.0%}, virtual clock, real time",
        [
            [
                "notice lag median (s)",
                f"{statistics.median(bot_lag):.1f}",
                f"{statistics.median(waiter_lag):.1f}",
                f"{statistics.median(bot_lag) / statistics.median(waiter_lag):.2f}",
            ],
            ["notice lag max (s)", f"{max(bot_lag):.1f}", f"{max(waiter_lag):.1f}", ""],
            [
                "DescribeTable calls per restore-hour",
                f"{bot_rate:.0f}",
                f"{waiter_rate:.0f}",
                f"{bot_rate / waiter_rate:.2f}",
            ],
            [
                "DescribeTable calls per restore, median",
                f"{statistics.median(o.calls for o in ours.values()):.0f}",
                f"{statistics.median(o.calls for o in theirs):.0f}",
                "",
            ],
        ],
        [
            "",
            f"bot (poll {LIMITS.poll_seconds:g} s, min {LIMITS.min_seconds:g}, "
            f"max {LIMITS.max_seconds:g})",
            f"waiter (Delay {config.delay} s, MaxAttempts {config.max_attempts}, re-armed)",
            "bot / waiter",
        ],
    )
    print(
        f"bot CPU tracking the {len(jobs)} restores (virtual clock, this process): "
        f"{tracking_cpu:.2f} s, {1000 * tracking_cpu / len(jobs):.1f} ms per restore"
    )
    return {
        "tracking_cpu_seconds": tracking_cpu,
        "bot_lag_median": statistics.median(bot_lag),
        "waiter_lag_median": statistics.median(waiter_lag),
        "lag_ratio": statistics.median(bot_lag) / statistics.median(waiter_lag),
        "bot_calls_per_restore_hour": bot_rate,
        "waiter_calls_per_restore_hour": waiter_rate,
        "calls_ratio": bot_rate / waiter_rate,
    }


def sweep(args: argparse.Namespace) -> dict[str, float]:
    """--sweep: the virtual run for --seeds seeds at each spread; median and worst ratios."""
    rows, numbers = [], {}
    for spread in args.spreads:
        runs = []
        for seed in range(1, args.seeds + 1):
            one = argparse.Namespace(**{**vars(args), "spread": spread, "seed": seed})
            runs.append(virtual(one, quiet=True))
        lag = [r["lag_ratio"] for r in runs]
        calls = [r["calls_ratio"] for r in runs]
        rows.append(
            [
                f"{spread:.0%}",
                f"{statistics.median(lag):.2f} / {max(lag):.2f}",
                f"{statistics.median(calls):.2f} / {max(calls):.2f}",
            ]
        )
        numbers[f"spread_{spread:.2f}"] = {"lag": lag, "calls": calls}
        print(" | ".join(rows[-1]), flush=True)
    mode = "no history" if args.fresh else f"{args.history} earlier restores per table"
    mode += ", a table without history (borrowed)" if args.borrow else ""
    print_table(
        f"{args.restores} restores, {mode}, seeds 1–{args.seeds} per spread, virtual clock",
        rows,
        ["spread", "notice lag bot/waiter, median / worst", "calls bot/waiter, median / worst"],
    )
    return numbers


def cpu(args: argparse.Namespace) -> dict[str, float]:
    c = args.compress
    load_before = os.getloadavg()[0]
    started = time.gmtime()
    print_machine()
    accounts = accounts_for(args.restores)
    sources, history, jobs = plan(args, scale=c, accounts=accounts)
    sim = TimedSim().start()
    for s in sources:
        alias, _, name = s.rpartition(":")
        if alias:
            sim.create_table_in(account_id(int(alias.removeprefix("acc"))), name, items=5)
        else:
            sim.create_table(name, pitr=True, items=5)
    for _, target, seconds in [*history, *jobs]:
        sim.creating_for[target] = seconds
    fake = start_fake_slack()
    env = {
        "PITR_BOT_POLL_MIN_SECONDS": f"{LIMITS.min_seconds / c:.4f}",
        "PITR_BOT_POLL_MAX_SECONDS": f"{LIMITS.max_seconds / c:.4f}",
        # The planner's budget is the waiter's Delay: compressed too, so the bot spends at
        # compressed scale what it would spend at real scale (issue 22).
        "PITR_BOT_POLL_BUDGET_SECONDS": f"{LIMITS.budget_seconds / c:.4f}",
        # One bench user asks for every restore, all waiting for approval at once: above the
        # defaults' caps on open requests (10 per person, 100 in all).
        "PITR_BOT_MAX_OPEN_REQUESTS_PER_USER": "10000",
        "PITR_BOT_MAX_OPEN_REQUESTS": "100000",
    }
    bot = start_bot(
        fake,
        sim,
        poll_seconds=round(LIMITS.poll_seconds / c, 4),
        extra_env=env,
        policy=accounts_policy(accounts) if accounts > 1 else None,
    )
    longest = max(sim.creating_for.values())
    try:
        bot.wait_healthy()
        if history:
            # A loaded box (load 10-18 on two cores) posts 15 cards in more than 2 minutes.
            wait = max(300, 3 * len(history))
            _, cards = request_cards(bot, fake, [(s, t) for s, t, _ in history], TARGET_RE, wait)
            approve_cards(bot, fake, cards)
            wait_broadcasts(fake, set(cards), TARGET_RE, timeout=longest * 2 + 120)
            print(f"history: {len(history)} restores recorded by the bot")
        timeout = max(300, 3 * len(jobs))
        _, cards = request_cards(bot, fake, [(s, t) for s, t, _ in jobs], TARGET_RE, timeout)
        sampler = ProcSampler(bot.pid, interval=0.5).start()
        spy = start_spy(args, bot.pid, len(jobs))
        approve_cards(bot, fake, cards, workers=min(len(cards), 50))
        told = wait_broadcasts(fake, set(cards), TARGET_RE, timeout=longest * 2 + 300)
        sampler.stop()
        stop_spy(spy)
        placed = sim.tables_per_account(accounts, TARGET_RE) if accounts > 1 else ""
    finally:
        bot.stop()
        fake.stop()
        sim.stop()
    load_after = os.getloadavg()[0]
    announced = len(told.keys() & set(cards))
    lag = [(told[t] - sim.active_at(t)) * c for _, t, _ in jobs]
    # Calls: the bot's on each new table up to its notice; the waiter's at real scale (the
    # virtual waiter on the uncompressed duration): every poll setting was compressed alike.
    bot_calls = sum(
        1 for at, table in sim.describes if table in told and at <= told[table] and table in cards
    )
    real = [seconds * c for _, _, seconds in jobs]
    waiter_calls_total = sum(waiter_run(seconds).calls for seconds in real)
    calls_ratio = bot_calls / waiter_calls_total
    mode = "no history" if args.fresh else f"history: {args.history} earlier restores per table"
    where = f"{accounts} accounts × {len(jobs) // accounts}" if accounts > 1 else "one account"
    print_table(
        f"bot CPU tracking {len(jobs)} restores ({where}), {mode}, time compressed {c:g}x",
        [
            ["announced", f"{announced}/{len(jobs)}"],
            *([["restored tables per account", placed]] if placed else []),
            ["load average (1 min), before / after", f"{load_before:.1f} / {load_after:.1f}"],
            [
                "measured (compressed)",
                f"{sampler.cpu_share:.1%} of a core over {sampler.wall:.0f} s",
            ],
            ["real-time estimate (/ C)", f"{sampler.cpu_share / c:.2%} of a core"],
            [
                "notice lag median (x C, load-dependent: see the virtual run)",
                f"{median(lag):.1f} s",
            ],
            [
                "DescribeTable calls, bot / waiter (real scale, poll settings ÷ C)",
                f"{bot_calls} / {waiter_calls_total} = {calls_ratio:.2f}",
            ],
        ],
        ["", "value"],
    )
    if args.doc:
        key = f"{len(jobs)} restores{' with history' if history else ', no history'}, {where}"
        run = (
            f"{key}, {time.strftime('%Y-%m-%d %H:%M', started)}–"
            f"{time.strftime('%H:%M', time.gmtime())} UTC, "
            f"load average {load_before:.1f} before / {load_after:.1f} after"
        )
        within = sampler.cpu_share / c <= 0.05
        goal = (
            ("≤ 5 %: **met**" if within else "≤ 5 %: **missed**")
            if len(jobs) <= 50
            else ("report only" + (" (within 5 %)" if within else " (over 5 %)"))
        )
        record_cpu_row(
            Path(args.doc),
            key,
            [
                run,
                f"{announced} / {len(jobs)}",
                f"{sampler.cpu_share * 100:.1f} % of a core over {sampler.wall:.0f} s",
                f"**{sampler.cpu_share / c * 100:.2f} %** of a core",
                goal,
            ],
        )
    return {
        "restores": len(jobs),
        "cpu_seconds": sampler.cpu_used,
        "bot_calls": bot_calls,
        "accounts": accounts,
        "load_before": load_before,
        "load_after": load_after,
        "compress": c,
        "cpu_share_measured": sampler.cpu_share,
        "cpu_share_real_estimate": sampler.cpu_share / c,
        "wall_seconds": sampler.wall,
        "calls_ratio": calls_ratio,
        "lag_median_scaled": median(lag),
    }


def start_spy(args: argparse.Namespace, pid: int, restores: int) -> tuple | None:
    """--py-spy FILE: sample the bot process (all threads, 40 Hz) over exactly the measured
    window of the largest run."""
    if not args.py_spy or restores != max(args.all_restores):
        return None
    out = Path(f"{args.py_spy}.{restores}.txt")
    command = [os.environ.get("PY_SPY", "py-spy"), "record", "-p", str(pid), "-r", "40"]
    command += ["-f", "raw", "-o", str(out), "--nonblocking"]
    log = out.with_suffix(".log").open("w", encoding="utf-8")  # py-spy's own complaints
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), out


def stop_spy(spy: tuple | None) -> None:
    if spy is None:
        return
    process, out = spy
    process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    process.wait(timeout=60)
    print_spy_shares(out)


# py-spy also samples threads blocked inside a C call; a sample whose innermost frame is one of
# these waits (a socket read, a condition or queue wait, a sleep) is waiting, not working.
WAITING = re.compile(
    r"^(SocketIO\.readinto|Condition\.wait|Event\.wait|_worker|poll_wait_for_socket"
    r"|select|sleep|.*\.accept|_recv|wait) "
)


def print_spy_shares(path: Path, top: int = 15) -> None:
    """Inclusive and own shares per function of the samples not waiting (WAITING), from
    py-spy's raw (collapsed) output: one line per distinct stack, frames joined by ';', then
    its sample count."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = working = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        if WAITING.match(frames[-1]):
            continue
        working += n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    if not working:
        print(f"py-spy: no samples in {path}")
        return
    for title, shares in (("inclusive", inclusive), ("own", own)):
        best = sorted(shares.items(), key=lambda kv: -kv[1])[:top]
        rows = [[frame, f"{n / working:.1%}"] for frame, n in best]
        what = f"{working} of {total} samples not waiting"
        print_table(f"py-spy {title} shares, {what} ({path})", rows, ["frame", "share"])


def cpu_runs(args: argparse.Namespace) -> dict[str, object]:
    """--cpu with several --restores counts: one run each, in this invocation, then CPU per
    restore in flight side by side (the goal: flat within 20 % from the first count)."""
    runs = [cpu(argparse.Namespace(**{**vars(args), "restores": n})) for n in args.restores]
    base = runs[0]
    rows = []
    for run in runs:
        n = run["restores"]
        per = run["cpu_seconds"] / n
        rows.append(
            [
                f"{n} ({run['accounts']} account{'s' if run['accounts'] > 1 else ''})",
                f"{run['cpu_share_real_estimate']:.2%}",
                f"{run['cpu_seconds']:.1f} s over {run['wall_seconds']:.0f} s",
                f"{1000 * per:.1f} ms",
                f"{per / (base['cpu_seconds'] / base['restores']):.2f}",
                f"{1000 * run['cpu_seconds'] / max(run['bot_calls'], 1):.2f} ms",
                f"{run['cpu_share_real_estimate'] / n:.4%}",
                f"{run['load_before']:.1f} / {run['load_after']:.1f}",
            ]
        )
    print_table(
        f"CPU per restore in flight, one invocation, time compressed {args.compress:g}x",
        rows,
        [
            "restores in flight",
            "% of a core (real time)",
            "process CPU (compressed run)",
            "CPU per restore",
            f"ratio to {base['restores']}",
            "CPU per DescribeTable call",
            "% of a core per restore",
            "load (1 min) before / after",
        ],
    )
    return {"runs": runs}


def record_cpu_row(doc: Path, key: str, cells: list[str]) -> None:
    """Put a row into the CPU table of `doc` (the one headed CPU_HEADER): replace the row whose
    run starts with `key` (count, history, accounts; rows of other layouts stay), else add it
    at the end of the table. The rest of the file stays as it is."""
    lines = doc.read_text(encoding="utf-8").split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(CPU_HEADER))
    end = start + 2  # header, separator, then the rows
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    row = "| " + " | ".join(cells) + " |"
    rows = range(start + 2, end)
    at = next((i for i in rows if lines[i].startswith(f"| {key}, ")), None)
    if at is None:
        lines.insert(end, row)
    else:
        lines[at] = row
    doc.write_text("\n".join(lines), encoding="utf-8")
    print(f"\nrecorded in {doc}: {row}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--restores",
        type=int,
        nargs="+",
        default=[50],
        help="measured restores (50); --cpu takes several (50 500: one run each)",
    )
    parser.add_argument("--tables", type=int, default=3, help="source tables (3)")
    parser.add_argument("--history", type=int, default=5, help="earlier restores per table (5)")
    parser.add_argument("--spread", type=float, default=0.05, help="lognormal sigma (0.05)")
    parser.add_argument("--fresh", action="store_true", help="no history: plain polling")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cpu", action="store_true", help="real bot, compressed: CPU only")
    parser.add_argument("--compress", type=float, default=10, help="--cpu time compression")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--borrow", action="store_true", help="virtual: a new table, borrowed")
    parser.add_argument("--sweep", action="store_true", help="virtual: spreads 5-30 %% x seeds")
    parser.add_argument("--seeds", type=int, default=10, help="--sweep: seeds per spread (10)")
    parser.add_argument(
        "--spreads",
        type=lambda text: tuple(float(x) for x in text.split(",")),
        default=(0.05, 0.10, 0.20, 0.30),
        help="--sweep: spreads (0.05,0.10,0.20,0.30); one per process runs them in parallel",
    )
    parser.add_argument("--profile", metavar="FILE", help="virtual: cProfile of the bot's run")
    parser.add_argument(
        "--doc", metavar="FILE", help="--cpu: put the result row into FILE's CPU table"
    )
    parser.add_argument(
        "--py-spy",
        metavar="PREFIX",
        help="--cpu: py-spy the largest run's measured window into PREFIX.N.txt ($PY_SPY)",
    )
    args = parser.parse_args()
    args.all_restores = list(args.restores)
    if args.cpu and len(args.restores) > 1:
        numbers = cpu_runs(args)
    else:
        if len(args.restores) > 1:
            parser.error("several --restores counts only with --cpu")
        args.restores = args.restores[0]
        numbers = cpu(args) if args.cpu else sweep(args) if args.sweep else virtual(args)
    dump_json(
        args.json,
        {"restores": args.restores, "fresh": args.fresh, "spread": args.spread, **numbers},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
