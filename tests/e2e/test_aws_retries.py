"""AWS as it really behaves: a restore call whose reply is lost after AWS accepted it.

botocore retries RestoreTableToPointInTime after a 500; the retry meets the table the first
attempt created. The bot must see its own restore there, track it to ACTIVE and start no other.
"""

from __future__ import annotations

import pytest

FAILURE_WORDS = ("failed", "already exists", "pick another")


@pytest.mark.parametrize("when", ["latest", "30 minutes ago"])
def test_a_lost_reply_to_an_accepted_restore_is_tracked_to_active(make_bot, fake, sim, when):
    bot = make_bot(creating_seconds=1)
    sim.lose_reply("RestoreTableToPointInTime")  # moto restores, the bot's client gets a 500

    bot.command("/pitr-restore", f"MusicCollection MusicCopy {when}")
    req = bot.wait_card()
    bot.approve(req.id, "U2")

    # What a person sees: the normal broadcast reply naming the new table and ACTIVE.
    final = fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage" and c.args.get("reply_broadcast") in (True, "true", "1")
        ),
        timeout=30,
    )[0]
    final_text = final.args["text"] + str(final.args.get("blocks"))
    assert "MusicCopy" in final_text and "ACTIVE" in final_text
    done = bot.services.store.get(req.id)
    assert done.state.value == "ACTIVE", done.error
    assert done.error is None

    # botocore did retry, the retry met the table, and exactly one restore took effect.
    assert sim.count("RestoreTableToPointInTime") >= 2
    assert sim.accepted("RestoreTableToPointInTime") == 1
    assert sim.client(direct=True).describe_table(TableName="MusicCopy")["Table"]["ItemCount"] == 5
    thread = [
        str(c.args.get("text", "")) + str(c.args.get("blocks", ""))
        for c in fake.calls("chat.postMessage") + fake.calls("chat.update")
        if c.args.get("thread_ts") == done.card_ts or c.args.get("ts") == done.progress_ts
    ]
    assert not [t for t in thread if any(w in t.lower() for w in FAILURE_WORDS)], thread
    events = [e.event for e in bot.services.store.audit_events()]
    assert events.count("restore_started") == 1 and "restore_failed" not in events


def test_a_foreign_table_met_by_the_restore_call_is_a_failure_naming_the_target(
    make_bot, fake, sim
):
    bot = make_bot()
    bot.command("/pitr-restore", "MusicCollection MusicCopy latest")
    req = bot.wait_card()
    sim.create_table("MusicCopy", pitr=False, items=0)  # someone else takes the name meanwhile
    bot.approve(req.id, "U2")
    failed = bot.wait_state(req.id, "FAILED", timeout=20)
    assert "`MusicCopy` already exists" in failed.error
    assert sim.accepted("RestoreTableToPointInTime") == 0
