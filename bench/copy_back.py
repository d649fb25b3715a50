"""Item recovery: compare a restored table with the live one, and copy lost items back.

    .venv/bin/python bench/copy_back.py [--items 100000 300000] [--segments 4] [--workers 8]

Same moto server (ThreadedMotoServer, reached directly: no proxy), same run, one size after the
other. Both scanning contenders use the same Scan `Limit` (`--page-limit`, 1000, the engine's
default: it bounds the memory a page takes). For each size N the restored table holds N items
(~200 bytes each); live holds the same minus `--missing` (5 %) of them, with `--changed` (1 %)
changed. Every contender runs in its own child process (so its peak RSS is its own, not
moto's) with a client from the gateway (`bot.pitr.PitrService().client`, adaptive retries):

- raw scan: a plain parallel Scan of both tables (segments x 2 threads), items thrown away: the
  limit, since the comparison must read both;
- compare: `bot.items.engine.ItemCompare` (unpaced) into an on-disk SQLite job file;
- naive: the 3 a.m. script: scan the restored table, GetItem each key in live, one thread
  (stopped after `--naive-seconds`, rate over what it did);
- copy back: `ItemWriter` (conditional PutItem, unpaced, `--workers` threads) of the missing
  items of the first size, against raw parallel unconditional PutItem of the same items into an
  empty table with as many threads.

Nothing here asserts a timing; it prints Markdown tables for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import REPO, AwsSimulator, machine, median  # noqa: E402

RESTORED, LIVE, RAW = "bench-restored", "bench-live", "bench-raw-target"
NOTE = "x" * 80


def item(i: int, changed: bool = False) -> dict:
    return {
        "pk": {"S": f"order-{i:08d}"},
        "status": {"S": "refunded" if changed else "paid"},
        "total": {"N": str(i % 9973)},
        "tags": {"SS": ["a", "b", "c"]},
        "note": {"S": NOTE},
    }


# -- children ----------------------------------------------------------------------------------
def child(mode: str, args: list[str]) -> dict:
    from bot.pitr import PitrService  # the gateway: the only place a client is made

    client = PitrService().client
    t0 = time.monotonic()
    out: dict = {}
    if mode == "raw_scan":
        segments, limit = int(args[0]), int(args[1])
        count = [0]
        lock = threading.Lock()

        def scan(table: str, segment: int) -> None:
            kwargs = {
                "TableName": table,
                "Segment": segment,
                "TotalSegments": segments,
                "Limit": limit,
            }
            while True:
                resp = client.scan(**kwargs)
                with lock:
                    count[0] += len(resp["Items"])
                if "LastEvaluatedKey" not in resp:
                    return
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

        tasks = [(t, s) for t in (RESTORED, LIVE) for s in range(segments)]
        with ThreadPoolExecutor(len(tasks)) as pool:
            list(pool.map(lambda task: scan(*task), tasks))
        out["items"] = count[0]
    elif mode == "compare":
        from bot.items.engine import ItemCompare
        from bot.items.jobfile import JobFile

        job = JobFile(args[1])
        compare = ItemCompare(
            client,
            job,
            segments=int(args[0]),
            page_limit=int(args[2]),
            read_units_per_second=None,
        )
        counts = compare.run(RESTORED, LIVE)
        out["counts"] = counts.__dict__
        out["items"] = 2 * counts.unchanged + 2 * counts.changed + counts.missing + counts.added
    elif mode == "naive":
        limit, page = float(args[0]), int(args[1])
        done = 0
        kwargs: dict = {"TableName": RESTORED, "Limit": page}
        while time.monotonic() - t0 < limit:
            resp = client.scan(**kwargs)
            for it in resp["Items"]:
                client.get_item(TableName=LIVE, Key={"pk": it["pk"]})
                done += 1
                if time.monotonic() - t0 >= limit:
                    break
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        out["items"] = 2 * done  # each compared key read once on each side
    elif mode == "copy_back":
        from bot.items.engine import ItemWriter
        from bot.items.jobfile import JobFile

        job = JobFile(args[1])
        t0 = time.monotonic()  # the plan was made before; time the writes only
        counts = ItemWriter(client, job, workers=int(args[0]), write_units_per_second=None).run()
        out["counts"] = counts.__dict__
        out["items"] = counts.written
    elif mode in ("raw_put", "raw_put_cond"):
        workers, n, first = int(args[0]), int(args[1]), int(args[2])
        # The copy back's own condition for a missing item, without the engine around it.
        cond = (
            {
                "ConditionExpression": "attribute_not_exists(#k)",
                "ExpressionAttributeNames": {"#k": "pk"},
            }
            if mode == "raw_put_cond"
            else {}
        )

        def put(i: int) -> None:
            client.put_item(TableName=RAW, Item=item(i), **cond)

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(put, range(first, first + n)))
        out["items"] = n
    out["seconds"] = time.monotonic() - t0
    out["maxrss_kb"] = peak_rss_kb()
    return out


def peak_rss_kb() -> int:
    """This process's peak RSS since exec (VmHWM). Not ru_maxrss: on Linux that keeps the
    high-water mark of the process before execve, i.e. of the forked parent holding moto."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_child(sim: AwsSimulator, mode: str, *args: object) -> dict:
    """Run one contender in a fresh interpreter; its JSON result, with the load around it."""
    load_before = os.getloadavg()[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(sim.env())
    env["AWS_ENDPOINT_URL"] = sim.moto_url  # straight to moto: the proxy is not measured
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--child", mode, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load"] = (load_before, os.getloadavg()[0])
    out["rate"] = out["items"] / out["seconds"]
    return out


# -- setup ---------------------------------------------------------------------------------------
def create(client, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def moto_table(name: str):
    """The table inside the moto server this process hosts (set-up only, never measured)."""
    from moto.dynamodb.models import dynamodb_backends

    for account in list(dynamodb_backends.keys()):
        tables = dynamodb_backends[account]["us-east-1"].tables
        if name in tables:
            return tables[name]
    raise LookupError(name)


def load(table: str, items) -> int:
    """Put items straight into moto's model: 600,000 puts over HTTP would take longer than
    every measurement together, and loading is not what is measured."""
    target = moto_table(table)
    count = 0
    for it in items:
        target.put_item(it)
        count += 1
    return count


def delete_keys(table: str, keys: list[str]) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    target = moto_table(table)
    for key in keys:
        target.delete_item(DynamoType({"S": key}), None)


# -- numbers -------------------------------------------------------------------------------------
def spread(values: list[float], fmt: str = ",.0f") -> str:
    """median (min–max) of a contender's rounds."""
    return f"{median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def verdict(value: float, goal: float, lower_is_better: bool = False) -> str:
    ok = value <= goal if lower_is_better else value >= goal
    return "met" if ok else "**missed**"


class Runs:
    """Every contender run, by (size, contender), in the order they ran."""

    def __init__(self) -> None:
        self.by: dict[tuple[int, str], list[dict]] = {}
        self.loads: list[float] = []

    def add(self, n: int, name: str, result: dict) -> dict:
        self.by.setdefault((n, name), []).append(result)
        self.loads.extend(result["load"])
        print(
            f"{n:,} {name}: {result['items']:,} items in {result['seconds']:.1f} s"
            f" = {result['rate']:,.0f}/s, peak RSS {result['maxrss_kb'] / 1024:.0f} MB,"
            f" load {result['load'][0]:.1f}->{result['load'][1]:.1f}",
            flush=True,
        )
        return result

    def rates(self, n: int, name: str) -> list[float]:
        return [r["rate"] for r in self.by.get((n, name), [])]

    def ratios(self, n: int, name: str, base: str) -> list[float]:
        """Round by round: a contender's rate over the base's rate in the same round."""
        pairs = zip(self.by.get((n, name), []), self.by.get((n, base), []), strict=False)
        return [a["rate"] / b["rate"] for a, b in pairs]

    def rss_mb(self, n: int, name: str) -> list[float]:
        return [r["maxrss_kb"] / 1024 for r in self.by.get((n, name), [])]


RAW_SCAN, COMPARE, NAIVE = "raw parallel Scan of both", "compare (ItemCompare)", "naive script"
RAW_PUT, COPY = "raw parallel PutItem", "copy back (ItemWriter)"
RAW_COND = "raw parallel PutItem, with the copy back's condition"


# -- the run ---------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument(
        "--rounds",
        type=int,
        nargs="+",
        default=[3, 1],
        help="raw scan/compare rounds per size (3 1): the last repeats",
    )
    parser.add_argument("--write-rounds", type=int, default=3, help="copy-back rounds (3)")
    parser.add_argument("--segments", type=int, default=4, help="Scan segments per table (4)")
    parser.add_argument("--page-limit", type=int, default=1000, help="Scan Limit, both (1000)")
    parser.add_argument("--workers", type=int, default=8, help="write threads (8)")
    parser.add_argument("--missing", type=float, default=0.05, help="share missing (0.05)")
    parser.add_argument("--changed", type=float, default=0.01, help="share changed (0.01)")
    parser.add_argument("--naive-seconds", type=float, default=20.0)
    parser.add_argument("--doc", help="also write the section into this Markdown file")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        profile_dir = os.environ.get("BENCH_PROFILE")  # e.g. BENCH_PROFILE=/tmp/prof
        if profile_dir:
            import cProfile

            profiler = cProfile.Profile()
            result = profiler.runcall(child, args.child[0], args.child[1:])
            profiler.dump_stats(f"{profile_dir}/{args.child[0]}-{os.getpid()}.prof")
        else:
            result = child(args.child[0], args.child[1:])
        print(json.dumps(result))
        return 0

    import moto_fastscan  # not in the children: moto's import would count in their RSS

    moto_fastscan.install()  # the moto server below runs in this process: one moto for all
    info = machine()
    for key, value in info.items():
        print(f"{key}: {value}", flush=True)
    runs = Runs()
    counts: dict[int, dict] = {}
    write_counts: dict = {}
    started = time.monotonic()
    with AwsSimulator() as sim, tempfile.TemporaryDirectory(prefix="pitr-items-") as tmp:
        for size_index, n in enumerate(args.items):
            sim.reset()
            client = sim.client(direct=True)
            for table in (RESTORED, LIVE, RAW):
                create(client, table)
            missing_every = round(1 / args.missing)
            changed_every = round(1 / args.changed)
            t0 = time.monotonic()
            load(RESTORED, (item(i) for i in range(n)))
            load(
                LIVE,
                (
                    item(i, changed=i % changed_every == 1)
                    for i in range(n)
                    if i % missing_every != 0
                ),
            )
            for table in (RESTORED, LIVE):
                moto_fastscan.warm(moto_table(table), args.segments)
            print(f"\nloaded {n:,} items per table in {time.monotonic() - t0:.0f} s", flush=True)
            rounds = args.rounds[min(size_index, len(args.rounds) - 1)]
            first_job = None
            for r in range(rounds):
                # A B, then B A: a trend in the machine's load hits both contenders alike.
                order = (RAW_SCAN, COMPARE) if r % 2 == 0 else (COMPARE, RAW_SCAN)
                for name in order:
                    if name == RAW_SCAN:
                        runs.add(
                            n, name, run_child(sim, "raw_scan", args.segments, args.page_limit)
                        )
                    else:
                        path = Path(tmp) / f"job-{n}-{r}.sqlite"
                        res = runs.add(
                            n, name, run_child(sim, "compare", args.segments, path, args.page_limit)
                        )
                        counts[n] = res["counts"]
                        if first_job is None:
                            first_job = path
                        else:
                            path.unlink()
            print(f"compare counts at {n:,}: {counts[n]}", flush=True)
            if size_index > 0:
                continue
            runs.add(n, NAIVE, run_child(sim, "naive", args.naive_seconds, args.page_limit))
            # Copy back the missing items, against raw PutItem of the same items into an empty
            # table; between rounds the copied items leave live again and RAW is made anew.
            from bot.items.jobfile import JobFile

            for r in range(args.write_rounds):
                path = Path(tmp) / f"copy-{r}.sqlite"
                path.write_bytes(first_job.read_bytes())
                job = JobFile(path)
                planned = job.plan_copy_back()
                keys = [json.loads(k)[0]["S"] for k, _, _, _ in _planned_rows(job)]
                job.close()
                order = (RAW_PUT, COPY, RAW_COND) if r % 2 == 0 else (RAW_COND, COPY, RAW_PUT)
                for name in order:
                    if name == COPY:
                        res = runs.add(n, name, run_child(sim, "copy_back", args.workers, path))
                        write_counts = res["counts"]
                    else:
                        client.delete_table(TableName=RAW)
                        create(client, RAW)
                        mode = "raw_put" if name == RAW_PUT else "raw_put_cond"
                        runs.add(n, name, run_child(sim, mode, args.workers, planned, n))
                delete_keys(LIVE, keys)
    minutes = (time.monotonic() - started) / 60
    text = section(args, info, runs, counts, write_counts, minutes)
    print("\n" + text)
    if args.doc:
        write_section(Path(args.doc), text)
    return 0


def _planned_rows(job):
    with job._lock:  # the bench's own peek at the plan: which keys to take out of live again
        return job._db.execute("SELECT key, kind, item, expected FROM writes").fetchall()


BEGIN, END = "<!-- bench/copy_back.py: begin -->", "<!-- bench/copy_back.py: end -->"


def write_section(doc: Path, text: str) -> None:
    """Replace the text between the markers (the section this script owns)."""
    old = doc.read_text()
    head, rest = old.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def section(args, info: dict, runs: Runs, counts: dict, write_counts: dict, minutes: float) -> str:
    first, sizes = args.items[0], args.items
    loads = runs.loads or [0.0]
    out = [
        f"Measured {info['date (UTC)']} UTC on {info['cores (nproc)']} cores ({info['cpu']}),"
        f" Python {info['python']}, in {minutes:.0f} min. Machine load (1-minute load average,"
        f" read before and after every contender run): {min(loads):.1f}–{max(loads):.1f},"
        " on 2 cores shared with other sessions' work, so the absolute rates move; the ratios"
        " are taken round by round (the two contenders of a round run back to back, the order"
        " alternating A B, B A, ...), and every figure is the median (min–max) of the rounds.",
        "",
        f"Set-up: scans of {args.segments} segments per table, `Limit` {args.page_limit} for"
        f" every scanning contender; live lacks {args.missing:.0%} of the restored items and has"
        f" {args.changed:.0%} changed; copy back with {args.workers} threads, unpaced.",
        "",
    ]
    goals = []
    for n in sizes:
        ratios = runs.ratios(n, COMPARE, RAW_SCAN)
        if ratios:
            goals.append(
                [
                    f"compare rate ÷ plain parallel Scan of both, {n:,} items/table",
                    "≥ 0.8×",
                    f"{spread(ratios, '.2f')}× over {len(ratios)} round(s)",
                    verdict(median(ratios), 0.8),
                ]
            )
    naive = runs.ratios(first, COMPARE, NAIVE)
    if naive:
        goals.append(
            [
                f"compare rate ÷ naive script (Scan one, GetItem each key), {first:,}",
                "–",
                f"{naive[0]:.1f}×",
                "",
            ]
        )
    for n in sizes:
        rss = runs.rss_mb(n, COMPARE)
        if rss:
            goals.append(
                [
                    f"peak RSS of the compare process, {n:,} items/table",
                    "≤ 150 MB",
                    f"{max(rss):.0f} MB (largest of {len(rss)} run(s))",
                    verdict(max(rss), 150, lower_is_better=True),
                ]
            )
    if len(sizes) > 1 and runs.rss_mb(sizes[-1], COMPARE):
        growth = max(runs.rss_mb(sizes[-1], COMPARE)) - max(runs.rss_mb(first, COMPARE))
        goals.append(
            [
                f"RSS growth from {first:,} to {sizes[-1]:,} items/table",
                "flat",
                f"{growth:+.0f} MB",
                "met" if growth <= 10 else "**missed**",
            ]
        )
    writes = runs.ratios(first, COPY, RAW_PUT)
    if writes:
        goals.append(
            [
                "copy-back write rate ÷ raw parallel PutItem",
                "≥ 0.8×",
                f"{spread(writes, '.2f')}× over {len(writes)} round(s)",
                verdict(median(writes), 0.8),
            ]
        )
    conds = runs.ratios(first, COPY, RAW_COND)
    if conds:
        goals.append(
            [
                "copy-back write rate ÷ raw parallel PutItem with the same condition",
                "–",
                f"{spread(conds, '.2f')}× over {len(conds)} round(s)",
                "",
            ]
        )
    out += [table(["goal", "target", "result", ""], goals), ""]
    rows = []
    for n in sizes:
        for name in (RAW_SCAN, COMPARE, NAIVE, RAW_PUT, RAW_COND, COPY):
            got = runs.by.get((n, name))
            if not got:
                continue
            rows.append(
                [
                    f"{n:,}",
                    name,
                    str(len(got)),
                    f"{median([r['items'] for r in got]):,.0f}",
                    spread([r["seconds"] for r in got], ".1f"),
                    spread(runs.rates(n, name)),
                    spread(runs.rss_mb(n, name)),
                ]
            )
    out += [
        table(
            ["items/table", "contender", "runs", "items", "s", "items/s", "peak RSS MB"],
            rows,
        ),
        "",
        "Items are read items (both tables) for the scans and the compare, keys compared × 2"
        f" for the naive script (stopped after {args.naive_seconds:.0f} s), items written for"
        " the writers. Compare counts: "
        + "; ".join(f"{n:,}: {c}" for n, c in counts.items())
        + f". Copy back counts (last round): {write_counts}.",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
