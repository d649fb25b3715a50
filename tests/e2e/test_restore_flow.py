"""The whole journey over HTTP: command -> card -> approval -> one restore -> ACTIVE."""

from __future__ import annotations

import time

from support.fake_slack import buttons

from bot.blocks import APPROVE_ACTION, DENY_ACTION


def test_restore_to_active_end_to_end(make_bot, fake, sim):
    # CREATING until the test has seen the progress reply edited while CREATING: on a busy
    # machine a fixed 1.5 s could pass before the first edit (then no edit says CREATING).
    bot = make_bot(creating_seconds=float("inf"))

    resp = bot.command("/pitr-restore", "MusicCollection MusicCollectionMinutesAgo latest")
    assert resp.status == 200
    assert "Checking" in resp.body

    req = bot.wait_card()
    card = bot.cards()[0]
    assert card.args["channel"] == "C1"
    assert buttons(card) == ["Approve", "Deny"]
    text = str(card.args["blocks"])
    assert "MusicCollection" in text and "MusicCollectionMinutesAgo" in text
    assert "<@U1>" in text  # who asked
    assert "Restorable window" in text
    bot.wait_reply("U1", "Someone else has to click")

    # The requester's own Approve is refused, ephemerally, and starts nothing.
    assert bot.approve(req.id, "U1").status == 200
    bot.wait_reply("U1", "someone else has to approve")
    assert sim.count("RestoreTableToPointInTime") == 0

    # Another person approves: exactly one restore call.
    assert bot.approve(req.id, "U2").status == 200
    restoring = bot.wait_state(req.id, "RESTORING", timeout=30)
    deadline = time.monotonic() + 30
    while not (restoring := bot.services.store.get(req.id)).progress_ts:
        assert time.monotonic() < deadline, restoring
        time.sleep(0.05)
    fake.wait_for(
        lambda c: (
            c.method == "chat.update"
            and c.args.get("ts") == restoring.progress_ts
            and "CREATING" in c.args.get("text", "")
        )
    )
    deadline = time.monotonic() + 30
    while bot.creating.describe_calls < 3:
        assert time.monotonic() < deadline, bot.creating.describe_calls
        time.sleep(0.05)
    bot.creating.seconds = 0  # ACTIVE at the next poll
    bot.wait_state(req.id, "ACTIVE", timeout=30)
    restores = sim.requests("RestoreTableToPointInTime")
    assert len(restores) == 1
    assert restores[0]["SourceTableName"] == "MusicCollection"
    assert restores[0]["TargetTableName"] == "MusicCollectionMinutesAgo"
    assert restores[0]["UseLatestRestorableTime"] is True

    final = fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage" and c.args.get("reply_broadcast") in (True, "true", "1")
        )
    )[0]
    final_text = final.args["text"] + str(final.args.get("blocks"))
    assert "MusicCollectionMinutesAgo" in final_text and "ACTIVE" in final_text
    assert final.args["thread_ts"] == bot.services.store.get(req.id).card_ts
    assert "Not carried over" in final_text and "time to live" in final_text

    # Progress: one reply in the thread, kept up to date with chat.update while CREATING.
    done = bot.services.store.get(req.id)
    assert bot.creating.describe_calls >= 3
    progress_updates = [
        c for c in fake.calls("chat.update") if c.args.get("ts") == done.progress_ts
    ]
    assert any("CREATING" in c.args.get("text", "") for c in progress_updates)
    # The after-ACTIVE comparison is a third reply, sent by the announcer's other lane (after
    # AWS reads), before or after the broadcast: count once nothing is owed, and apart.
    bot.quiet()
    thread_posts = [
        c
        for c in fake.calls("chat.postMessage")
        if c.args.get("thread_ts") == done.card_ts and not c.failed
    ]
    comparison = [c for c in thread_posts if "compared with" in str(c.args.get("text", ""))]
    assert len(comparison) == 1, fake.dump()
    # Besides it: the progress reply and the final broadcast, no flood.
    assert len(thread_posts) - len(comparison) == 2, fake.dump()

    # The card lost its buttons and shows the approver.
    fake.wait_for(
        lambda c: (
            c.method == "chat.update"
            and c.args.get("ts") == done.card_ts
            and "ACTIVE" in c.args.get("text", "")
        )
    )
    last_card = [c for c in fake.calls("chat.update") if c.args.get("ts") == done.card_ts][-1]
    assert buttons(last_card) == []
    assert "<@U2>" in str(last_card.args["blocks"])


def test_deny_restores_nothing_and_tells_requester(bot, fake, sim):
    bot.command("/pitr-restore", "MusicCollection Denied-copy latest")
    req = bot.wait_card()
    bot.deny(req.id, "U2")
    bot.wait_state(req.id, "DENIED")
    fake.wait_for(lambda c: c.method == "chat.postEphemeral" and c.args.get("user") == "U1")
    notice = [c for c in fake.calls("chat.postEphemeral") if c.args.get("user") == "U1"][-1]
    assert "denied" in notice.args["text"]
    fake.wait_for(
        lambda c: (
            c.method == "chat.update"
            and c.args.get("ts") == req.card_ts
            and "Denied" in c.args.get("text", "")
        )
    )
    # A later Approve does nothing but explain.
    bot.approve(req.id, "U3")
    bot.wait_reply("U3", "already denied")
    assert sim.count("RestoreTableToPointInTime") == 0
    assert bot.services.store.get(req.id).state.value == "DENIED"
    assert APPROVE_ACTION and DENY_ACTION


def test_requester_withdrawing_is_told_withdrawn_not_denied(bot, fake, sim):
    bot.command("/pitr-restore", "MusicCollection Withdrawn-copy latest")
    req = bot.wait_card()
    bot.deny(req.id, "U1")  # the requester's own Deny withdraws the request
    bot.wait_state(req.id, "DENIED")
    fake.wait_for(lambda c: c.method == "chat.postEphemeral" and c.args.get("user") == "U1")
    notice = [c for c in fake.calls("chat.postEphemeral") if c.args.get("user") == "U1"][-1]
    assert "You withdrew" in notice.args["text"] and "denied" not in notice.args["text"]
    card = fake.wait_for(
        lambda c: (
            c.method == "chat.update"
            and c.args.get("ts") == req.card_ts
            and "Withdrawn" in c.args.get("text", "")
        )
    )[-1]
    assert "Denied" not in str(card.args["blocks"])
    (entry,) = [e for e in bot.services.store.audit_events() if e.event == "denied"]
    assert entry.actor == "U1" and entry.detail == "withdrawn by the requester"
    assert sim.count("RestoreTableToPointInTime") == 0


def test_card_shows_size_window_and_an_estimate_once_history_exists(bot, fake, sim):
    bot.command("/pitr-restore", "MusicCollection First-copy latest")
    first = bot.wait_card()
    bot.approve(first.id, "U2")
    bot.wait_state(first.id, "ACTIVE")
    fake.clear()

    bot.command("/pitr-restore", "MusicCollection Second-copy latest")
    fake.wait_for(lambda c: c.method == "chat.postMessage" and "Second-copy" in c.args["text"])
    card = [c for c in bot.cards() if "Second-copy" in c.args["text"]][0]
    text = str(card.args["blocks"])
    assert "5 items" in text  # the source's item count (the fixture puts 5)
    assert "Restorable window" in text and " → " in text
    assert "1 earlier restore of `MusicCollection`" in text  # the first one, from the store
    first_card = str(first)  # the first card had no history to go on
    assert first.estimate == "no history", first_card


def test_active_is_announced_even_if_the_progress_reply_is_gone(make_bot, fake, sim):
    """Someone deleted the progress reply: its last edit fails for good, the broadcast doesn't."""
    bot = make_bot(creating_seconds=1.0)
    bot.command("/pitr-restore", "MusicCollection Deleted-progress latest")
    req = bot.wait_card()
    bot.approve(req.id, "U2")
    fake.wait_for(lambda c: c.method == "chat.postMessage" and c.args.get("thread_ts"))
    fake.fail("chat.update", times=1000, status=200, error="message_not_found")
    bot.wait_state(req.id, "ACTIVE")
    final = fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.args.get("reply_broadcast") in (True, "true", "1")
            and not c.failed
        )
    )
    assert "Deleted-progress" in final[0].args["text"] and "ACTIVE" in final[0].args["text"]
