"""Items back without a restore, end to end over HTTP: `/pitr-diff LIVE_TABLE WHEN` reads what
changed since WHEN from DynamoDB's incremental export (tests/support/export_sim.py writes it from
the writes it saw, with their times), then the same copy back, approval, conflicts and undo as a
restore's comparison.

The simulator's clock (`sim.offset`) places the application's writes hours in the past.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

from bot.items.jobs import JobState
from bot.policy import Policy
from commands.items import APPROVE_ACTION, COPY_ALL_ACTION, UNDO_ACTION, decision_value
from e2e.harness import button_labels
from e2e.test_copy_back import changed, get, key, order, posted, wait_job

LIVE = "orders"
BUCKET = "pitr-exports"
EXPORT_S3 = f"s3://{BUCKET}/exports"
DELETED, CHANGED, ADDED, TWICE = range(0, 12), range(12, 20), range(1000, 1005), 20
COPY_BACK_ON = Policy(rules=[{"tables": [LIVE], "copy_back": True}])
HOUR = 3600.0


def s3(sim):
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=sim.moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )


def live_table(sim, items: int = 500):
    """A live table of `items` orders, written long before anything the tests look at."""
    sim.create_table(LIVE, items=0)
    direct = sim.client(direct=True)
    for i in range(items):
        direct.put_item(TableName=LIVE, Item=order(i))
    s3(sim).create_bucket(Bucket=BUCKET)
    sim.exports.record = True
    return direct


def the_app_writes(sim, hours_ago: float) -> None:
    """After T the application deletes 12, changes 8, adds 5 and changes one item twice."""
    app = sim.client()
    sim.offset = -hours_ago * HOUR
    for i in DELETED:
        app.delete_item(TableName=LIVE, Key=key(i))
    for i in CHANGED:
        app.put_item(TableName=LIVE, Item=changed(i))
    for i in ADDED:
        app.put_item(TableName=LIVE, Item=order(i))
    app.put_item(TableName=LIVE, Item={**order(TWICE), "status": {"S": "first"}})
    app.put_item(TableName=LIVE, Item={**order(TWICE), "status": {"S": "second"}})
    sim.offset = 0.0


def instant(sim, hours_ago: float) -> datetime:
    return datetime.fromtimestamp(int(sim.now() - hours_ago * HOUR), UTC)


def test_items_changed_since_t_come_back_without_a_restore_or_a_scan(make_bot, fake, sim):
    direct = live_table(sim)
    t = instant(sim, 2)
    the_app_writes(sim, hours_ago=1)
    bot = make_bot(policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3)
    sim.clear()

    bot.command("/pitr-diff", f'{LIVE} "{t.isoformat()}"')
    reply = posted(fake, "12 deleted, 9 changed, 5 added")
    (job,) = bot.services.store.job_find()
    # One incremental export from T, read from PITR's log: not a single Scan or Query.
    (request,) = sim.requests("ExportTableToPointInTime")
    spec = request["IncrementalExportSpecification"]
    assert request["ExportType"] == "INCREMENTAL_EXPORT"
    assert abs(float(spec["ExportFromTime"]) - t.timestamp()) < 0.001
    assert request["S3Bucket"] == BUCKET and request["S3Prefix"] == "exports"
    assert sim.count("Scan") == sim.count("Query") == 0
    assert len(sim.exports.started()) == 1
    # The thread: its own (no restore card), saying what is read and what it costs.
    job = bot.services.store.job_get(job.id)
    assert job.thread_ts and reply.args["thread_ts"] == job.thread_ts == job.progress_ts
    head = str(reply.args["blocks"])
    assert "point-in-time log" in head and "not from the table" in head
    assert "size of the changed data" in head
    assert "*12* deleted since" in head and "*9* changed since" in head
    assert "*5* added since" in head
    assert button_labels(reply.args) == [
        "Copy back 12 missing items",
        "Copy back 12 missing + 9 changed",
    ]

    # The application writes one changed key after the export's end: a conflict.
    late = {**changed(13), "status": {"S": "written after the export"}}
    sim.client().put_item(TableName=LIVE, Item=late)

    bot.click(COPY_ALL_ACTION, job.id, "U1")
    posted(fake, "Copy back 21 items into orders?")
    bot.click(APPROVE_ACTION, job.id, "U2")
    final = posted(fake, "Copy back into orders: 20 written, 1 skipped (conflict), 0 failed")
    # Keys are item data: counted in the thread, never named (item_keys_visible is off).
    assert "order-013" not in str(final.args["blocks"])
    for i in [*DELETED, *CHANGED, TWICE]:
        if i != 13:
            assert get(direct, i) == order(i)  # the image at T
    assert get(direct, 13) == late  # never overwritten
    for i in ADDED:
        assert get(direct, i) == order(i)  # added since: untouched (and still there)

    bot.click(UNDO_ACTION, job.id, "U1")
    posted(fake, "Undo copy back into orders?")
    bot.click(APPROVE_ACTION, decision_value(job.id, undo=True), "U2")
    posted(fake, "Undo of copy back into orders: 20 written, 0 skipped (conflict), 0 failed")
    for i in DELETED:
        assert get(direct, i) is None
    for i in CHANGED:
        assert get(direct, i) == (late if i == 13 else changed(i))
    assert get(direct, TWICE)["status"] == {"S": "second"}
    assert wait_job(bot, job.id, JobState.UNDONE).state == JobState.UNDONE


def test_thirty_hours_ago_is_two_consecutive_exports_merged_per_key(make_bot, fake, sim):
    direct = live_table(sim, items=50)
    t = instant(sim, 30)
    app = sim.client()
    sim.offset = t.timestamp() + 30 - sim.now()  # 30 s after T: flagged on the approval card
    app.put_item(TableName=LIVE, Item=changed(4))
    sim.offset = -28 * HOUR  # in the first period
    app.put_item(TableName=LIVE, Item={**order(1), "status": {"S": "early"}})
    app.delete_item(TableName=LIVE, Key=key(2))
    app.put_item(TableName=LIVE, Item=order(900))  # born in period 1 ...
    sim.offset = -2 * HOUR  # in the second period
    app.put_item(TableName=LIVE, Item={**order(1), "status": {"S": "late"}})
    app.put_item(TableName=LIVE, Item=order(2))  # re-created: unchanged since T
    app.delete_item(TableName=LIVE, Key=key(3))
    app.put_item(TableName=LIVE, Item={**order(900), "status": {"S": "x"}})  # ... changed in 2
    sim.offset = 0.0
    bot = make_bot(policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3)

    bot.command("/pitr-diff", f"{LIVE} {int(t.timestamp())}")
    posted(fake, "1 deleted, 2 changed, 1 added")
    requests = sim.requests("ExportTableToPointInTime")
    assert len(requests) == 2
    first, second = (r["IncrementalExportSpecification"] for r in requests)
    assert abs(float(first["ExportFromTime"]) - t.timestamp()) < 0.001
    assert float(first["ExportToTime"]) == float(second["ExportFromTime"])
    (job,) = bot.services.store.job_find()
    bot.click(COPY_ALL_ACTION, job.id, "U1")
    card = posted(fake, "Copy back 3 items into orders?")
    assert "1 item(s) changed within a minute of the instant" in str(card.args["blocks"])
    bot.click(APPROVE_ACTION, job.id, "U2")
    posted(fake, "Copy back into orders: 3 written, 0 skipped (conflict), 0 failed")
    assert get(direct, 4) == order(4)
    assert get(direct, 1) == order(1) and get(direct, 3) == order(3)  # images at T
    assert get(direct, 2) == order(2)


def test_an_instant_5_minutes_ago_waits_then_starts_the_export(make_bot, fake, sim):
    live_table(sim, items=5)
    bot = make_bot(policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3)
    t = instant(sim, 5 / 60)
    bot.command("/pitr-diff", f"{LIVE} {int(t.timestamp())}")
    due = (t + timedelta(minutes=20)).strftime("%H:%M UTC")
    said = bot.wait_reply("U1", "the export can start at")
    assert due in said and "I'll start it then" in said
    posted(fake, "it can start at")  # the thread says so too
    (job,) = bot.services.store.job_find()
    assert sim.requests("ExportTableToPointInTime") == []
    sim.client().put_item(TableName=LIVE, Item=changed(1))
    sim.offset = 20 * 60  # the clock reaches T + 15 minutes of log
    posted(fake, "0 deleted, 1 changed, 0 added")
    (request,) = sim.requests("ExportTableToPointInTime")
    assert (
        abs(float(request["IncrementalExportSpecification"]["ExportFromTime"]) - t.timestamp())
        < 0.001
    )
    assert bot.services.store.job_get(job.id).state == JobState.COMPARED


def test_a_failed_export_says_why_and_offers_the_restore_path(make_bot, fake, sim):
    direct = live_table(sim, items=20)
    t = instant(sim, 2)
    the_app_writes(sim, hours_ago=1)
    sim.exports.fail_next("S3_ACCESS_DENIED", "DynamoDB could not write to the bucket")
    bot = make_bot(policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3)
    before = {i: get(direct, i) for i in range(25)}
    sim.clear()
    bot.command("/pitr-diff", f'{LIVE} "{t.isoformat()}"')
    failed = posted(fake, "S3_ACCESS_DENIED")
    text = str(failed.args["text"])
    assert "could not write to the bucket" in text and "/pitr-restore" in text
    (job,) = bot.services.store.job_find()
    assert wait_job(bot, job.id, JobState.FAILED).state == JobState.FAILED
    assert {i: get(direct, i) for i in range(25)} == before
    assert sim.count("PutItem") == sim.count("DeleteItem") == sim.count("UpdateItem") == 0


def test_without_a_bucket_one_clear_message_and_nothing_changes(make_bot, fake, sim):
    live_table(sim, items=5)
    bot = make_bot(policy=COPY_BACK_ON)
    sim.clear()
    posts = len(fake.calls("chat.postMessage"))
    bot.command("/pitr-diff", f'{LIVE} "2 hours ago"')
    said = bot.wait_reply("U1", "exports are not set up")
    assert "PITR_BOT_EXPORT_S3" in said and "/pitr-restore" in said
    assert len([t for t in bot.replies_to("U1") if "not set up" in t.lower()]) == 1
    assert bot.services.store.job_find() == []
    assert sim.requests("ExportTableToPointInTime") == []
    assert len(fake.calls("chat.postMessage")) == posts


def test_refusals_say_why_and_start_nothing(make_bot, fake, sim):
    live_table(sim, items=5)
    policy = Policy(requesters=["U1"], rules=[{"tables": [LIVE], "copy_back": True}])
    bot = make_bot(policy=policy, PITR_BOT_EXPORT_S3=EXPORT_S3)
    sim.clear()
    posts = len(fake.calls("chat.postMessage"))
    bot.command("/pitr-diff", f'{LIVE} "2 hours ago"', user="U3")  # may not ask
    bot.wait_reply("U3", "not allowed")
    old = instant(sim, 36 * 24)  # before the 35-day PITR window
    bot.command("/pitr-diff", f"{LIVE} {int(old.timestamp())}", user="U1")
    said = bot.wait_reply("U1", "outside the table's point-in-time recovery window")
    assert "earliest instant" in said
    bot.command("/pitr-diff", "NoPitrTable '2 hours ago'", user="U1")
    bot.wait_reply("U1", "Point-in-time recovery is off")
    assert bot.services.store.job_find() == []
    assert sim.requests("ExportTableToPointInTime") == []
    assert len(fake.calls("chat.postMessage")) == posts


def test_the_periods_sent_are_the_planned_ones_ending_at_the_latest_restorable_time(
    make_bot, fake, sim
):
    live_table(sim, items=5)
    t = instant(sim, 30)
    bot = make_bot(policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3)
    sim.clear()
    asked = sim.now()
    bot.command("/pitr-diff", f"{LIVE} {int(t.timestamp())}")
    posted(fake, "0 deleted, 0 changed, 0 added")
    (job,) = bot.services.store.job_find()
    planned = [
        (datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"]))
        for p in bot.services.store.job_get(job.id).export["periods"]
    ]
    sent = [
        (
            datetime.fromtimestamp(
                float(r["IncrementalExportSpecification"]["ExportFromTime"]), UTC
            ),
            datetime.fromtimestamp(float(r["IncrementalExportSpecification"]["ExportToTime"]), UTC),
        )
        for r in sim.requests("ExportTableToPointInTime")
    ]
    # What was sent is what the plan says (to the microsecond botocore carries), ...
    assert len(sent) == len(planned) == 2
    for (a, b), (pa, pb) in zip(sent, planned, strict=True):
        assert abs((a - pa).total_seconds()) < 1e-5 and abs((b - pb).total_seconds()) < 1e-5
        assert timedelta(minutes=15) <= b - a <= timedelta(hours=24)
    assert sent[0][0] == t and sent[0][1] == sent[1][0]
    # ... and the last period ends at the latest restorable time DynamoDB reported (the
    # simulator's is 5 minutes behind its clock), never after it.
    latest = datetime.fromtimestamp(asked - 300, UTC)
    assert latest - timedelta(seconds=1) <= sent[-1][1] <= latest + timedelta(seconds=5)
    assert sent[-1][1].microsecond == 0


def test_an_sse_kms_bucket_s_key_goes_with_every_export_request(make_bot, fake, sim):
    live_table(sim, items=5)
    t = instant(sim, 2)
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    bot = make_bot(
        policy=COPY_BACK_ON, PITR_BOT_EXPORT_S3=EXPORT_S3, PITR_BOT_EXPORT_S3_KMS_KEY=key
    )
    sim.clear()
    bot.command("/pitr-diff", f"{LIVE} {int(t.timestamp())}")
    posted(fake, "0 deleted, 0 changed, 0 added")
    (request,) = sim.requests("ExportTableToPointInTime")
    assert request["S3SseAlgorithm"] == "KMS" and request["S3SseKmsKeyId"] == key
    # Kept on the job: a restart repeats this very request, whatever the settings say then.
    (job,) = bot.services.store.job_find()
    assert bot.services.store.job_get(job.id).export["kms_key"] == key
