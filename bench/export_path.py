"""The export path (issue 19) against the restore-and-scan path: time from the moment the data
is there (the export COMPLETED / the restored table ACTIVE) to the compared counts, and the
reading process's peak RSS.

    .venv/bin/python bench/export_path.py [--scan-sizes 10000] [--rounds 1]

- export path: `ExportGateway` (manifest-summary -> manifest-files -> each data file, streamed
  from moto's S3) merged into an `ExportIndex` job file, counts, diff file. The table is never
  read, so the export files are generated directly (as the simulator writes them) with the same
  1,000 changed items (60 % changed, 25 % deleted, 15 % added) whatever the table's size (keys
  drawn across the table), then 100,000 changed items.
- scan path: `ItemCompare` (unpaced) of a restored and a live table of N items in moto, for the
  sizes asked (default 10,000, 100,000 and 1,000,000: all measured). The tables are loaded
  straight into moto's model and moto's Scan is made O(page) by `moto_fastscan` (as
  `bench/copy_back.py` does): loading and moto's quadratic Scan are not what is measured.

Both children import their modules and make their clients before the clock starts: a running
bot has them already.

Each contender runs in its own child process (its peak RSS is its own). Nothing asserts a
timing; it prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import REPO, AwsSimulator, machine  # noqa: E402

BUCKET, PREFIX = "bench-exports", "pitr"
RESTORED, LIVE = "bench-restored", "bench-live"
FILES = 8
SEGMENTS = 4  # ItemCompare's default Scan segments
NOTE = "x" * 80


def item(i: int, status: str = "paid") -> dict:
    return {
        "pk": {"S": f"order-{i:08d}"},
        "status": {"S": status},
        "total": {"N": str(i % 9973)},
        "tags": {"SS": ["a", "b", "c"]},
        "note": {"S": NOTE},
    }


def client(service: str, url: str):
    import boto3

    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )


def write_export(s3, name: str, table_size: int, changed: int) -> str:
    """The documented layout for `changed` records over a table of `table_size` items."""
    step = max(1, table_size // changed)
    records = []
    for n in range(changed):
        i = n * step
        kind = n % 20
        if kind < 12:  # changed
            rec = {"OldImage": item(i), "NewImage": item(i, "refunded")}
        elif kind < 17:  # deleted
            rec = {"OldImage": item(i)}
        else:  # added
            i = table_size + n
            rec = {"NewImage": item(i)}
        rec = {"Metadata": {"WriteTimestampMicros": {"N": "1700000000000000"}}} | rec
        rec["Keys"] = {"pk": {"S": f"order-{i:08d}"}}
        records.append(rec)
    lines = []
    for f in range(FILES):
        chunk = records[f::FILES]
        key = f"{PREFIX}/AWSDynamoDB/data/{name}-{f}.json.gz"
        body = gzip.compress("".join(json.dumps(r) + "\n" for r in chunk).encode())
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        lines.append(json.dumps({"itemCount": len(chunk), "dataFileS3Key": key}))
    files_key = f"{PREFIX}/AWSDynamoDB/{name}/manifest-files.json"
    s3.put_object(Bucket=BUCKET, Key=files_key, Body="\n".join(lines).encode())
    summary = f"{PREFIX}/AWSDynamoDB/{name}/manifest-summary.json"
    s3.put_object(
        Bucket=BUCKET,
        Key=summary,
        Body=json.dumps({"manifestFilesS3Key": files_key, "itemCount": changed}).encode(),
    )
    return summary


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux keeps that across execve, so a
    child would report its parent's peak at fork time."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- children ----------------------------------------------------------------------------------
def child(mode: str, args: list[str]) -> dict:
    from bot.items.engine import ItemCompare
    from bot.items.export_index import ExportIndex
    from bot.items.exports import ExportGateway
    from bot.items.jobfile import JobFile
    from bot.items.report import write_jsonl
    from bot.pitr import PitrService

    pitr = PitrService()
    s3 = pitr.sibling("s3")
    out: dict = {}
    t0, cpu0 = time.monotonic(), time.process_time()
    if mode == "export":
        summary, path = args
        gateway = ExportGateway(pitr.client, s3)
        files = ExportIndex(path)
        files.set_meta(key_names=["pk"])
        for key in gateway.data_files(BUCKET, summary):
            files.add_file(key, gateway.records(BUCKET, key))
        counts = files.diff_counts()
        write_jsonl(files, Path(path + ".jsonl"))
        out["counts"] = counts.__dict__
    elif mode == "scan":
        counts = ItemCompare(pitr.client, JobFile(args[0]), read_units_per_second=None).run(
            RESTORED, LIVE
        )
        out["counts"] = counts.__dict__
    out["seconds"] = time.monotonic() - t0
    out["cpu_seconds"] = time.process_time() - cpu0  # this process's own work: load moves it less
    out["rss_mb"] = peak_rss_mb()
    return out


def run_child(sim: AwsSimulator, mode: str, *args: str) -> dict:
    env = {**sim.env(), "AWS_ENDPOINT_URL": sim.moto_url, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--child", mode, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fill_tables(sim: AwsSimulator, n: int, changed: int) -> None:
    """Two tables of n items straight into moto's model; the live one lacks `changed` of them
    (the scan path sees them as missing: the same work per item as a change)."""
    import moto_fastscan
    from copy_back import create, load, moto_table

    ddb = client("dynamodb", sim.moto_url)
    for table in (RESTORED, LIVE):
        create(ddb, table)
    step = max(1, n // changed)
    touched = {i * step for i in range(changed)}
    load(RESTORED, (item(i) for i in range(n)))
    load(LIVE, (item(i) for i in range(n) if i not in touched))
    for table in (RESTORED, LIVE):
        moto_fastscan.warm(moto_table(table), SEGMENTS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scan-sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=5, help="export rounds per size (5)")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1:])))
        return
    import moto_fastscan  # not in the children: the moto server runs in this process

    moto_fastscan.install()
    info = machine()  # the load average at the start
    rows = []
    with AwsSimulator() as sim, tempfile.TemporaryDirectory() as tmp:
        s3 = client("s3", sim.moto_url)
        s3.create_bucket(Bucket=BUCKET)
        cases = [(10_000, 1_000), (100_000, 1_000), (1_000_000, 1_000), (1_000_000, 100_000)]
        summaries = {case: write_export(s3, f"e{case[0]}-{case[1]}", *case) for case in cases}
        runs: dict[tuple[int, int], list[dict]] = {case: [] for case in cases}
        for r in range(args.rounds):
            # The 1,000-changed cases in turns, reversed every other round: a trend in the
            # machine's load hits every table size alike. 100,000 changed runs once.
            order = cases[:3] if r % 2 == 0 else cases[2::-1]
            for case in order + ([cases[3]] if r == 0 else []):
                path = f"{tmp}/e{case[0]}-{case[1]}-{r}.sqlite"
                runs[case].append(run_child(sim, "export", summaries[case], path))
                print(case, runs[case][-1], file=sys.stderr, flush=True)
        for case in cases:
            times = sorted(run["seconds"] for run in runs[case])
            cpu = sorted(run["cpu_seconds"] for run in runs[case])
            result = {
                "seconds": times[len(times) // 2],
                "cpu_seconds": cpu[len(cpu) // 2],
                "rss_mb": max(run["rss_mb"] for run in runs[case]),
            }
            n = len(times)
            how = (
                f"measured, median of {n} ({times[0]:.2f}–{times[-1]:.2f})" if n > 1 else "measured"
            )
            rows.append(("export", *case, result, how))
        for size in args.scan_sizes:
            sim.reset()
            fill_tables(sim, size, 1_000)
            result = run_child(sim, "scan", f"{tmp}/scan{size}.sqlite")
            rows.append(("scan", size, 1_000, result, "measured"))
            print(rows[-1], file=sys.stderr, flush=True)
    print(f"Machine: {info} (load average at the end: {os.getloadavg()})\n")
    print(
        "| path | table items | changed items | seconds to the counts | reader's CPU seconds "
        "| peak RSS (MB) | how |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for path, size, changed, result, how in rows:
        rss = f"{result['rss_mb']:.0f}" if result.get("rss_mb") else "–"
        cpu = result.get("cpu_seconds")
        cpu_text = f"{cpu:.2f}" if cpu is not None else "–"
        print(
            f"| {path} | {size:,} | {changed:,} | {result['seconds']:.2f} | {cpu_text} "
            f"| {rss} | {how} |"
        )


if __name__ == "__main__":
    main()
