"""Drills that need approval (a `drills:` entry's `require_approval`), over HTTP: a card in the
drill's channel, nothing restored until another person approves, Deny and expiry start nothing."""

from __future__ import annotations

from bot.drills.card import APPROVE_DRILL_ACTION, DENY_DRILL_ACTION
from bot.drills.model import DrillState
from bot.policy import Policy
from e2e.harness import button_labels
from e2e.test_drills import NEVER_DUE, SOURCE, wait_until


def approval_policy(every: str = NEVER_DUE, **kw) -> Policy:
    entry = {"tables": [SOURCE], "every": every, "channel": "C9", "require_approval": True}
    return Policy(drills=[entry], **kw)


def drill_cards(fake) -> list:
    return [
        c
        for c in fake.calls("chat.postMessage")
        if c.args.get("channel") == "C9" and not c.failed and c.args.get("blocks")
    ]


def the_drill(bot):
    (drill,) = bot.services.store.drill_find(source=SOURCE)
    return drill


def drill_state(bot) -> DrillState | None:
    """The drill's state, None while the command is still being handled (the slash command
    is acknowledged before the drill is written: a wait must not fail on its absence)."""
    drills = bot.services.store.drill_find(source=SOURCE)
    return drills[0].state if drills else None


def test_drill_waits_for_another_persons_approve_then_runs_once(make_bot, fake, sim):
    bot = make_bot(policy=approval_policy(), creating_seconds=0.3)

    bot.command("/pitr-drill", SOURCE, user="U1")
    bot.wait_reply("U1", "Someone else has to click *Approve*")
    (card,) = wait_until(lambda: drill_cards(fake), 30, "the drill's approval card")
    assert button_labels(card.args) == ["Approve", "Deny"]
    drill = the_drill(bot)
    assert drill.state == DrillState.AWAITING_APPROVAL
    wait_until(lambda: the_drill(bot).card_ts, 30, "the card's ts kept")

    # The person who asked may not approve their own drill: refused, nothing written.
    bot.click(APPROVE_DRILL_ACTION, drill.id, "U1", channel="C9")
    bot.wait_reply("U1", "someone else has to approve")
    assert the_drill(bot).state == DrillState.AWAITING_APPROVAL
    assert sim.count("RestoreTableToPointInTime") == 0

    # Another person approves, twice (a double click): one drill, one restore.
    bot.click(APPROVE_DRILL_ACTION, drill.id, "U2", channel="C9")
    bot.click(APPROVE_DRILL_ACTION, drill.id, "U2", channel="C9")
    done = wait_until(
        lambda: (d := the_drill(bot)).state == DrillState.PASSED and d, 45, "the drill to pass"
    )
    assert done.decided_by == "U2"
    assert sim.count("RestoreTableToPointInTime") == 1
    events = [e.event for e in bot.services.store.audit_events(table=SOURCE)]
    assert events[:3] == ["drill_requested", "drill_approved", "drill_started"]
    assert events.count("drill_approved") == 1 and events.count("drill_started") == 1
    # The card loses its buttons once decided.
    updates = wait_until(lambda: fake.calls("chat.update"), 30, "the card's update")
    assert all(not button_labels(u.args) for u in updates)


def test_deny_ends_the_drill_with_nothing_started(make_bot, fake, sim):
    bot = make_bot(policy=approval_policy(approvers=["U3"]))
    bot.command("/pitr-drill", SOURCE, user="U1")
    wait_until(lambda: drill_cards(fake), 30, "the drill's approval card")
    drill = the_drill(bot)

    # Not an approver of the table (the same policy as a restore's): refused, nothing written.
    audit_before = bot.services.store.audit_events()
    bot.click(APPROVE_DRILL_ACTION, drill.id, "U2", channel="C9")
    bot.wait_reply("U2", "not one of the approvers")
    assert the_drill(bot).version == drill.version
    assert bot.services.store.audit_events() == audit_before

    bot.click(DENY_DRILL_ACTION, drill.id, "U3", channel="C9")
    wait_until(lambda: the_drill(bot).state == DrillState.CANCELLED, 30, "the drill cancelled")
    update = wait_until(lambda: fake.calls("chat.update"), 30, "the card's update")[-1]
    assert not button_labels(update.args) and "denied" in str(update.args["blocks"])
    # Approving after the Deny starts nothing.
    bot.click(APPROVE_DRILL_ACTION, drill.id, "U3", channel="C9")
    bot.wait_reply("U3", "already decided")
    assert sim.count("RestoreTableToPointInTime") == 0
    assert the_drill(bot).state == DrillState.CANCELLED
    events = [e.event for e in bot.services.store.audit_events(table=SOURCE)]
    assert events == ["drill_requested", "drill_denied"]


def test_an_unapproved_drill_expires_with_nothing_started(make_bot, fake, sim):
    bot = make_bot(policy=approval_policy(request_ttl_minutes=0.01), poll_seconds=0.2)
    bot.command("/pitr-drill", SOURCE, user="U1")
    wait_until(lambda: drill_state(bot) == DrillState.CANCELLED, 30, "the drill to expire")
    bot.click(APPROVE_DRILL_ACTION, the_drill(bot).id, "U2", channel="C9")
    bot.wait_reply("U2", "already decided")
    assert sim.count("RestoreTableToPointInTime") == 0
    assert the_drill(bot).problem == "not approved in time"


def test_a_scheduled_drill_that_requires_approval_waits_for_its_card(make_bot, fake, sim):
    bot = make_bot(policy=approval_policy(every="2s"), poll_seconds=0.2, creating_seconds=0.3)
    (card,) = wait_until(lambda: drill_cards(fake), 30, "the scheduled drill's card")
    assert "the drill schedule" in str(card.args["blocks"])
    drill = the_drill(bot)  # later slots are skipped while this one waits
    assert drill.requested_by is None and drill.state == DrillState.AWAITING_APPROVAL
    assert sim.count("RestoreTableToPointInTime") == 0

    bot.click(APPROVE_DRILL_ACTION, drill.id, "U2", channel="C9")
    store = bot.services.store
    wait_until(lambda: store.drill_get(drill.id).state == DrillState.PASSED, 45, "the drill")
    assert store.drill_get(drill.id).decided_by == "U2"
