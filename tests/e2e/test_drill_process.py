"""A restore drill in `pitr-bot serve` processes: kill -9 mid-drill, and the next process
finishes it and cleans up exactly once."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from support.signed import SlackSender

from e2e.process import SOURCE, wait_until

TOKEN = "xoxb-drill-process-e2e-token-6d1f0a"  # noqa: S105 - a test secret
SECRET = "drill-process-signing-secret-2b7c94"  # noqa: S105
POLL = 0.3


def stored_drills(path: Path) -> list[dict]:
    db = sqlite3.connect(path, timeout=5)
    try:
        rows = db.execute("SELECT doc FROM drills").fetchall()
    except sqlite3.OperationalError:  # the first process has not created the schema yet
        return []
    finally:
        db.close()
    return [json.loads(r[0]) for r in rows]


def reports(fake) -> list:
    return [
        c
        for c in fake.calls("chat.postMessage")
        if c.args.get("channel") == "C9" and not c.args.get("thread_ts") and not c.failed
    ]


def test_kill_9_during_a_drill_finishes_and_cleans_up_exactly_once(bots, fake, sim, tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text(
        f'drills:\n  - tables: ["{SOURCE}"]\n    every: "0 0 1 1 *"\n    channel: C9\n',
        encoding="utf-8",
    )
    sim.creating_seconds = float("inf")  # restored tables stay CREATING until the test says
    first = bots.start("first", poll_seconds=POLL, PITR_BOT_POLICY=str(policy))
    resp = SlackSender(first.url, SECRET).command(
        "/pitr-drill", SOURCE, user_id="U1", channel_id="C1", response_url=fake.response_url("U1")
    )
    assert resp.status == 200, resp.body

    # The first process has called AWS and recorded the drill table; it is still CREATING.
    drill = wait_until(
        lambda: next((d for d in stored_drills(bots.sqlite_path) if d.get("table_arn")), None),
        60,
        "the first process to start the drill",
    )
    first.kill()  # SIGKILL: no release of the lease, no goodbye
    assert stored_drills(bots.sqlite_path)[0]["state"] == "RESTORING"

    second = bots.start("second", poll_seconds=POLL, PITR_BOT_POLICY=str(policy))
    sim.creating_seconds = 0.0
    wait_until(lambda: reports(fake), 60, "the drill report")
    time.sleep(3 * POLL + 1.0)  # room for a duplicate (if there were one) to show up

    (report,) = reports(fake)
    assert "passed" in report.args["text"], report.args
    (done,) = stored_drills(bots.sqlite_path)
    assert done["state"] == "PASSED" and done["lease_owner"] is None
    assert sim.count("RestoreTableToPointInTime") == 1
    assert [r["TableName"] for r in sim.requests("DeleteTable")] == [drill["target"]]
    assert drill["target"] not in sim.client(direct=True).list_tables()["TableNames"]
    assert second.terminate() == 0, second.stderr()
    assert "Traceback" not in first.stderr() + second.stderr()
