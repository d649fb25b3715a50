"""Slack gets its answer at once (3 s limit); the slow AWS work happens after the ack.

"Slow" here is a held call (see support/gates.py), not a sleep: the ack must arrive while AWS
has not answered at all, which holds on a fast machine and a busy one alike.
"""

from __future__ import annotations

from e2e.process import wait_until


def aws_calls(sim, *ops: str) -> int:
    return sum(sim.count(op) for op in ops)


def test_restore_command_is_acked_before_any_aws_call(bot, fake, sim):
    # The bot acks, then looks the requester up (users.info), then asks AWS. Holding users.info
    # freezes it between the two: any AWS call seen now was made before the ack.
    fake.hold("users.info")
    sim.hold("DescribeTable")
    sim.hold("DescribeContinuousBackups")

    resp = bot.command("/pitr-restore", "MusicCollection SlowAwsCopy latest", user="U1")
    assert resp.status == 200
    assert "Checking" in resp.body
    assert aws_calls(sim, "DescribeTable", "DescribeContinuousBackups") == 0

    fake.release("users.info")
    wait_until(lambda: sim.gates.waiting("DescribeTable") >= 1, 30, "the preflight to reach AWS")
    assert fake.calls("chat.postMessage") == []  # no card while AWS has not answered

    sim.release()
    req = bot.wait_card(timeout=30)
    card = bot.cards()[0]
    assert "SlowAwsCopy" in str(card.args["blocks"])
    bot.wait_reply("U1", "Someone else has to click")
    assert req.state.value == "REQUESTED"
    assert sim.count("DescribeTable") == 2  # source and target
    assert sim.count("DescribeContinuousBackups") == 1


def test_refusal_after_slow_preflight_still_reaches_the_requester(bot, fake, sim):
    sim.hold("DescribeTable")
    resp = bot.command("/pitr-restore", "Missing SlowMissingCopy latest", user="U1")
    assert resp.status == 200
    wait_until(lambda: sim.gates.waiting("DescribeTable") >= 1, 30, "the preflight to reach AWS")
    assert bot.replies_to("U1") == []  # not yet: DescribeTable is still on its way

    sim.release()
    reply = bot.wait_reply("U1", "does not exist", timeout=30)
    assert "Missing" in reply
    assert fake.calls("chat.postMessage") == []


def test_approve_click_is_acked_while_restore_call_is_slow(bot, fake, sim):
    bot.command("/pitr-restore", "MusicCollection SlowRestoreCopy latest", user="U1")
    req = bot.wait_card()
    sim.hold("RestoreTableToPointInTime")

    resp = bot.approve(req.id, "U2")
    assert resp.status == 200
    # Slack has its answer; AWS has not answered the restore call (it is held).
    assert sim.accepted("RestoreTableToPointInTime") == 0
    wait_until(lambda: sim.gates.waiting("RestoreTableToPointInTime") == 1, 30, "the restore call")

    sim.release()
    done = bot.wait_state(req.id, "ACTIVE", timeout=30)
    assert sim.count("RestoreTableToPointInTime") == 1
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
    for op in ("DescribeTable", "DescribeContinuousBackups", "UpdateContinuousBackups"):
        sim.hold(op)
    status = bot.command("/pitr-status", "MusicCollection", user="U3")
    enable = bot.command("/pitr-enable", "NoPitrTable 7", user="U2")
    assert status.status == 200 and enable.status == 200
    assert bot.replies_to("U3") == [] and bot.replies_to("U2") == []

    sim.release()
    calls = fake.wait_for(
        lambda c: c.method == "response_url" and c.args.get("_path", "").endswith("/U3"),
        timeout=30,
    )
    assert "ENABLED" in str(calls[0].args.get("blocks"))
    bot.wait_reply("U2", "PITR is now ENABLED", timeout=30)
    assert sim.count("UpdateContinuousBackups") == 1
