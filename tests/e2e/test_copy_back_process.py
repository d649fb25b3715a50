"""A copy back in `pitr-bot serve` processes: kill -9 in the middle of it, or SIGTERM, and the
next process on the same state and work directory finishes it with the right counts, no item
written twice.

moto's restore copies the source's *current* items, so the scenario restores first, then
deletes the items from the live (source) table: they are the "missing" ones to copy back.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

from support.signed import SlackSender

from commands.items import APPROVE_ACTION, COMPARE_ACTION, COPY_MISSING_ACTION
from e2e.process import SOURCE, BotProcess, Bots, approve, broadcasts, request_restore, wait_until

TOKEN = "xoxb-copy-back-process-token-5e2a91"  # noqa: S105 - a test secret
SECRET = "copy-back-process-secret-73c0d4"  # noqa: S105
POLL = 0.3
TARGET = "MusicCollection-restored"


def lost_item(i: int) -> dict:
    return {"pk": {"S": f"lost-{i:05d}"}, "n": {"N": str(i)}, "note": {"S": "x" * 40}}


def batch(direct, requests: list[dict]) -> None:
    for start in range(0, len(requests), 25):
        chunk = {SOURCE: requests[start : start + 25]}
        while chunk:
            chunk = direct.batch_write_item(RequestItems=chunk).get("UnprocessedItems") or {}


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(f'rules:\n  - tables: ["{SOURCE}"]\n    copy_back: true\n', encoding="utf-8")
    return path


def job_file_outcomes(work_dir: Path, job_id: str) -> int:
    """Writes with an outcome so far, read straight from the job file (the checkpoint)."""
    path = work_dir / f"{job_id}.sqlite"
    if not path.exists():
        return 0
    db = sqlite3.connect(path, timeout=5)
    try:
        (n,) = db.execute("SELECT COUNT(*) FROM outcomes WHERE job = 'copy_back'").fetchone()
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()
    return int(n)


def stored_job(state_db: Path, job_id: str) -> dict:
    db = sqlite3.connect(state_db, timeout=5)
    try:
        (doc,) = db.execute("SELECT doc FROM item_jobs WHERE id = ?", (job_id,)).fetchone()
    finally:
        db.close()
    return json.loads(doc)


def posted(fake, contains: str, timeout: float) -> dict:
    call = fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and not c.failed
            and contains in str(c.args.get("text", ""))
        ),
        timeout=timeout,
    )[0]
    return call.args


def button_value(message: dict, action_id: str) -> str:
    for block in message.get("blocks") or []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button in {message}")


def copy_back_started(bots: Bots, fake, sim, n: int, **env: str) -> tuple[BotProcess, str]:
    """A restore of SOURCE with `n` extra items, ACTIVE; the `n` items then deleted from the
    live table; compared, copy back of the `n` missing approved by U2. Returns (bot, job id)."""
    direct = sim.client(direct=True)
    batch(direct, [{"PutRequest": {"Item": lost_item(i)}} for i in range(n)])
    policy = policy_file(bots.tmp_path)
    first = bots.start("first", poll_seconds=POLL, PITR_BOT_POLICY=str(policy), **env)
    restore_id = request_restore(first, SECRET, fake, TARGET)
    assert approve(first, SECRET, fake, restore_id, "U2").status == 200
    wait_until(lambda: broadcasts(fake, TARGET), 60, "the restore to be ACTIVE")
    batch(direct, [{"DeleteRequest": {"Key": {"pk": lost_item(i)["pk"]}}} for i in range(n)])

    slack = SlackSender(first.url, SECRET)

    def click(action: str, value: str, user: str) -> None:
        resp = slack.click(action, value, user, response_url=fake.response_url(f"{action}-{user}"))
        assert resp.status == 200, resp

    click(COMPARE_ACTION, restore_id, "U1")
    compared = posted(fake, f"{n} missing, 0 changed, 0 added", timeout=120)
    job_id = button_value(compared, COPY_MISSING_ACTION)
    click(COPY_MISSING_ACTION, job_id, "U1")
    posted(fake, f"Copy back {n} items into {SOURCE}?", timeout=30)
    click(APPROVE_ACTION, job_id, "U2")
    return first, job_id


def final_reply(fake, n: int, timeout: float = 120) -> dict:
    return posted(
        fake, f"Copy back into {SOURCE}: {n} written, 0 skipped (conflict), 0 failed", timeout
    )


def assert_each_key_put_once(sim, n: int) -> None:
    """Every lost item's PutItem succeeded exactly once at the simulator (a retried one after
    the restart is refused by its condition, and counted once, as written)."""
    puts = Counter(
        r["Item"]["pk"]["S"]
        for r in sim.accepted_requests("PutItem")
        if r.get("TableName") == SOURCE
    )
    assert len(puts) == n
    assert set(puts.values()) == {1}, [k for k, v in puts.items() if v > 1][:5]
    live = sim.client(direct=True).scan(TableName=SOURCE, Select="COUNT")["Count"]
    assert live == n + 5  # the fixture's 5 items and every lost one, back


def test_kill_9_in_the_middle_of_a_copy_back_of_5000_items_finishes_after_restart(bots, fake, sim):
    n = 5000
    env = {"PITR_BOT_ITEMS_READ_UNITS": "100000", "PITR_BOT_ITEMS_WRITE_UNITS": "100000"}
    first, job_id = copy_back_started(bots, fake, sim, n, **env)
    work_dir = bots.tmp_path / "pitr-bot-jobs"
    wait_until(lambda: job_file_outcomes(work_dir, job_id) >= 500, 120, "part of the copy back")
    first.kill()  # SIGKILL: no checkpoint on the way out, no lease given back
    done = job_file_outcomes(work_dir, job_id)
    assert 0 < done < n, f"the kill came too late to be mid-copy-back ({done} of {n})"
    assert stored_job(bots.sqlite_path, job_id)["state"] == "COPYING"

    second = bots.start(
        "second", poll_seconds=POLL, PITR_BOT_POLICY=str(policy_file(bots.tmp_path)), **env
    )
    final = final_reply(fake, n)
    assert final.get("reply_broadcast") in (True, "true", "1")
    job = wait_until(
        lambda: (j := stored_job(bots.sqlite_path, job_id))["state"] == "COPIED" and j,
        30,
        "the job to be COPIED",
    )
    assert job["copy_counts"] == {
        "planned": n,
        "written": n,
        "conflict": 0,
        "failed": 0,
        "already": 0,
    }
    assert_each_key_put_once(sim, n)
    time.sleep(3 * POLL + 1)  # room for a second final reply (if there were one) to show up
    finals = [
        c
        for c in fake.calls("chat.postMessage")
        if not c.failed and f"Copy back into {SOURCE}:" in str(c.args.get("text", ""))
    ]
    assert len(finals) == 1
    assert second.terminate() == 0, second.stderr()
    assert "Traceback" not in first.stderr() + second.stderr()


def test_sigterm_in_the_middle_of_a_copy_back_stops_at_a_checkpoint_and_the_next_process_resumes(
    bots, fake, sim
):
    n = 1500
    # Paced, so the copy back surely runs when the signal comes.
    env = {"PITR_BOT_ITEMS_READ_UNITS": "100000", "PITR_BOT_ITEMS_WRITE_UNITS": "150"}
    first, job_id = copy_back_started(bots, fake, sim, n, **env)
    work_dir = bots.tmp_path / "pitr-bot-jobs"
    wait_until(lambda: job_file_outcomes(work_dir, job_id) >= 200, 60, "part of the copy back")

    assert first.terminate(timeout=20) == 0, first.stderr()
    done = job_file_outcomes(work_dir, job_id)
    assert 0 < done < n, f"the signal came too late to be mid-copy-back ({done} of {n})"
    stopped = stored_job(bots.sqlite_path, job_id)
    # Stopped at a checkpoint, lease given back: the next process takes it at once.
    assert stopped["state"] == "COPYING" and stopped["lease_owner"] is None
    # Every write sent before the stop has its outcome: none succeeded without one.
    assert len(sim.accepted_requests("PutItem")) == done

    second = bots.start(
        "second",
        poll_seconds=POLL,
        PITR_BOT_POLICY=str(policy_file(bots.tmp_path)),
        PITR_BOT_ITEMS_WRITE_UNITS="100000",
    )
    final_reply(fake, n)
    job = wait_until(
        lambda: (j := stored_job(bots.sqlite_path, job_id))["state"] == "COPIED" and j,
        30,
        "the job to be COPIED",
    )
    assert job["copy_counts"] == {
        "planned": n,
        "written": n,
        "conflict": 0,
        "failed": 0,
        "already": 0,
    }
    assert_each_key_put_once(sim, n)
    assert second.terminate() == 0, second.stderr()
    assert "Traceback" not in first.stderr() + second.stderr()
