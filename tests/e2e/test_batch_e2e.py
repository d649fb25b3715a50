"""Over HTTP: three tables in one command, one card, one Approve, three restores to the same
instant, one progress reply and one broadcast naming all three."""

from __future__ import annotations

import time

from support.fake_slack import buttons

from bot.batches.engine import members_of

TABLES = ("MusicCollection", "Payments", "Ledger")


def wait_leader(bot, fake, timeout: float = 30):
    """The batch's leader once its card is posted and recorded on every table of the batch
    (the members have no card of their own; their threads are the card's)."""
    fake.wait_for(
        lambda c: c.method == "chat.postMessage" and not c.args.get("thread_ts"), timeout=timeout
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = bot.services.store.find()
        leaders = [r for r in found if r.batch_id == r.id and r.card_ts]
        batch = [r for r in found if leaders and r.batch_id == leaders[0].id]
        if leaders and all(r.card_ts for r in batch):
            return leaders[0]
        time.sleep(0.02)
    raise AssertionError("the batch card was posted but not recorded on every table")


def test_a_batch_end_to_end(make_bot, fake, sim):
    sim.create_table("Payments", pitr=True, items=2)
    sim.create_table("Ledger", pitr=True, items=2)
    bot = make_bot(creating_seconds=0.5)

    bot.command("/pitr-restore", 'MusicCollection,Payments,Ledger -copy "1 hour ago"')
    leader = wait_leader(bot, fake)
    assert len(bot.cards()) == 1
    card = bot.cards()[0]
    assert buttons(card) == ["Approve", "Deny"]
    text = str(card.args["blocks"])
    assert "Restore 3 tables to one instant" in text
    assert all(f"{t}-copy" in text for t in TABLES)

    bot.approve(leader.id, "U2")
    for member in members_of(bot.services.store, leader.id):
        bot.wait_state(member.id, "ACTIVE", timeout=30)
    calls = sim.requests("RestoreTableToPointInTime")
    assert sorted(c["TargetTableName"] for c in calls) == sorted(f"{t}-copy" for t in TABLES)
    assert len({c["RestoreDateTime"] for c in calls}) == 1  # one instant for all

    broadcast = fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage" and c.args.get("reply_broadcast") in (True, "true", "1")
        ),
        timeout=30,
    )
    assert len(broadcast) == 1
    summary = broadcast[0].args["text"]
    assert "3 of 3 tables restored" in summary
    assert all(f"{t}-copy ACTIVE" in summary for t in TABLES)
    card_ts = bot.services.store.get(leader.id).card_ts
    assert broadcast[0].args["thread_ts"] == card_ts
    progress = [
        c
        for c in fake.calls("chat.postMessage")
        if c.args.get("thread_ts") == card_ts and "Restoring 3 tables" in c.args.get("text", "")
    ]
    assert len(progress) == 1  # one reply, edited in place
    # Each table's own follow-ups (differences, cleanup reminder) go to the same thread.
    members = members_of(bot.services.store, leader.id)
    assert {m.card_ts for m in members} == {card_ts}


def test_a_denied_batch_tells_the_requester_every_table(make_bot, fake, sim):
    sim.create_table("Payments", pitr=True, items=2)
    sim.create_table("Ledger", pitr=True, items=2)
    bot = make_bot()

    bot.command("/pitr-restore", "MusicCollection,Payments,Ledger -copy latest")
    leader = wait_leader(bot, fake)
    bot.deny(leader.id, "U2")
    notice = fake.wait_for(
        lambda c: c.method == "chat.postEphemeral" and "denied by" in c.args.get("text", ""),
        timeout=30,
    )
    text = notice[0].args["text"]
    assert notice[0].args["user"] == "U1"
    # Every source -> target, not just the leader's table.
    assert all(f"`{t}` → `{t}-copy`" in text for t in TABLES), text
    for member in members_of(bot.services.store, leader.id):
        assert bot.services.store.get(member.id).state.value == "DENIED"
    assert sim.requests("RestoreTableToPointInTime") == []
