"""Reliability of the shipped process: `pitr-bot serve` killed, restarted, throttled, cut off.

Every test runs the real entry point (`python -m bot serve`) as child processes configured by
environment only; Slack is a FakeSlack and AWS is moto behind the simulating proxy, so faults
are injected on the wire, exactly where production would see them.

Not here (item "long restore"): a process-level restore of hours would take hours of wall
clock, since the child has no clock that a test can move; the engine's 3-hour fake-clock test
in tests/unit/test_workflow.py covers it.
"""

from __future__ import annotations

import json
import signal
import time

from e2e.process import (
    SOURCE,
    Bots,
    approve,
    broadcasts,
    cards,
    request_restore,
    sqlite_request,
    wait_until,
)

TOKEN = "xoxb-reliability-e2e-token-4c8e1d"  # noqa: S105 - a test secret
SECRET = "reliability-signing-secret-93b0f7"  # noqa: S105
POLL = 0.3


def stored(bots: Bots, restore_id: str) -> dict:
    doc = sqlite_request(bots.sqlite_path, restore_id)
    assert doc is not None, restore_id
    return doc


def settle(seconds: float = 3 * POLL + 1.0) -> None:
    """Give a duplicate (if the bot were to send one) time to show up before counting."""
    time.sleep(seconds)


def assert_done_once(fake, target: str) -> None:
    done = broadcasts(fake, target)
    assert len(done) == 1, fake.dump()
    assert "ACTIVE" in str(done[0].args.get("text", "")), fake.dump()


# -- crashes and restarts ---------------------------------------------------------------------


def test_kill_9_while_creating_is_tracked_to_active_by_the_next_process(bots, fake, sim):
    target = "KilledWhileCreating"
    sim.hold_creating(target)  # CREATING until the test says otherwise, however busy the machine
    first = bots.start("first", poll_seconds=POLL)
    restore_id = request_restore(first, SECRET, fake, target)
    assert approve(first, SECRET, fake, restore_id, "U2").status == 200

    # The first process has called AWS and seen the new table CREATING at least once.
    wait_until(
        lambda: (doc := stored(bots, restore_id))["table_arn"] and doc["polls"] >= 1,
        60,
        "the first process to record the restore and poll it",
    )
    first.kill()  # SIGKILL: no release of the lease, no goodbye
    assert stored(bots, restore_id)["state"] == "RESTORING"

    second = bots.start("second", poll_seconds=POLL)
    sim.finish_creating(target)
    wait_until(lambda: broadcasts(fake, target), 60, "the completion broadcast")
    settle()

    assert_done_once(fake, target)
    assert sim.count("RestoreTableToPointInTime") == 1
    doc = stored(bots, restore_id)
    assert doc["state"] == "ACTIVE" and doc["lease_owner"] is None
    # The new process did the work (its lines may follow the broadcast its announcer sent).
    wait_until(
        lambda: f'"restore_id": "{restore_id}"' in second.stderr(), 30, "the second's log lines"
    )
    assert second.terminate() == 0, second.stderr()


def test_kill_9_during_the_restore_call_adopts_the_table_and_does_not_restore_twice(
    bots, fake, sim
):
    """A crash after AWS accepted the restore but before the bot recorded it."""
    target = "KilledDuringTheCall"
    sim.hold_creating(target)
    sim.hold("RestoreTableToPointInTime")  # AWS has the call; the bot never gets the answer
    first = bots.start("first", poll_seconds=POLL)
    restore_id = request_restore(first, SECRET, fake, target)
    assert approve(first, SECRET, fake, restore_id, "U2").status == 200
    wait_until(lambda: sim.gates.waiting("RestoreTableToPointInTime") == 1, 60, "the restore call")
    first.kill()  # the call is still held by the proxy; AWS carries it out anyway
    sim.release()
    wait_until(lambda: sim.is_creating(target), 60, "AWS to have started the restore")
    doc = stored(bots, restore_id)
    assert doc["state"] == "RESTORING" and doc["table_arn"] is None  # never recorded

    bots.start("second", poll_seconds=POLL)
    sim.finish_creating(target)
    wait_until(lambda: broadcasts(fake, target), 60, "the completion broadcast")
    settle()

    assert_done_once(fake, target)
    assert sim.count("RestoreTableToPointInTime") == 1  # adopted, not called again
    assert stored(bots, restore_id)["state"] == "ACTIVE"


def test_kill_9_during_the_restore_call_then_throttled_describe_still_adopts(bots, fake, sim):
    """As above, but the new process's DescribeTable is throttled beyond botocore's retries.

    "Could not tell whether the table exists" must not be taken for "it does not exist": that
    leads to a second RestoreTableToPointInTime and, refused, to a restore reported FAILED
    while AWS is creating the table.
    """
    target = "KilledThenThrottled"
    sim.hold_creating(target)
    sim.hold("RestoreTableToPointInTime")  # AWS has the call; the bot never gets the answer
    first = bots.start("first", poll_seconds=POLL)
    restore_id = request_restore(first, SECRET, fake, target)
    assert approve(first, SECRET, fake, restore_id, "U2").status == 200
    wait_until(lambda: sim.gates.waiting("RestoreTableToPointInTime") == 1, 60, "the restore call")
    first.kill()
    sim.release()
    wait_until(lambda: sim.is_creating(target), 60, "AWS to have started the restore")
    sim.finish_creating(target)  # ACTIVE as soon as the throttling lets a DescribeTable through

    sim.fail("DescribeTable", times=14, code="ThrottlingException")  # two botocore rounds
    bots.start("second", poll_seconds=POLL, fast_botocore=True)
    wait_until(lambda: broadcasts(fake, target), 60, "the final broadcast")
    settle()

    assert_done_once(fake, target)
    assert stored(bots, restore_id)["state"] == "ACTIVE"
    assert sim.count("RestoreTableToPointInTime") == 1


def test_a_card_posted_before_a_graceful_restart_can_be_approved_after_it(bots, fake, sim):
    target = "ApprovedAfterRestart"
    sim.creating_for[target] = 1
    first = bots.start("first", poll_seconds=POLL)
    restore_id = request_restore(first, SECRET, fake, target)
    assert first.terminate() == 0, first.stderr()
    assert first.healthz() is None

    second = bots.start("second", poll_seconds=POLL)
    assert approve(second, SECRET, fake, restore_id, "U2").status == 200
    wait_until(lambda: broadcasts(fake, target), 60, "the completion broadcast")
    settle()

    assert sim.count("RestoreTableToPointInTime") == 1
    assert_done_once(fake, target)
    assert len(cards(fake, target)) == 1  # the old card was used, not posted again
    doc = stored(bots, restore_id)
    assert doc["state"] == "ACTIVE" and doc["decided_by"] == "U2"


# -- throttling and outages -------------------------------------------------------------------


def test_slack_429s_and_aws_throttling_beyond_botocore_retries_still_restore_once(bots, fake, sim):
    """botocore gives up after 7 attempts; the bot must carry on across its own ticks.

    The child's botocore retry clock runs 50x faster (process.compress_botocore_time): with
    real timing each exhausted call costs 25-60 s of backoff and client-side rate limiting.
    """
    target = "ThrottledAllTheWay"
    sim.creating_for[target] = 1
    bot = bots.start("bot", poll_seconds=POLL, fast_botocore=True)

    fake.fail("chat.postMessage", times=2, status=429, retry_after=1)
    restore_id = request_restore(bot, SECRET, fake, target)
    rate_limited = [c for c in fake.calls("chat.postMessage") if c.failed]
    assert [c.status for c in rate_limited] == [429, 429]
    assert len(cards(fake, target)) == 1

    described_before = sim.count("DescribeTable")
    sim.fail("DescribeTable", times=8, code="ThrottlingException")
    sim.fail("RestoreTableToPointInTime", times=8, code="ThrottlingException")
    assert approve(bot, SECRET, fake, restore_id, "U2").status == 200
    wait_until(lambda: broadcasts(fake, target), 60, "the completion broadcast")
    settle()

    # 8 throttled attempts (7 by botocore, then 1 on the bot's next try) and one real call.
    assert sim.count("RestoreTableToPointInTime") == 9
    assert sim.count("DescribeTable") - described_before >= 9  # all 8 throttles were hit
    assert target in sim.client(direct=True).list_tables()["TableNames"]
    assert_done_once(fake, target)
    assert len(cards(fake, target)) == 1
    doc = stored(bots, restore_id)
    assert doc["state"] == "ACTIVE" and doc["error_streak"] == 0
    metrics = bot.metrics()
    assert 'pitr_bot_aws_errors_total{code="ThrottlingException"}' in metrics


def test_slack_down_for_a_minute_at_completion_is_announced_once_it_is_back(bots, fake, sim):
    target = "DoneWhileSlackIsDown"
    sim.creating_for[target] = 120  # until the test says otherwise
    bot = bots.start("bot", poll_seconds=POLL)
    restore_id = request_restore(bot, SECRET, fake, target)
    assert approve(bot, SECRET, fake, restore_id, "U2").status == 200
    wait_until(
        lambda: (doc := stored(bots, restore_id))["progress_ts"] and doc["polls"] >= 1,
        60,
        "the restore to be started and its progress reply posted",
    )
    assert bot.readyz()[0] == 200

    fake.set_down(True)
    down_at = time.monotonic()
    sim.creating_for[target] = 0  # ACTIVE at the next poll, with Slack down
    wait_until(lambda: stored(bots, restore_id)["state"] == "ACTIVE", 60, "ACTIVE in the store")
    # /readyz asks Slack at most every 15 s, so it notices the outage within that.
    body = wait_until(
        lambda: (r := bot.readyz())[0] == 503 and r[1], 45, "/readyz 503 with Slack down"
    )
    assert json.loads(body) == {"store": "ok", "slack": "unreachable"}, body
    time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
    assert broadcasts(fake, target) == []
    tried = [c for c in fake.calls("chat.postMessage") if c.failed and c.args.get("thread_ts")]
    assert tried, "the bot never tried to announce during the outage"
    fake.set_down(False)
    up_at = time.time()

    # Backoff is capped at 30 s per item (plus Slack's own retries of each call).
    wait_until(lambda: broadcasts(fake, target), 45, "the broadcast after Slack came back")
    print(f"announced {broadcasts(fake, target)[0].at - up_at:.1f}s after Slack came back")
    settle()
    assert_done_once(fake, target)
    assert broadcasts(fake, target)[0].at >= up_at
    wait_until(lambda: bot.readyz()[0] == 200, 20, "/readyz to recover with Slack")
    assert sim.count("RestoreTableToPointInTime") == 1


# -- shutdown, readiness, metrics, logs -------------------------------------------------------


def test_sigterm_with_restores_in_flight_exits_zero_within_10s(bots, fake, sim):
    targets = ["InFlightOne", "InFlightTwo"]
    bot = bots.start("bot", poll_seconds=POLL)
    ids = []
    for target in targets:
        sim.creating_for[target] = 300
        restore_id = request_restore(bot, SECRET, fake, target)
        assert approve(bot, SECRET, fake, restore_id, "U2").status == 200
        ids.append(restore_id)
    for restore_id in ids:
        wait_until(
            lambda rid=restore_id: stored(bots, rid)["polls"] >= 1, 60, "both restores polled"
        )
    sim.slow("DescribeTable", 1.0)  # a poll is likely in the middle of an AWS call
    time.sleep(POLL)

    started = time.monotonic()
    bot.proc.send_signal(signal.SIGTERM)
    code = bot.proc.wait(timeout=30)
    elapsed = time.monotonic() - started
    print(f"SIGTERM -> exit in {elapsed:.2f}s with 2 restores in flight")
    assert code == 0, bot.stderr()
    for restore_id in ids:
        doc = stored(bots, restore_id)
        assert doc["state"] == "RESTORING"
        assert doc["lease_owner"] is None, "lease not released on shutdown"


def test_readyz_is_503_while_the_store_is_unreachable_and_200_again_after(tmp_path, fake, sim):
    group = Bots(tmp_path, fake, sim.env, TOKEN, SECRET, state="dynamodb://pitr-state")
    try:
        bot = group.start("bot", poll_seconds=POLL)
        wait_until(lambda: bot.readyz()[0] == 200, 20, "/readyz 200 at start")

        sim.fail("DescribeTable", times=1000, code="InternalServerError", status=500)
        # /readyz keeps its store check for 2 s (PITR_BOT_OPS_BIND item): wait for the change.
        status, body = wait_until(
            lambda: (r := bot.readyz())[0] == 503 and r, 20, "/readyz 503 with the store down"
        )
        checks = json.loads(body)
        assert checks["store"].startswith("unreachable"), checks
        assert checks["slack"] == "ok", checks

        sim.heal("DescribeTable")
        status, body = wait_until(
            lambda: (r := bot.readyz())[0] == 200 and r, 20, "/readyz 200 with the store back"
        )
        assert json.loads(body) == {"store": "ok", "slack": "ok"}
        assert bot.healthz() == 200  # liveness never depended on the store
    finally:
        group.kill_all()


def test_metrics_count_a_command_an_approval_and_a_finished_restore(bots, fake, sim):
    target = "CountedRestore"
    sim.creating_for[target] = 1
    bot = bots.start("bot", poll_seconds=POLL)
    restore_id = request_restore(bot, SECRET, fake, target)
    assert approve(bot, SECRET, fake, restore_id, "U2").status == 200
    wait_until(lambda: broadcasts(fake, target), 60, "the completion broadcast")

    # The tracker counts restore_finished after the store write that queues the broadcast, and
    # the announcer's thread may send the broadcast first: wait until every count is there
    # (a count of 2 never matches, so a double count still fails).
    lines = (
        'pitr_bot_requests_total{kind="/pitr-restore"} 1.0',
        'pitr_bot_requests_total{kind="pitr_approve"} 1.0',
        'pitr_bot_events_total{event="requested"} 1.0',
        'pitr_bot_events_total{event="approved"} 1.0',
        'pitr_bot_events_total{event="restore_started"} 1.0',
        'pitr_bot_events_total{event="restore_finished"} 1.0',
        'pitr_bot_restores{state="RESTORING"} 0.0',
    )

    def counted() -> str:
        metrics = bot.metrics()
        return metrics if all(line in metrics.splitlines() for line in lines) else ""

    try:
        metrics = wait_until(counted, 30, "the metrics to count the finished restore")
    except AssertionError:
        metrics = bot.metrics()
        missing = [line for line in lines if line not in metrics.splitlines()]
        raise AssertionError(f"{missing} not in:\n{metrics}") from None
    assert "pitr_bot_tracking_lag_seconds" in metrics


def test_logs_are_json_with_the_restore_id_and_no_secret(bots, fake, sim):
    target = "LoggedRestore"
    sim.creating_for[target] = 1
    # DEBUG: the level at which libraries are most likely to print a token.
    bot = bots.start("bot", poll_seconds=POLL, PITR_BOT_LOG_LEVEL="DEBUG")
    restore_id = request_restore(bot, SECRET, fake, target)
    assert approve(bot, SECRET, fake, restore_id, "U2").status == 200
    wait_until(lambda: broadcasts(fake, target), 60, "the completion broadcast")
    assert bot.terminate() == 0, bot.stderr()

    output = bot.stderr() + bot.stdout()
    assert TOKEN not in output
    assert SECRET not in output
    records = bot.json_logs()  # every line, not just ours
    assert {"time", "level", "logger", "message"} <= set(records[0])

    ours = [r for r in records if r["logger"].split(".")[0] in {"bot", "commands"}]
    about = [r for r in ours if restore_id in r["message"]]
    assert len(about) >= 4, ours  # requested, approved, called, ACTIVE at least
    missing = [r["message"] for r in about if r.get("restore_id") != restore_id]
    assert not missing, f"lines about {restore_id} without its restore_id: {missing}"
    tagged = [r for r in records if r.get("restore_id") == restore_id]
    assert any("ACTIVE" in r["message"] for r in tagged), tagged
    assert all(r["message"] for r in records)
    assert SOURCE in json.dumps(about)
