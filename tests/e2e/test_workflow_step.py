"""The Workflow Builder step `restore_table` over HTTP: a signed `function_executed` event
posts the approval card; the step completes with the outputs once the table is ACTIVE, and
fails when the restore is denied."""

from __future__ import annotations

import json
import sqlite3
import time

from support.signed import SlackSender

from e2e.harness import BotUnderTest
from e2e.process import approve, sqlite_request, wait_until

TABLE = "MusicCollection"
TOKEN = "xoxb-workflow-step-e2e-token-7d21"  # noqa: S105 - a test secret
SECRET = "workflow-step-signing-secret-5e0a"  # noqa: S105


def run_step(bot: BotUnderTest, execution: str, target: str, **inputs: str) -> None:
    resp = bot.sender.post(step_body(execution, target, **inputs), content_type="application/json")
    assert resp.status == 200, resp.body


def step_body(execution: str, target: str, **inputs: str) -> bytes:
    """The signed-to-be `function_executed` event of a workflow run of the step."""
    restore = {
        "source_table": TABLE,
        "new_table": target,
        "instant": "latest",
        "reason": "workflow: bad deploy",
        "channel": "C1",
        "requested_by": "U1",
        **inputs,
    }
    return function_executed(execution, "restore_table", restore)


def function_executed(execution: str, callback_id: str, inputs: dict) -> bytes:
    """A `function_executed` event for a run of the app's step `callback_id`."""
    body = {
        "token": "legacy-verification-token",
        "team_id": "T1",
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": f"Ev{execution}",
        "event_time": int(time.time()),
        "event": {
            "type": "function_executed",
            "function": {"id": "Fn1", "callback_id": callback_id, "app_id": "A1"},
            "inputs": inputs,
            "function_execution_id": execution,
            "workflow_execution_id": f"Wf{execution}",
            "event_ts": f"{time.time():.6f}",
            "bot_access_token": "xwfp-test-token",
        },
    }
    return json.dumps(body).encode()


def request_for(bot: BotUnderTest, execution: str):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for req in bot.services.store.find():
            if req.function_execution_id == execution and req.card_ts:
                return req
        time.sleep(0.02)
    raise AssertionError(f"no card for the step run {execution}")


def completions(fake, execution: str) -> list:
    return [
        c
        for c in fake.calls("functions.completeSuccess") + fake.calls("functions.completeError")
        if c.args.get("function_execution_id") == execution
    ]


def test_the_step_posts_the_card_and_completes_with_outputs_when_active(make_bot, fake, sim):
    bot = make_bot()
    run_step(bot, "Fx1", "StepRestored")
    req = request_for(bot, "Fx1")
    card = bot.cards()[-1]
    assert card.args["channel"] == "C1" and "StepRestored" in json.dumps(card.args)
    assert completions(fake, "Fx1") == []  # not before the table is ACTIVE

    bot.approve(req.id, "U1")  # the person who ran the workflow: four-eyes
    bot.wait_reply("U1", "someone else has to approve")
    bot.approve(req.id, "U2")
    bot.wait_state(req.id, "ACTIVE")
    (done,) = fake.wait_for(lambda c: c.method == "functions.completeSuccess")
    outputs = done.args["outputs"]
    outputs = json.loads(outputs) if isinstance(outputs, str) else outputs
    assert outputs == {
        "restore_id": req.id,
        "new_table": "StepRestored",
        "final_status": "ACTIVE",
        "restored_instant": "latest",
        "approved_by": "U2",
    }
    bot.quiet()
    assert len(completions(fake, "Fx1")) == 1  # once


def test_a_denied_restore_fails_the_step(make_bot, fake, sim):
    bot = make_bot()
    run_step(bot, "Fx2", "StepDenied")
    req = request_for(bot, "Fx2")
    bot.deny(req.id, "U2")
    bot.wait_state(req.id, "DENIED")
    (failed,) = fake.wait_for(lambda c: c.method == "functions.completeError")
    assert failed.args["function_execution_id"] == "Fx2"
    assert "denied" in failed.args["error"]
    bot.quiet()
    assert len(completions(fake, "Fx2")) == 1
    assert sim.count("RestoreTableToPointInTime") == 0


def test_bad_inputs_fail_the_step_at_once_and_post_nothing(make_bot, fake, sim):
    bot = make_bot()
    run_step(bot, "Fx3", "x")  # not a valid table name
    (failed,) = fake.wait_for(lambda c: c.method == "functions.completeError")
    assert failed.args["function_execution_id"] == "Fx3"
    assert bot.cards() == [] and bot.services.store.find() == []


def owed(path) -> int:
    """Outbox items not yet sent, read from the processes' SQLite state."""
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]


def test_kill_9_while_creating_completes_the_step_after_restart_once(bots, fake, sim):
    target = "StepKilledWhileCreating"
    sim.hold_creating(target)
    first = bots.start("first", poll_seconds=0.3)
    sent = SlackSender(first.url, SECRET).post(
        step_body("Fx9", target), content_type="application/json"
    )
    assert sent.status == 200, sent.body
    card = wait_until(
        lambda: [c for c in fake.calls("chat.postMessage") if target in json.dumps(c.args)],
        30,
        "the step's approval card",
    )[0]
    (restore_id,) = {
        el.get("value", "")
        for block in card.args.get("blocks", [])
        if block["type"] == "actions"
        for el in block["elements"]
    }
    assert approve(first, SECRET, fake, restore_id, "U2").status == 200
    wait_until(
        lambda: (
            (doc := sqlite_request(bots.sqlite_path, restore_id))["table_arn"] and doc["polls"] >= 1
        ),
        60,
        "the first process to poll the restore",
    )
    first.kill()  # SIGKILL while CREATING
    assert completions(fake, "Fx9") == []

    second = bots.start("second", poll_seconds=0.3)
    sim.finish_creating(target)
    wait_until(lambda: completions(fake, "Fx9"), 60, "the step's completion")
    wait_until(lambda: owed(bots.sqlite_path) == 0, 30, "every owed message sent")
    (done,) = completions(fake, "Fx9")
    assert done.method == "functions.completeSuccess"
    assert sqlite_request(bots.sqlite_path, restore_id)["state"] == "ACTIVE"
    assert second.terminate() == 0, second.stderr()
