"""The cleanup reminder over HTTP: it fires, survives a restart, and its Delete needs approval.

`remind_after_days` is a tiny fraction of a day here (0.00002 days is about 1.7 s).
"""

from __future__ import annotations

import time

import pytest

from bot.policy import Policy
from e2e.harness import button_labels

SOURCE = "MusicCollection"


def is_reminder(target: str):
    return lambda c: (
        c.method == "chat.postMessage"
        and f"Cleanup reminder: {target}" in str(c.args.get("text", ""))
    )


def wait_field(bot, restore_id: str, field: str, value=None, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = bot.services.store.get(restore_id)
        got = getattr(req, field)
        if (value is None and got) or (value is not None and got == value):
            return req
        time.sleep(0.05)
    raise AssertionError(f"{field} never became {value!r}: {bot.services.store.get(restore_id)}")


def test_reminder_fires_and_delete_needs_another_persons_approval(make_bot, fake, sim):
    bot = make_bot(policy=Policy(remind_after_days=0.00002))
    req = bot.restore_to_active(SOURCE, "MusicTemp")
    reminder = fake.wait_for(is_reminder("MusicTemp"), timeout=60)[0]
    assert reminder.args["thread_ts"] == bot.services.store.get(req.id).card_ts
    assert "still exists" in reminder.args["text"] + str(reminder.args["blocks"])
    assert "5 items" in str(reminder.args["blocks"])
    assert button_labels(reminder.args) == ["Delete table"]
    assert len(fake.wait_for(is_reminder("MusicTemp"))) == 1  # sent once

    req = wait_field(bot, req.id, "reminder_ts")
    bot.click("pitr_delete_table", req.id, "U1")
    card = fake.wait_for(
        lambda c: c.method == "chat.update" and c.args.get("ts") == req.reminder_ts
    )[-1]
    assert button_labels(card.args) == ["Approve", "Deny"]

    bot.click("pitr_delete_approve", req.id, "U1")  # four eyes: not the one who asked
    bot.wait_reply("U1", "someone else")
    sim.client(direct=True).describe_table(TableName="MusicTemp")

    bot.click("pitr_delete_approve", req.id, "U2")
    wait_field(bot, req.id, "delete_state", "DELETED")
    direct = sim.client(direct=True)
    with pytest.raises(direct.exceptions.ResourceNotFoundException):
        direct.describe_table(TableName="MusicTemp")
    bot.click("pitr_delete_approve", req.id, "U3")  # a late double click: nothing twice
    bot.wait_reply("U3", "already deleted")
    assert sim.count("DeleteTable") == 1
    fake.wait_for(
        lambda c: c.method == "chat.postMessage" and "deleted" in str(c.args.get("text", ""))
    )
    events = [e.event for e in bot.services.store.audit_events()]
    for event in ("reminder_due", "delete_requested", "delete_approval_refused", "table_deleted"):
        assert event in events


def test_reminder_survives_a_restart(make_bot, fake, sim):
    # About 17 s: room for the restore, its after-ACTIVE reply and the stop before it is due,
    # however busy the machine (the first process must not send it).
    policy = Policy(remind_after_days=0.0002)
    first = make_bot(policy=policy)
    req = first.restore_to_active(SOURCE, "MusicRestart")
    wait_field(first, req.id, "aftercare_ts")
    first.stop()
    assert not [c for c in fake.calls() if is_reminder("MusicRestart")(c)]

    second = make_bot(policy=policy)  # same sqlite state
    fake.wait_for(is_reminder("MusicRestart"), timeout=60)
    assert second.services.store.get(req.id).reminded_at is not None


def test_deletion_protection_is_respected_and_explained(make_bot, fake, sim):
    bot = make_bot(policy=Policy(remind_after_days=0.00002))
    req = bot.restore_to_active(SOURCE, "MusicKeep")
    direct = sim.client(direct=True)
    direct.update_table(TableName="MusicKeep", DeletionProtectionEnabled=True)
    fake.wait_for(is_reminder("MusicKeep"), timeout=60)
    req = wait_field(bot, req.id, "reminder_ts")
    bot.click("pitr_delete_table", req.id, "U1")
    wait_field(bot, req.id, "delete_state", "REQUESTED")
    bot.click("pitr_delete_approve", req.id, "U2")
    req = wait_field(bot, req.id, "delete_state", "REFUSED")
    refusal = fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage" and "Deletion protection is on" in c.args.get("text", "")
        )
    )[0]
    assert "no-deletion-protection-enabled" in refusal.args["text"]
    assert direct.describe_table(TableName="MusicKeep")["Table"]["TableStatus"] == "ACTIVE"
    assert sim.count("DeleteTable") == 0
    # The reminder offers Delete table again, for after protection is turned off.
    update = [c for c in fake.calls("chat.update") if c.args.get("ts") == req.reminder_ts][-1]
    assert button_labels(update.args) == ["Delete table"]
