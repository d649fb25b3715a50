"""Slack gets its answer at once (3 s limit); the slow AWS work happens after the ack."""

from __future__ import annotations

import threading
import time

SLOW = 2.5


def record_arrivals(sim) -> list[tuple[str, float]]:
    """Wrap the proxy's bookkeeping so every DynamoDB request gets an arrival timestamp.

    The proxy calls `sim._on_request` as soon as a request arrives (before any slowness), in
    this process, so time.monotonic() is comparable with the test's own clock.
    """
    arrivals: list[tuple[str, float]] = []
    lock = threading.Lock()
    original = sim._on_request

    def on_request(op, body):
        with lock:
            arrivals.append((op, time.monotonic()))
        return original(op, body)

    sim._on_request = on_request
    return arrivals


def slow_users_info(fake, seconds: float) -> None:
    """Delay FakeSlack's users.info answer (the bot's first call after acking).

    A correct bot acks, then asks users.info, then DynamoDB; without this the gap between the
    ack reaching the test and the first DescribeTable is a few milliseconds, too close to
    compare clocks reliably on a busy machine. A bot that called AWS before acking still fails.
    """
    original = fake._answer

    def answer(method, args):
        if method == "users.info":
            time.sleep(seconds)
        return original(method, args)

    fake._answer = answer


def test_restore_command_is_acked_before_any_aws_call(bot, fake, sim):
    sim.slow("DescribeTable", SLOW)
    sim.slow("DescribeContinuousBackups", SLOW)
    slow_users_info(fake, 0.3)
    arrivals = record_arrivals(sim)

    resp = bot.command("/pitr-restore", "MusicCollection SlowAwsCopy latest", user="U1")
    answered = time.monotonic()
    answered_wall = time.time()
    describes_at_answer = sim.count("DescribeTable") + sim.count("DescribeContinuousBackups")

    assert resp.status == 200
    assert resp.elapsed < 1.0, f"ack took {resp.elapsed:.2f}s while AWS is slow"
    assert "Checking" in resp.body
    assert describes_at_answer == 0

    # The card still comes, after the slow preflight (source, PITR, target: 3 slow calls).
    req = bot.wait_card(timeout=15)
    card = bot.cards()[0]
    # Source, its PITR and the target were each described slowly, all after the answer.
    assert card.at - answered_wall >= 3 * SLOW - 0.2
    assert "SlowAwsCopy" in str(card.args["blocks"])
    bot.wait_reply("U1", "Someone else has to click")
    assert req.state.value == "REQUESTED"

    # Order: nothing reached AWS before Slack had its answer.
    aws = [(op, at) for op, at in arrivals if op in ("DescribeTable", "DescribeContinuousBackups")]
    assert aws, arrivals
    first = min(at for _, at in aws)
    assert first > answered, f"AWS was called {answered - first:.3f}s before Slack got its ack"
    assert sim.count("DescribeTable") == 2  # source and target
    assert sim.count("DescribeContinuousBackups") == 1


def test_refusal_after_slow_preflight_still_reaches_the_requester(bot, fake, sim):
    sim.slow("DescribeTable", 1.0)
    resp = bot.command("/pitr-restore", "Missing SlowMissingCopy latest", user="U1")
    assert resp.status == 200
    assert resp.elapsed < 1.0
    assert bot.replies_to("U1") == []  # not yet: DescribeTable is still on its way
    reply = bot.wait_reply("U1", "does not exist", timeout=10)
    assert "Missing" in reply
    assert fake.calls("chat.postMessage") == []


def test_approve_click_is_acked_while_restore_call_is_slow(bot, fake, sim):
    bot.command("/pitr-restore", "MusicCollection SlowRestoreCopy latest", user="U1")
    req = bot.wait_card()
    sim.slow("RestoreTableToPointInTime", SLOW)
    arrivals = record_arrivals(sim)

    clicked = time.monotonic()
    resp = bot.approve(req.id, "U2")
    answered = time.monotonic()
    assert resp.status == 200
    assert resp.elapsed < 1.0, f"approve ack took {resp.elapsed:.2f}s while AWS is slow"

    # The restore call is made exactly once, and the journey still finishes.
    done = bot.wait_state(req.id, "ACTIVE", timeout=15)
    assert time.monotonic() - clicked >= SLOW - 0.2
    assert sim.count("RestoreTableToPointInTime") == 1
    starts = [at for op, at in arrivals if op == "RestoreTableToPointInTime"]
    assert len(starts) == 1
    # Slack had its answer more than a second before AWS answered the (slow) restore call.
    assert answered < starts[0] + SLOW - 1.0

    fake.wait_for(
        lambda c: (
            c.method == "chat.update"
            and c.args.get("ts") == done.card_ts
            and "ACTIVE" in c.args.get("text", "")
        )
    )
    fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.args.get("thread_ts") == done.card_ts
            and c.args.get("reply_broadcast") in (True, "true", "1")
        )
    )
    # U2's click was accepted, not refused.
    assert not [r for r in bot.replies_to("U2") if ":warning:" in r]


def test_status_and_enable_are_acked_while_aws_is_slow(bot, fake, sim):
    sim.slow("DescribeTable", 1.0)
    sim.slow("DescribeContinuousBackups", 1.0)
    sim.slow("UpdateContinuousBackups", 1.0)
    status = bot.command("/pitr-status", "MusicCollection", user="U3")
    enable = bot.command("/pitr-enable", "NoPitrTable 7", user="U2")
    assert status.status == 200 and enable.status == 200
    assert status.elapsed < 1.0, f"/pitr-status ack took {status.elapsed:.2f}s"
    assert enable.elapsed < 1.0, f"/pitr-enable ack took {enable.elapsed:.2f}s"
    assert bot.replies_to("U3") == [] and bot.replies_to("U2") == []

    calls = fake.wait_for(
        lambda c: c.method == "response_url" and c.args.get("_path", "").endswith("/U3"),
        timeout=10,
    )
    assert "ENABLED" in str(calls[0].args.get("blocks"))
    bot.wait_reply("U2", "PITR is now ENABLED", timeout=10)
    assert sim.count("UpdateContinuousBackups") == 1
