"""Break-glass over HTTP: the requester approves their own restore after a reason, where the
policy allows it; the channel, the approvers and the audit trail know; another approver
reviews it. Never for a copy back or a shorter recovery period."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.audit_export import rows
from bot.engine.break_glass import REMIND_EVERY
from bot.items.jobs import JobState
from bot.policy import Policy
from bot.restores import utcnow
from commands.break_glass import DIALOG, REASON_ACTION, REASON_BLOCK, REVIEW_ACTION
from commands.items import APPROVE_ACTION as ITEMS_APPROVE
from commands.items import UNDO_ACTION, decision_value
from e2e.harness import button_labels
from e2e.test_attacks_authz import SOURCE, period, set_period, wait_request
from e2e.test_copy_back import (
    COPY_MISSING_ACTION,
    MISSING,
    compare,
    get,
    order,
    posted,
    restored_then_changed,
    wait_job,
)
from e2e.test_home import home_opened, publishes
from e2e.test_reminders import wait_field

TABLE = "MusicCollection"
REASON = "orders table corrupted at 03:10, nobody else on call"
BREAK_GLASS = Policy(rules=[{"tables": ["*"], "break_glass": True, "approvers": ["U2", "U3"]}])


def reason(text: str) -> dict:
    return {REASON_BLOCK: {REASON_ACTION: {"type": "plain_text_input", "value": text}}}


def dialogs(fake) -> list:
    return [
        c
        for c in fake.calls("views.open")
        if (c.args.get("view") or {}).get("callback_id") == DIALOG
    ]


def test_self_approval_is_refused_without_break_glass(make_bot, fake, sim):
    bot = make_bot(policy=Policy(approvers=["U2"]))
    bot.command("/pitr-restore", f"{TABLE} GlassOff latest")
    req = bot.wait_card()
    bot.approve(req.id, "U1")
    bot.wait_reply("U1", "someone else has to approve")
    assert dialogs(fake) == []
    assert bot.services.store.get(req.id).state.value == "REQUESTED"
    assert sim.count("RestoreTableToPointInTime") == 0


def test_break_glass_after_the_dialog_tells_everyone_and_waits_for_a_review(make_bot, fake, sim):
    bot = make_bot(policy=BREAK_GLASS)
    bot.command("/pitr-restore", f"{TABLE} GlassOn latest")
    req = bot.wait_card()

    # The requester's Approve opens the dialog; nothing is approved yet.
    bot.approve(req.id, "U1")
    (dialog,) = fake.wait_for(
        lambda c: (
            c.method == "views.open" and (c.args.get("view") or {}).get("callback_id") == DIALOG
        )
    )
    assert dialog.args["trigger_id"] and dialog.args["view"]["private_metadata"] == req.id
    assert bot.services.store.get(req.id).state.value == "REQUESTED"

    # Too short a reason: an inline error, nothing done.
    short = bot.sender.submit(DIALOG, reason("need it now"), "U1", private_metadata=req.id)
    assert short.status == 200
    assert short.json()["response_action"] == "errors" and REASON_BLOCK in short.json()["errors"]
    assert bot.services.store.get(req.id).state.value == "REQUESTED"
    assert sim.count("RestoreTableToPointInTime") == 0

    ok = bot.sender.submit(DIALOG, reason(REASON), "U1", private_metadata=req.id)
    assert ok.status == 200
    done = bot.wait_state(req.id, "ACTIVE")
    assert done.approvals == ("U1",) and done.break_glass_reason == REASON

    # The channel is told, with a review card; every approver gets a direct message.
    review = fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.args.get("channel") == "C1"
            and "Break-glass" in str(c.args.get("text"))
        )
    )[0]
    assert not review.args.get("thread_ts") and button_labels(review.args) == ["Reviewed"]
    assert REASON in str(review.args["text"])
    for approver in ("U2", "U3"):
        fake.wait_for(
            lambda c, a=approver: c.method == "chat.postMessage" and c.args.get("channel") == a
        )
    assert not [c for c in fake.calls("chat.postMessage") if c.args.get("channel") == "U1"]

    # The audit entry is marked, and the export says so.
    approved = [e for e in bot.services.store.audit_events() if e.event == "approved"]
    assert [e.detail for e in approved] == [f"break-glass: {REASON}"]
    exported = [r for r in rows(bot.services.store) if r["event"] == "approved"]
    assert [r["break_glass"] for r in exported] == ["yes"]

    # Unreviewed: reminders in the review card's thread (once per period), and the App Home.
    bot.quiet()
    review_ts = bot.services.store.get(req.id).review_ts
    later = utcnow() + REMIND_EVERY + timedelta(minutes=1)
    assert bot.services.workflow.break_glass.remind(later) == 1
    assert bot.services.workflow.break_glass.remind(later) == 0  # already reminded
    reminder = fake.wait_for(
        lambda c: c.method == "chat.postMessage" and "Reminder" in str(c.args.get("text"))
    )[0]
    assert reminder.args["thread_ts"] == review_ts and "<@U2>" in reminder.args["text"]
    home_opened(bot, "U2")
    fake.wait_for(lambda c: c.method == "views.publish" and c.args.get("user_id") == "U2")
    assert "review pending" in json.dumps(publishes(fake, "U2")[-1].args["view"])

    # The requester cannot review it; another approver can, once.
    bot.quiet()
    bot.click(REVIEW_ACTION, req.id, "U1")
    bot.wait_reply("U1", "someone else")
    assert bot.services.store.get(req.id).reviewed_by is None
    bot.click(REVIEW_ACTION, req.id, "U2")
    update = fake.wait_for(
        lambda c: c.method == "chat.update" and "Reviewed by <@U2>" in str(c.args.get("text"))
    )[0]
    assert button_labels(update.args) == []
    assert bot.services.store.get(req.id).reviewed_by == "U2"
    assert "break_glass_reviewed" in [e.event for e in bot.services.store.audit_events()]
    assert bot.services.workflow.break_glass.remind(later + REMIND_EVERY * 2) == 0  # reviewed


def test_a_forged_dialog_submission_without_break_glass_approves_nothing(make_bot, fake, sim):
    bot = make_bot(policy=Policy(approvers=["U2"]))
    bot.command("/pitr-restore", f"{TABLE} GlassForged latest")
    req = bot.wait_card()
    bot.sender.submit(DIALOG, reason(REASON), "U1", private_metadata=req.id)
    fake.wait_for(
        lambda c: c.method == "chat.postEphemeral" and "four-eyes" in str(c.args.get("text"))
    )
    assert bot.services.store.get(req.id).state.value == "REQUESTED"
    assert sim.count("RestoreTableToPointInTime") == 0
    # Someone else than the requester submitting it: refused too.
    bot.sender.submit(DIALOG, reason(REASON), "U3", private_metadata=req.id)
    fake.wait_for(
        lambda c: c.method == "chat.postEphemeral" and "Only the person who asked" in str(c.args)
    )
    assert bot.services.store.get(req.id).state.value == "REQUESTED"


def test_break_glass_never_shortens_the_recovery_period(make_bot, fake, sim):
    bot = make_bot(policy=BREAK_GLASS)
    set_period(sim, SOURCE, 35)
    bot.command("/pitr-enable", f"{SOURCE} 7", user="U1")
    req = wait_request(bot, "pitr_period")
    bot.approve(req.id, "U1")
    bot.wait_reply("U1", "someone else has to approve")
    assert dialogs(fake) == []
    # A forged dialog submission for it: refused as well.
    bot.sender.submit(DIALOG, reason(REASON), "U1", private_metadata=req.id)
    fake.wait_for(
        lambda c: c.method == "chat.postEphemeral" and "single restore only" in str(c.args)
    )
    assert bot.services.store.get(req.id).state.value == "REQUESTED"
    assert period(sim, SOURCE) == 35


def test_break_glass_never_approves_a_copy_back(make_bot, fake, sim):
    policy = Policy(rules=[{"tables": ["*"], "break_glass": True, "copy_back": True}])
    bot, req, _ = restored_then_changed(sim, make_bot, policy)
    _, job = compare(bot, fake, req)
    bot.click(COPY_MISSING_ACTION, job.id, "U1")
    posted(fake, "Copy back 12 items into orders?")
    bot.click(ITEMS_APPROVE, job.id, "U1")  # the copy-back card's Approve, the asker's own
    bot.wait_reply("U1", "four-eyes")
    assert dialogs(fake) == []
    assert bot.services.store.job_get(job.id).state == JobState.COPY_REQUESTED
    # A forged dialog submission naming the job: nothing.
    bot.sender.submit(DIALOG, reason(REASON), "U1", private_metadata=job.id)
    bot.quiet()
    assert bot.services.store.job_get(job.id).state == JobState.COPY_REQUESTED
    assert json.dumps([c.args for c in fake.calls("chat.postMessage")]).count("Break-glass") == 0


def test_break_glass_never_approves_an_undo_copy_back(make_bot, fake, sim):
    policy = Policy(rules=[{"tables": ["*"], "break_glass": True, "copy_back": True}])
    bot, req, direct = restored_then_changed(sim, make_bot, policy)
    _, job = compare(bot, fake, req)
    bot.click(COPY_MISSING_ACTION, job.id, "U1")
    posted(fake, "Copy back 12 items into orders?")
    bot.click(ITEMS_APPROVE, job.id, "U2")
    posted(fake, "Copy back into orders: 12 written")
    wait_job(bot, job.id, JobState.COPIED)

    bot.click(UNDO_ACTION, job.id, "U1")
    posted(fake, "Undo copy back into orders?")
    bot.click(ITEMS_APPROVE, decision_value(job.id, undo=True), "U1")  # the asker's own
    bot.wait_reply("U1", "four-eyes")
    assert dialogs(fake) == []
    # A forged dialog submission naming the job: nothing either.
    bot.sender.submit(DIALOG, reason(REASON), "U1", private_metadata=job.id)
    bot.quiet()
    assert bot.services.store.job_get(job.id).state == JobState.UNDO_REQUESTED
    for i in MISSING:
        assert get(direct, i) == order(i)  # what the copy back wrote is still there
    assert json.dumps([c.args for c in fake.calls("chat.postMessage")]).count("Break-glass") == 0
    assert "Undo of copy back" not in json.dumps([c.args for c in fake.calls("chat.postMessage")])


def test_break_glass_never_approves_deleting_a_restored_table(make_bot, fake, sim):
    policy = Policy(
        rules=[{"tables": ["*"], "break_glass": True, "approvers": ["U2", "U3"]}],
        remind_after_days=0.00002,
    )
    bot = make_bot(policy=policy)
    req = bot.restore_to_active(TABLE, "GlassDelete")
    req = wait_field(bot, req.id, "reminder_ts")
    bot.click("pitr_delete_table", req.id, "U1")
    wait_field(bot, req.id, "delete_state", "REQUESTED")

    bot.click("pitr_delete_approve", req.id, "U1")  # the asker's own approval
    bot.wait_reply("U1", "four-eyes")
    assert dialogs(fake) == []
    # The restore card's Approve and a forged dialog submission naming the restore: nothing.
    bot.approve(req.id, "U1")
    bot.sender.submit(DIALOG, reason(REASON), "U1", private_metadata=req.id)
    fake.wait_for(
        lambda c: c.method == "chat.postEphemeral" and "nothing to approve" in str(c.args)
    )
    bot.quiet()
    assert dialogs(fake) == []
    after = bot.services.store.get(req.id)
    assert after.delete_state == "REQUESTED" and after.delete_decided_by is None
    assert not after.break_glass_reason
    sim.client(direct=True).describe_table(TableName="GlassDelete")  # still there
    assert sim.count("DeleteTable") == 0
    assert json.dumps([c.args for c in fake.calls("chat.postMessage")]).count("Break-glass") == 0


def test_break_glass_messages_every_member_of_an_approver_group(make_bot, fake, sim):
    # Approvers may be a user group (S…): its members are approvers, so each gets the message.
    fake.groups["S0ONCALL"] = ["U4", "U5", "U1"]
    policy = Policy(rules=[{"tables": ["*"], "break_glass": True, "approvers": ["S0ONCALL"]}])
    bot = make_bot(policy=policy)
    bot.command("/pitr-restore", f"{TABLE} GlassGroup latest")
    req = bot.wait_card()
    bot.approve(req.id, "U1")
    fake.wait_for(lambda c: c.method == "views.open")
    assert bot.sender.submit(DIALOG, reason(REASON), "U1", private_metadata=req.id).status == 200
    bot.wait_state(req.id, "ACTIVE")
    for member in ("U4", "U5"):
        fake.wait_for(
            lambda c, a=member: c.method == "chat.postMessage" and c.args.get("channel") == a
        )
    bot.quiet()
    # Never the requester (a member of the group too), never the group id itself.
    sent = {c.args.get("channel") for c in fake.calls("chat.postMessage")}
    assert "U1" not in sent and "S0ONCALL" not in sent
