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

from benchlib import REPO, AwsSimulator, print_machine, print_table  # noqa: E402

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
    elif mode == "raw_put":
        workers, n, first = int(args[0]), int(args[1]), int(args[2])

        def put(i: int) -> None:
            client.put_item(TableName=RAW, Item=item(i))

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
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- setup ---------------------------------------------------------------------------------------
def create(client, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def load(client, table: str, items) -> int:
    items = list(items)

    def batch(start: int) -> None:
        chunk = [{"PutRequest": {"Item": it}} for it in items[start : start + 25]]
        while chunk:
            resp = client.batch_write_item(RequestItems={table: chunk})
            chunk = resp.get("UnprocessedItems", {}).get(table, [])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(batch, range(0, len(items), 25)))
    return len(items)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--segments", type=int, default=4, help="Scan segments per table (4)")
    parser.add_argument("--page-limit", type=int, default=1000, help="Scan Limit, both (1000)")
    parser.add_argument("--workers", type=int, default=8, help="write threads (8)")
    parser.add_argument("--missing", type=float, default=0.05, help="share missing (0.05)")
    parser.add_argument("--changed", type=float, default=0.01, help="share changed (0.01)")
    parser.add_argument("--naive-seconds", type=float, default=20.0)
    parser.add_argument(
        "--rss-series",
        action="store_true",
        help="only the compare at each size (raw scan at the first): the RSS as tables grow",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1:])))
        return 0

    print_machine()
    read_rows, write_rows = [], []
    with AwsSimulator() as sim, tempfile.TemporaryDirectory(prefix="pitr-items-") as tmp:
        for size_index, n in enumerate(args.items):
            sim.reset()
            client = sim.client(direct=True)
            for table in (RESTORED, LIVE, RAW):
                create(client, table)
            missing_every = round(1 / args.missing)
            changed_every = round(1 / args.changed)
            t0 = time.monotonic()
            load(client, RESTORED, (item(i) for i in range(n)))
            load(
                client,
                LIVE,
                (
                    item(i, changed=i % changed_every == 1)
                    for i in range(n)
                    if i % missing_every != 0
                ),
            )
            print(f"\nloaded {n:,} + live items in {time.monotonic() - t0:.0f} s", flush=True)
            if size_index == 0 or not args.rss_series:
                raw = run_child(sim, "raw_scan", args.segments, args.page_limit)
            path = Path(tmp) / f"job-{n}.sqlite"
            cmp_ = run_child(sim, "compare", args.segments, path, args.page_limit)
            rows = [
                ("raw parallel Scan of both", raw),
                ("compare (ItemCompare -> SQLite)", cmp_),
            ]
            if size_index > 0 and args.rss_series:
                rows = rows[1:]
            if size_index == 0 and not args.rss_series:
                rows.append(
                    (
                        "naive: Scan + GetItem each",
                        run_child(sim, "naive", args.naive_seconds, args.page_limit),
                    )
                )
            for name, r in rows:
                rate = r["items"] / r["seconds"]
                print(f"{n:,} {name}: {r}", flush=True)
                read_rows.append(
                    (
                        f"{n:,}",
                        name,
                        f"{r['items']:,}",
                        f"{r['seconds']:.1f}",
                        f"{rate:,.0f}",
                        f"{rate / (raw['items'] / raw['seconds']):.2f}",
                        f"{r['maxrss_kb'] / 1024:.0f}",
                    )
                )
            print(f"compare counts at {n:,}: {cmp_['counts']}", flush=True)
            if size_index == 0 and not args.rss_series:
                from bot.items.jobfile import JobFile

                job = JobFile(path)
                planned = job.plan_copy_back()
                job.close()
                back = run_child(sim, "copy_back", args.workers, path)
                put = run_child(sim, "raw_put", args.workers, planned, n)
                for name, r in (("raw parallel PutItem", put), ("copy back (ItemWriter)", back)):
                    rate = r["items"] / r["seconds"]
                    print(f"{n:,} {name}: {r}", flush=True)
                    write_rows.append(
                        (
                            f"{n:,}",
                            name,
                            f"{r['items']:,}",
                            f"{r['seconds']:.1f}",
                            f"{rate:,.0f}",
                            f"{rate / (put['items'] / put['seconds']):.2f}",
                        )
                    )
                print(f"copy back counts: {back['counts']}", flush=True)
    print_table(
        "compare: items read per second (both tables), peak RSS of the child",
        read_rows,
        ["items/table", "contender", "items read", "s", "items/s", "x raw scan", "peak RSS MB"],
    )
    if write_rows:
        print_table(
            f"copy back: {args.workers} threads, unpaced",
            write_rows,
            ["items/table", "contender", "items written", "s", "items/s", "x raw PutItem"],
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
