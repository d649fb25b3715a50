"""Restore drills over HTTP: /pitr-drill, a scheduled drill, the start-up sweep, refusals."""

from __future__ import annotations

import time

from support.drills import leftover_drill

from bot.aftercare.rules import MARKER_TAG
from bot.drills.model import DRILL_TAG, DrillState, slot_drill_id
from bot.policy import Policy

NEVER_DUE = "0 0 1 1 *"  # 1 January 00:00 UTC: never due while these tests run (outside it)
SOURCE = "MusicCollection"


def drill_policy(every: str = NEVER_DUE, **kw) -> Policy:
    return Policy(drills=[{"tables": [SOURCE], "every": every, "channel": "C9"}], **kw)


def reports(fake) -> list:
    """Top-level messages in the drills' channel (where reports go)."""
    return [
        c
        for c in fake.calls("chat.postMessage")
        if c.args.get("channel") == "C9" and not c.args.get("thread_ts") and not c.failed
    ]


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def tables(sim) -> list[str]:
    return sim.client(direct=True).list_tables()["TableNames"]


def test_pitr_drill_restores_verifies_deletes_and_reports_one_line(make_bot, fake, sim):
    bot = make_bot(policy=drill_policy(), creating_seconds=1.0)

    resp = bot.command("/pitr-drill", SOURCE)
    assert resp.status == 200
    bot.wait_reply("U1", "drill of")
    (report,) = wait_until(lambda: reports(fake), 30, "the drill report")

    (drill,) = bot.services.store.drill_find(source=SOURCE)
    assert drill.state == DrillState.PASSED, drill
    assert drill.requested_by == "U1"
    # Restored: the latest restorable time, into the drill's own table.
    (restore,) = sim.requests("RestoreTableToPointInTime")
    assert restore["SourceTableName"] == SOURCE
    assert restore["UseLatestRestorableTime"] is True
    assert restore["TargetTableName"] == drill.target
    assert drill.target.startswith(f"{SOURCE}-drill-")
    # Tracked through CREATING, marked as the bot's with the drill's id, verified.
    assert bot.creating.describe_calls >= 2
    tags = [t for r in sim.requests("TagResource") for t in r["Tags"]]
    assert {"Key": DRILL_TAG, "Value": drill.id} in tags
    assert not [t for t in tags if t["Key"] == MARKER_TAG]  # the restores' marker: never
    assert (drill.items, drill.source_items, drill.sampled, drill.matched) == (5, 5, 5, 5)
    assert drill.restore_duration is not None and drill.restore_duration.total_seconds() >= 1
    # Deleted: its own table only, once.
    assert [r["TableName"] for r in sim.requests("DeleteTable")] == [drill.target]
    assert drill.target not in tables(sim) and SOURCE in tables(sim)
    # One line in the drill's channel, a channel message.
    text = report.args["text"]
    assert "passed" in text and "5 items" in text and "restored in" in text
    assert "\n" not in text
    events = [e.event for e in bot.services.store.audit_events(table=SOURCE)]
    assert events == [
        "drill_requested",
        "drill_started",
        "drill_restored",
        "drill_verified",
        "drill_passed",
    ]

    # /pitr-status shows the last drill and the range; /metrics the duration and success time.
    bot.command("/pitr-status", SOURCE)
    bot.wait_reply("U1", "last drill passed")
    metrics = bot.services.metrics.render().decode()
    assert f'pitr_bot_drill_last_success_timestamp_seconds{{table="{SOURCE}"}}' in metrics
    assert f'pitr_bot_drill_duration_seconds{{table="{SOURCE}"}}' in metrics
    assert len(reports(fake)) == 1


def test_drill_refusals_leave_no_side_effect(make_bot, fake, sim):
    bot = make_bot(policy=drill_policy(requesters=["U2"]))
    sim.clear()

    bot.command("/pitr-drill", "NoPitrTable", user="U2")  # not listed under drills
    text = bot.wait_reply("U2", "has no restore drill")
    assert "drills:" in text
    bot.command("/pitr-drill", SOURCE, user="U1")  # listed, but U1 may not request
    bot.wait_reply("U1", "not allowed")
    bot.command("/pitr-drill", "")  # no table
    bot.wait_reply("U1", "Usage")

    assert sim.count("RestoreTableToPointInTime") == 0
    assert sim.count("DescribeTable") == 0
    assert fake.calls("chat.postMessage") == []
    assert bot.services.store.drill_find(limit=10) == []
    assert bot.services.store.audit_events() == []


def test_scheduled_drills_run_at_their_slot_once_across_two_replicas(make_bot, fake, sim):
    policy = drill_policy(every="3s")
    first = make_bot(policy=policy, creating_seconds=0.3, poll_seconds=0.2)
    second = make_bot(policy=policy, creating_seconds=0.3, poll_seconds=0.2)  # same state file
    store = first.services.store

    def passed():
        done = store.drill_find(states=[DrillState.PASSED], source=SOURCE)
        return done if len(done) >= 2 else None

    wait_until(passed, 45, "two scheduled drills to pass")
    wait_until(lambda: len(reports(fake)) >= 2, 30, "their reports")
    first.stop()
    second.stop()

    drills = store.drill_find(source=SOURCE, limit=100)
    slots = [d.slot for d in drills]
    assert len(slots) == len(set(slots))  # one drill per slot, whichever replica claimed it
    for drill in drills:
        assert drill.requested_by is None
        assert drill.id == slot_drill_id(SOURCE, drill.slot)
        assert drill.slot.timestamp() % 3 == 0  # the schedule's instants
        if drill.restore_called_at is not None:
            assert drill.restore_called_at >= drill.slot  # ran at its time, not before
    called = [d for d in drills if d.restore_called_at is not None]
    assert sim.count("RestoreTableToPointInTime") == len(called)
    finished = [d for d in drills if d.final]
    # One report a finished drill at most (one finished just before the stop may still be
    # owed: it waits in the outbox).
    assert 2 <= len(reports(fake)) <= len(finished)


def test_a_leftover_drill_table_is_deleted_at_start_only_if_the_store_knows_its_drill(
    make_bot, sim
):
    direct = sim.client(direct=True)
    known = f"{SOURCE}-drill-202612302359"  # a finished drill's table, its cleanup lost
    made = {}
    for name in (
        f"{SOURCE}-drill-202601010000",  # named like a drill table, but not tagged
        f"{SOURCE}-drill-202612312359",  # tagged with a drill the store does not know
        known,
        "orders-archive",  # tagged but not named like a drill table
    ):
        made[name] = sim.create_table(name, pitr=False, items=1)
    for name in (f"{SOURCE}-drill-202612312359", "orders-archive"):
        direct.tag_resource(
            ResourceArn=made[name]["TableArn"], Tags=[{"Key": DRILL_TAG, "Value": "sgone"}]
        )
    first = make_bot(policy=drill_policy())
    leftover_drill(first.services.store, direct, known, known, source=SOURCE)
    first.stop()

    bot = make_bot(policy=drill_policy())  # the restart's sweep has run when it is up

    swept = [e for e in bot.services.store.audit_events() if e.event == "drill_table_swept"]
    assert [e.table for e in swept] == [known]
    left = tables(sim)
    assert known not in left
    assert {f"{SOURCE}-drill-202601010000", f"{SOURCE}-drill-202612312359"} <= set(left)
    assert "orders-archive" in left
    assert [r["TableName"] for r in sim.requests("DeleteTable")] == [known]
