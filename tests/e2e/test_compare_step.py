"""The Workflow Builder step `compare_items` over HTTP: a signed `function_executed` event runs
the export path of `/pitr-diff LIVE_TABLE WHEN` in the given channel; the step completes with
the counts when the comparison is done, once, and fails with the reason when refused."""

from __future__ import annotations

import json
import time

from bot.items.jobs import JobState
from e2e.test_copy_back import posted, wait_job
from e2e.test_exports import COPY_BACK_ON, EXPORT_S3, LIVE, instant, live_table, the_app_writes
from e2e.test_workflow_step import completions, function_executed


def run_compare(bot, execution: str, **inputs: str) -> None:
    body = function_executed(
        execution, "compare_items", {"table": LIVE, "channel": "C1", "requested_by": "U1", **inputs}
    )
    resp = bot.sender.post(body, content_type="application/json")
    assert resp.status == 200, resp.body


def test_the_step_runs_the_export_and_completes_with_the_counts(make_bot, fake, sim):
    live_table(sim)
    t = instant(sim, 2)
    the_app_writes(sim, hours_ago=1)
    bot = make_bot(policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3)
    sim.clear()

    run_compare(bot, "Fc1", instant=t.isoformat())
    (done,) = fake.wait_for(lambda c: c.method == "functions.completeSuccess", timeout=60)
    (job,) = bot.services.store.job_find()
    outputs = done.args["outputs"]
    outputs = json.loads(outputs) if isinstance(outputs, str) else outputs
    assert done.args["function_execution_id"] == "Fc1"
    assert outputs == {"deleted": 12, "changed": 9, "added": 5, "job_id": job.id}
    # The same thread as `/pitr-diff`, in the workflow's channel; one export, no scan.
    reply = posted(fake, "12 deleted, 9 changed, 5 added")
    assert reply.args["channel"] == "C1"
    assert len(sim.requests("ExportTableToPointInTime")) == 1
    assert sim.count("Scan") == sim.count("Query") == 0
    assert bot.services.store.job_get(job.id).function_execution_id == "Fc1"
    bot.quiet()
    assert len(completions(fake, "Fc1")) == 1  # once


def test_without_an_export_bucket_the_step_fails_with_the_reason_and_does_nothing(
    make_bot, fake, sim
):
    live_table(sim)
    t = instant(sim, 2)
    bot = make_bot(policy=COPY_BACK_ON)  # no PITR_BOT_EXPORT_S3
    sim.clear()

    run_compare(bot, "Fc2", instant=t.isoformat())
    (failed,) = fake.wait_for(lambda c: c.method == "functions.completeError")
    assert failed.args["function_execution_id"] == "Fc2"
    assert "Exports are not set up: set PITR_BOT_EXPORT_S3" in failed.args["error"]
    bot.quiet()
    assert len(completions(fake, "Fc2")) == 1
    assert bot.services.store.job_find() == []
    assert fake.calls("chat.postMessage") == []
    assert sim.count("ExportTableToPointInTime") == 0


def test_a_missing_instant_fails_the_step_at_once(make_bot, fake, sim):
    live_table(sim)
    bot = make_bot(policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3)
    sim.clear()
    run_compare(bot, "Fc3")
    (failed,) = fake.wait_for(lambda c: c.method == "functions.completeError")
    assert failed.args["function_execution_id"] == "Fc3" and "instant" in failed.args["error"]
    assert bot.services.store.job_find() == [] and sim.count("ExportTableToPointInTime") == 0


def test_a_failed_export_fails_the_step_with_dynamodbs_reason_once(make_bot, fake, sim):
    live_table(sim, items=20)
    t = instant(sim, 2)
    the_app_writes(sim, hours_ago=1)
    sim.exports.fail_next("S3_ACCESS_DENIED", "DynamoDB could not write to the bucket")
    bot = make_bot(policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3)
    sim.clear()

    run_compare(bot, "Fc4", instant=t.isoformat())
    (failed,) = fake.wait_for(lambda c: c.method == "functions.completeError", timeout=60)
    assert failed.args["function_execution_id"] == "Fc4"
    assert "S3_ACCESS_DENIED" in failed.args["error"]
    assert "could not write to the bucket" in failed.args["error"]
    (job,) = bot.services.store.job_find()
    assert wait_job(bot, job.id, JobState.FAILED).state == JobState.FAILED
    bot.quiet()
    assert len(completions(fake, "Fc4")) == 1
    assert fake.calls("functions.completeSuccess") == []


def test_a_restart_while_the_export_runs_completes_the_step_once(make_bot, fake, sim):
    live_table(sim)
    t = instant(sim, 2)
    the_app_writes(sim, hours_ago=1)
    sim.exports.hold_all = True  # IN_PROGRESS until finish()
    first = make_bot(policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3)
    sim.clear()
    run_compare(first, "Fc5", instant=t.isoformat())
    deadline = time.monotonic() + 30
    while not [j for j in first.services.store.job_find() if (j.export or {})["periods"][0]["arn"]]:
        assert time.monotonic() < deadline, "the export never started"
        time.sleep(0.05)
    first.stop()
    assert completions(fake, "Fc5") == []

    second = make_bot(policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3)  # same sqlite state
    sim.exports.finish()
    (done,) = fake.wait_for(lambda c: c.method == "functions.completeSuccess", timeout=60)
    outputs = done.args["outputs"]
    outputs = json.loads(outputs) if isinstance(outputs, str) else outputs
    assert done.args["function_execution_id"] == "Fc5"
    assert (outputs["deleted"], outputs["changed"], outputs["added"]) == (12, 9, 5)
    second.quiet()
    assert len(completions(fake, "Fc5")) == 1
    assert len(sim.exports.started()) == 1  # the export was adopted, not started again
