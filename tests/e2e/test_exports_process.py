"""The export path in `pitr-bot serve` processes: kill -9 while the export runs, or while its
files are read, and the next process adopts the export (by the ARN on the job: never a second
one) and reads each data file exactly once, with the right counts."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from support.signed import SlackSender

from e2e.process import Bots, wait_until
from e2e.test_copy_back_process import posted, stored_job
from e2e.test_exports import EXPORT_S3, LIVE, instant, live_table, the_app_writes

TOKEN = "xoxb-exports-process-token-19a7c2"  # noqa: S105 - a test secret
SECRET = "exports-process-secret-4b1e08"  # noqa: S105
POLL = 0.3


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(f'rules:\n  - tables: ["{LIVE}"]\n    copy_back: true\n', encoding="utf-8")
    return path


def start(bots: Bots, name: str):
    return bots.start(
        name,
        poll_seconds=POLL,
        PITR_BOT_POLICY=str(policy_file(bots.tmp_path)),
        PITR_BOT_EXPORT_S3=EXPORT_S3,
    )


def diff(bot, fake, t: datetime) -> None:
    resp = SlackSender(bot.url, SECRET).command(
        "/pitr-diff",
        f'{LIVE} "{t.isoformat()}"',
        user_id="U1",
        channel_id="C1",
        response_url=fake.response_url("U1"),
    )
    assert resp.status == 200, resp.body


def the_job(bots: Bots) -> dict:
    db = sqlite3.connect(bots.sqlite_path, timeout=5)
    try:
        rows = db.execute("SELECT id FROM item_jobs").fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        db.close()
    return stored_job(bots.sqlite_path, rows[0][0]) if rows else {}


def files_read(bots: Bots, job_id: str) -> list[str]:
    path = bots.tmp_path / "pitr-bot-jobs" / f"{job_id}.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=5)
    try:
        return [r[0] for r in db.execute("SELECT name FROM export_files").fetchall()]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def test_kill_9_while_the_export_runs_adopts_it_after_restart(bots, fake, sim):
    live_table(sim)
    t = instant(sim, 2)
    the_app_writes(sim, hours_ago=1)
    sim.exports.hold_all = True  # the export runs until finish()
    first = start(bots, "first")
    diff(first, fake, t)
    job = wait_until(
        lambda: (
            (j := the_job(bots))
            and (j.get("export") or {}).get("periods", [{}])[0].get("arn")
            and j
        ),
        60,
        "the export's ARN on the job",
    )
    first.kill()
    assert len(sim.exports.started()) == 1
    sim.exports.finish()

    second = start(bots, "second")
    posted(fake, "12 deleted, 9 changed, 5 added", timeout=120)
    assert len(sim.exports.started()) == 1  # adopted, never started twice
    assert sim.count("ExportTableToPointInTime") == 1
    assert sim.count("Scan") == 0
    assert stored_job(bots.sqlite_path, job["id"])["state"] == "COMPARED"
    assert second.terminate() == 0, second.stderr()
    assert "Traceback" not in first.stderr() + second.stderr()


def test_kill_9_while_the_files_are_read_neither_skips_nor_repeats_a_file(bots, fake, sim):
    live_table(sim)
    t = instant(sim, 2)
    the_app_writes(sim, hours_ago=1)
    sim.exports.files_per_export = 24
    sim.s3_get_delay = 0.25  # each data file takes a while: the kill lands mid-read
    first = start(bots, "first")
    diff(first, fake, t)
    job = wait_until(lambda: the_job(bots), 60, "the job")
    before = wait_until(
        lambda: (done := files_read(bots, job["id"])) and len(done) >= 3 and done,
        60,
        "part of the files read",
    )
    first.kill()
    before = files_read(bots, job["id"])
    assert 0 < len(before) < 24, f"the kill came too late to be mid-read ({len(before)} of 24)"
    reads_before = len(sim.s3_gets)
    sim.s3_get_delay = 0.0

    second = start(bots, "second")
    posted(fake, "12 deleted, 9 changed, 5 added", timeout=120)
    assert len(sim.exports.started()) == 1 and sim.count("ExportTableToPointInTime") == 1
    after = files_read(bots, job["id"])
    assert len(after) == len(set(after)) == 24
    # The second process fetched none of the files the first had finished.
    fetched_again = [p for p in sim.s3_gets[reads_before:] if any(p.endswith(k) for k in before)]
    assert fetched_again == []
    assert second.terminate() == 0, second.stderr()
    assert "Traceback" not in first.stderr() + second.stderr()


def test_kill_9_while_waiting_for_15_minutes_of_log_the_next_process_starts_the_export(
    bots, fake, sim
):
    live_table(sim, items=5)
    t = instant(sim, 5 / 60)  # 5 minutes ago: the export can start in about 15 minutes
    first = start(bots, "first")
    diff(first, fake, t)
    job = wait_until(lambda: the_job(bots), 60, "the job")
    posted(fake, "it can start at", timeout=60)
    first.kill()
    assert sim.count("ExportTableToPointInTime") == 0
    sim.client().put_item(TableName=LIVE, Item={"pk": {"S": "order-001"}, "status": {"S": "x"}})
    sim.offset = 20 * 60  # the clock reaches T + 15 minutes of log

    second = start(bots, "second")
    posted(fake, "0 deleted, 1 changed, 0 added", timeout=120)
    assert sim.count("ExportTableToPointInTime") == 1 and len(sim.exports.started()) == 1
    assert stored_job(bots.sqlite_path, job["id"])["state"] == "COMPARED"
    assert second.terminate() == 0, second.stderr()
    assert "Traceback" not in first.stderr() + second.stderr()


def kill_before_the_arn_is_stored(bots, fake, sim) -> dict:
    """A first process asks for the export; DynamoDB starts it; the process dies waiting for
    the reply that names it. The job: the period marked sent, no ARN."""
    live_table(sim)
    t = instant(sim, 2)
    the_app_writes(sim, hours_ago=1)
    sim.exports.hold_start_replies = True  # the export begins; its reply waits
    first = start(bots, "first")
    diff(first, fake, t)
    wait_until(lambda: sim.exports.started(), 60, "the export begun in DynamoDB")
    job = wait_until(lambda: the_job(bots), 60, "the job")
    first.kill()
    assert job["export"]["periods"][0]["arn"] is None  # it never learnt the ARN
    assert job["export"]["periods"][0]["sent"]
    sim.exports.hold_start_replies = False
    sim.exports.release_start_replies()  # to a dead process: nowhere
    assert "Traceback" not in first.stderr()
    return job


def test_kill_9_after_the_export_began_but_before_its_arn_was_stored_starts_no_second(
    bots, fake, sim
):
    """Within 8 hours, while the export still runs (ListExports does not list it yet): the
    next process asks again with the same ClientToken and the same request, read from the
    store, and DynamoDB answers with the export it already started."""
    sim.exports.hold_all = True  # still running after the restart
    job = kill_before_the_arn_is_stored(bots, fake, sim)

    second = start(bots, "second")
    wait_until(lambda: sim.count("ExportTableToPointInTime") == 2, 60, "the request repeated")
    sim.exports.finish()
    posted(fake, "12 deleted, 9 changed, 5 added", timeout=120)
    (export,) = sim.exports.started()  # one export, never two
    first_ask, again = sim.requests("ExportTableToPointInTime")
    assert first_ask == again and again["ClientToken"].startswith("pitr-bot-")
    stored = stored_job(bots.sqlite_path, job["id"])
    assert stored["state"] == "COMPARED"
    assert stored["export"]["periods"][0]["arn"] == export.arn
    assert second.terminate() == 0, second.stderr()
    assert "Traceback" not in second.stderr()


def test_a_restart_more_than_8_hours_after_a_lost_start_reply_adopts_the_export_by_its_token(
    bots, fake, sim
):
    """A ClientToken lasts 8 hours: after that the same request would start a second export.
    The next process first looks the export up (ListExports, DescribeExport's ClientToken)."""
    job = kill_before_the_arn_is_stored(bots, fake, sim)
    sim.offset = 9 * 3600.0  # the bot stayed down 9 hours: DynamoDB forgot the token

    second = start(bots, "second")
    posted(fake, "12 deleted, 9 changed, 5 added", timeout=120)
    (export,) = sim.exports.started()  # adopted, not started again
    assert sim.count("ExportTableToPointInTime") == 1 and sim.count("ListExports") >= 1
    stored = stored_job(bots.sqlite_path, job["id"])
    assert stored["state"] == "COMPARED"
    assert stored["export"]["periods"][0]["arn"] == export.arn
    assert second.terminate() == 0, second.stderr()
    assert "Traceback" not in second.stderr()
