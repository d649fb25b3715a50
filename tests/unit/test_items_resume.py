"""kill -9 in the middle of a copy back of 5,000 items; the resumed job finishes with the right
counts and no item written twice.

The copy back runs in a child process (the engine, with a client from the gateway `bot.pitr`)
against moto behind the AwsSimulator proxy, which counts every *successful* PutItem per key.
"""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.aws_sim import AwsSimulator

from bot.items.engine import ItemCompare, ItemWriter
from bot.items.jobfile import JobFile

ROOT = Path(__file__).resolve().parents[2]
N = 5000
RESTORED, LIVE = "big-restored", "big"

CHILD = """
import sys
from bot.items.engine import ItemWriter
from bot.items.jobfile import JobFile
from bot.pitr import PitrService
job = JobFile(sys.argv[1])
ItemWriter(PitrService().client, job, workers=4, write_units_per_second=float(sys.argv[2])).run()
"""


class CountingSim(AwsSimulator):
    """Counts PutItem calls that moto accepted (HTTP 200), per table and key."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._puts_lock = threading.Lock()

    def _rewrite(self, op, req, resp):
        if op == "PutItem":
            with self._puts_lock:
                self.puts[(req["TableName"], req["Item"]["pk"]["S"])] += 1
        return super()._rewrite(op, req, resp)


@pytest.fixture
def sim():
    with CountingSim() as sim:
        yield sim


def load(client, table: str, count: int) -> None:
    def batch(start: int) -> None:
        items = [
            {"PutRequest": {"Item": {"pk": {"S": f"k{i:05d}"}, "v": {"N": str(i)}}}}
            for i in range(start, min(start + 25, count))
        ]
        while items:
            resp = client.batch_write_item(RequestItems={table: items})
            items = resp.get("UnprocessedItems", {}).get(table, [])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(batch, range(0, count, 25)))


def outcomes(path: Path) -> int:
    db = sqlite3.connect(path, timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def test_kill_9_mid_copy_back_then_resume_writes_each_item_once(sim, tmp_path):
    direct = sim.client(direct=True)
    for table in (RESTORED, LIVE):
        direct.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    load(direct, RESTORED, N)
    path = tmp_path / "job.sqlite"
    job = JobFile(path)
    counts = ItemCompare(direct, job, read_units_per_second=None).run(RESTORED, LIVE)
    assert counts.missing == N
    assert job.plan_copy_back() == N
    job.close()

    env = {**os.environ, **sim.env(), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", CHILD, str(path), "500"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while outcomes(path) < N // 4:
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the child wrote too little in 120 s"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    at_kill = outcomes(path)
    assert at_kill < N, "the copy back finished before the kill: nothing was tested"

    job = JobFile(path)
    final = ItemWriter(sim.client(), job, write_units_per_second=None).run()
    assert (final.planned, final.written, final.conflict, final.failed) == (N, N, 0, 0)
    assert final.pending == 0
    written = {key for (table, key), n in sim.puts.items() if table == LIVE}
    assert written == {f"k{i:05d}" for i in range(N)}
    twice = {key: n for (table, key), n in sim.puts.items() if n > 1}
    assert not twice, f"written more than once: {twice}"
    scanned = direct.scan(TableName=LIVE, Select="COUNT")["Count"]
    assert scanned == N
    job.close()
