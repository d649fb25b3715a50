"""Issue 10's classes on the surfaces added after it, over signed HTTP against the real app:
Compare items / `/pitr-diff`, Copy back with its Approve / Deny, Undo copy back, `/pitr-drill`
and the App Home's drills.

| attack                                                       | expected answer                  |
|--------------------------------------------------------------|----------------------------------|
| `/pitr-diff` from a channel outside `channels`               | refused, no job, no Scan/Query   |
| `/pitr-drill` of a table outside `tables`, from a channel    | refused, no drill, no AWS call   |
| outside `channels`, by someone who may not request           |                                  |
| App Home of someone who may neither request nor approve      | that table's drills absent       |
| each item button (Compare, Copy back ×2, Approve, Deny,      | nothing done: job unchanged, no  |
| Undo) from another channel or another workspace              | AWS call, no Slack post          |
| one approval where the live table's rule needs two           | still waiting, nothing written   |
| (copy back and undo)                                         |                                  |
| a captured copy-back Approve replayed once an undo waits     | 200, nothing: the undo waits     |
| a batch card's Approve / Deny from another channel/workspace | nothing done, no AWS call        |
| Compare items after the restored table's name was reused     | refused, nothing read            |
| Copy back / Undo after the live table was re-created         | refused, nothing written         |
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from support.signed import block_action_body

from bot.batches.engine import members_of
from bot.items.jobs import JobState
from bot.policy import Policy, Rule
from commands.items import (
    APPROVE_ACTION,
    COMPARE_ACTION,
    COPY_ALL_ACTION,
    COPY_MISSING_ACTION,
    DENY_ACTION,
    UNDO_ACTION,
    decision_value,
)
from e2e.test_attacks_authz import reuse_name, wait_field
from e2e.test_attacks_authz import snapshot as refusal_snapshot
from e2e.test_attacks_http import raw_post, signed_headers
from e2e.test_batch_e2e import wait_leader
from e2e.test_copy_back import (
    COPY_BACK_ON,
    LIVE,
    MISSING,
    RESTORED,
    compare,
    get,
    order,
    posted,
    restored_then_changed,
    wait_job,
)
from e2e.test_home import home_opened, publishes

ITEM_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")
AWS_READS = ("Scan", "Query", "DescribeTable", "DescribeContinuousBackups", "ListTables")


def snapshot(bot: Any, sim: Any, fake: Any) -> dict[str, Any]:
    """What a refused click or command must leave as it was: the attack tests' snapshot
    (requests, audit, AWS writes, Slack posts), plus item jobs and drills."""
    store = bot.services.store
    return {
        **refusal_snapshot(bot, sim, fake),  # waits until the bot owes Slack nothing
        "jobs": sorted((j.id, j.version, j.state) for j in store.job_find(limit=100)),
        "drills": len(store.drill_find(limit=100)),
    }


def restored(sim: Any, make_bot: Any, policy: Policy = COPY_BACK_ON) -> tuple[Any, Any, Any]:
    """restored_then_changed, and its after-ACTIVE checks done (they read AWS in the background)."""
    bot, req, direct = restored_then_changed(sim, make_bot, policy=policy)
    wait_field(bot, req.id, "aftercare_ts")
    return bot, req, direct


def no_aws(sim: Any, ops: tuple[str, ...] = ITEM_WRITES + AWS_READS) -> None:
    for op in ops:
        assert sim.count(op) == 0, op


def settle() -> None:
    """A refused request has nothing to wait for; give a wrongly accepted one time to act."""
    time.sleep(1.0)


# -- class 4: visibility ----------------------------------------------------------------------
def test_pitr_diff_from_a_channel_outside_the_policy_is_refused_without_aws(make_bot, fake, sim):
    policy = Policy(channels=["C1"], rules=[{"tables": [LIVE], "copy_back": True}])
    bot, _, _ = restored(sim, make_bot, policy=policy)
    sim.clear()
    before = snapshot(bot, sim, fake)
    assert bot.command("/pitr-diff", RESTORED, user="U1", channel="C9").status == 200
    bot.wait_reply("U1", "in this channel")
    no_aws(sim)
    after = snapshot(bot, sim, fake)
    # The refusal is audited (as a refused restore request is); nothing else changes.
    assert bot.services.store.audit_events(limit=1)[0].event == "compare_refused"
    assert {**after, "audit": before["audit"]} == before


DRILLS = {
    "drills": [{"tables": ["MusicCollection", "SecretLedger"], "every": "7d", "channel": "C1"}]
}


@pytest.mark.parametrize(
    ("policy", "user", "table", "channel", "says"),
    [
        (Policy(tables=["Music*"], **DRILLS), "U1", "SecretLedger", "C1", "not covered"),
        (Policy(channels=["C1"], **DRILLS), "U1", "MusicCollection", "C9", "in this channel"),
        (
            Policy(rules=[Rule(tables=["Music*"], requesters=["U1"], approvers=["U2"])], **DRILLS),
            "U3",
            "MusicCollection",
            "C1",
            "not allowed",
        ),
    ],
    ids=["table outside tables", "channel outside channels", "neither requester nor approver"],
)
def test_pitr_drill_outside_the_policy_is_refused_without_aws(
    make_bot, fake, sim, policy, user, table, channel, says
):
    sim.create_table("SecretLedger", pitr=True)
    bot = make_bot(policy=policy)
    sim.clear()
    before = snapshot(bot, sim, fake)
    assert bot.command("/pitr-drill", table, user=user, channel=channel).status == 200
    bot.wait_reply(user, says)
    no_aws(sim, AWS_READS + ("RestoreTableToPointInTime",))
    assert snapshot(bot, sim, fake) == before


def test_home_drills_show_only_the_tables_a_person_may_see(make_bot, fake, sim):
    sim.create_table("SecretLedger", pitr=True)
    drills = {"tables": ["SecretLedger"], "every": "0 0 1 1 *", "channel": "C1"}
    rule = Rule(tables=["Secret*"], requesters=["U1"], approvers=["U2"])
    bot = make_bot(policy=Policy(rules=[rule], drills=[drills]))
    bot.command("/pitr-drill", "SecretLedger", user="U1")
    bot.wait_reply("U1", "Restore drill of `SecretLedger` started")

    home_opened(bot, user="U3", n=1)
    outsider = json.dumps(fake.wait_for(lambda c: c in publishes(fake, "U3"))[0].args)
    assert "Restore drills" in outsider and "SecretLedger" not in outsider
    home_opened(bot, user="U2", n=2)
    approver = json.dumps(fake.wait_for(lambda c: c in publishes(fake, "U2"))[0].args)
    assert "Restore drill of `SecretLedger`" in approver or "SecretLedger" in approver


# -- class 5: a card's buttons count only from its channel and workspace ----------------------
def _waiting_copy_back(bot: Any, fake: Any, job: Any) -> None:
    bot.click(COPY_MISSING_ACTION, job.id, "U1")
    posted(fake, "Copy back 12 items into orders?")
    settled_job(bot, job.id, "decision_ts")


def settled_job(bot: Any, job_id: str, field: str, timeout: float = 30) -> Any:
    """The job once `field` (a message it posted) is recorded: no write of it is still owed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = bot.services.store.job_get(job_id)
        if getattr(job, field):
            bot.quiet()  # the announcer's last edit of the message, if any, is sent
            return bot.services.store.job_get(job_id)
        time.sleep(0.05)
    raise AssertionError(f"{field} never set: {bot.services.store.job_get(job_id)}")


BUTTONS = [
    # (action, the job's state before the click; the value is the job's id unless "restore")
    (COMPARE_ACTION, "restore"),
    (COPY_MISSING_ACTION, JobState.COMPARED),
    (COPY_ALL_ACTION, JobState.COMPARED),
    (APPROVE_ACTION, JobState.COPY_REQUESTED),
    (DENY_ACTION, JobState.COPY_REQUESTED),
    (UNDO_ACTION, JobState.COPIED),
]


@pytest.mark.parametrize("where", ["another channel", "another workspace"])
def test_item_buttons_count_only_from_their_cards_channel_and_workspace(make_bot, fake, sim, where):
    bot, req, direct = restored(sim, make_bot)
    _, job = compare(bot, fake, req)
    channel, team = ("C666", "T1") if where == "another channel" else ("C1", "T666")
    for action, state in BUTTONS:
        current = bot.services.store.job_get(job.id).state
        if state == JobState.COPY_REQUESTED and current != state:
            _waiting_copy_back(bot, fake, job)
        if state == JobState.COPIED and current != state:
            bot.click(APPROVE_ACTION, job.id, "U2")
            posted(fake, "Copy back into orders: 12 written")
            wait_job(bot, job.id, JobState.COPIED)
        value = req.id if state == "restore" else job.id
        # What the last click set off (its card edits, and the AWS reads a sender may make
        # first) is done before the AWS counters are cleared and the snapshot is taken.
        bot.quiet()
        sim.clear()
        before = snapshot(bot, sim, fake)
        body = block_action_body(
            action,
            value,
            "U2",
            channel,
            "1700000000.000001",
            bot.fake.response_url("click-U2"),
            team_id=team,
        )
        resp = bot.sender.post(body)
        assert resp.status == (200 if where == "another channel" else 403), action
        settle()
        no_aws(sim)
        assert snapshot(bot, sim, fake) == before, action
        assert [t for t in bot.replies_to("U2") if "Copy back requested" in t] == []


# -- approver rules: the same as a restore of the live table ----------------------------------
def test_copy_back_and_undo_need_as_many_approvals_as_a_restore_of_the_live_table(
    make_bot, fake, sim
):
    sim.create_table(LIVE, items=0)
    direct = sim.client(direct=True)
    for i in range(20):
        direct.put_item(TableName=LIVE, Item=order(i))
    policy = Policy(rules=[{"tables": [LIVE], "copy_back": True, "required_approvals": 2}])
    bot = make_bot(policy=policy)
    bot.command("/pitr-restore", f"{LIVE} {RESTORED} latest")
    req = bot.wait_card()
    bot.approve(req.id, "U2")
    bot.approve(req.id, "U3")  # the restore needs two: so does writing to the live table
    bot.wait_state(req.id, "ACTIVE", timeout=20)
    for i in MISSING:
        direct.delete_item(TableName=LIVE, Key={"pk": order(i)["pk"]})
    bot.click(COMPARE_ACTION, req.id, "U1")
    posted(fake, "12 missing, 0 changed, 0 added")
    (job,) = bot.services.store.job_find()
    _waiting_copy_back(bot, fake, job)
    sim.clear()
    bot.click(APPROVE_ACTION, job.id, "U2")
    bot.wait_reply("U2", "1 more")
    settle()
    assert bot.services.store.job_get(job.id).state == JobState.COPY_REQUESTED
    assert sim.count("PutItem") == 0 and get(direct, 0) is None
    bot.click(APPROVE_ACTION, job.id, "U2")  # the same person twice is still one approval
    bot.wait_reply("U2", "already approved")
    assert bot.services.store.job_get(job.id).state == JobState.COPY_REQUESTED
    bot.click(APPROVE_ACTION, job.id, "U3")
    posted(fake, "Copy back into orders: 12 written")
    assert get(direct, 0) == order(0)

    wait_job(bot, job.id, JobState.COPIED)
    bot.click(UNDO_ACTION, job.id, "U1")
    posted(fake, "Undo copy back into orders?")
    sim.clear()
    # U3 approved the copy back: the undo starts a fresh count.
    bot.click(APPROVE_ACTION, decision_value(job.id, undo=True), "U3")
    bot.wait_reply("U3", "1 more")
    settle()
    assert bot.services.store.job_get(job.id).state == JobState.UNDO_REQUESTED
    assert sim.count("DeleteItem") == 0 and get(direct, 0) == order(0)
    bot.click(APPROVE_ACTION, decision_value(job.id, undo=True), "U2")
    posted(fake, "Undo of copy back into orders")
    assert get(direct, 0) is None


def _copied_then_undo_waiting(bot: Any, fake: Any, sim: Any, job: Any) -> None:
    """The approved copy back done, then an undo asked for and its card settled."""
    posted(fake, "Copy back into orders: 12 written")
    wait_job(bot, job.id, JobState.COPIED)
    bot.click(UNDO_ACTION, job.id, "U1")
    posted(fake, "Undo copy back into orders?")
    settled_job(bot, job.id, "decision_ts")
    sim.clear()


# -- class 2: replay ----------------------------------------------------------------------------
def test_a_replayed_copy_back_approve_does_not_approve_the_undo(make_bot, fake, sim):
    bot, req, direct = restored_then_changed(sim, make_bot)
    _, job = compare(bot, fake, req)
    _waiting_copy_back(bot, fake, job)
    body = block_action_body(
        APPROVE_ACTION, job.id, "U2", "C1", "1700000000.000001", fake.response_url("click-U2")
    )
    headers = signed_headers(body)
    assert raw_post(bot, body, headers).status == 200  # the captured Approve
    _copied_then_undo_waiting(bot, fake, sim, job)
    before = snapshot(bot, sim, fake)

    assert raw_post(bot, body, headers).status == 200  # the replay, inside the 5 minutes
    settle()
    assert bot.services.store.job_get(job.id).state == JobState.UNDO_REQUESTED
    no_aws(sim, ITEM_WRITES)
    assert snapshot(bot, sim, fake) == before
    assert all(get(direct, i) == order(i) for i in MISSING)


def test_a_stale_copy_back_card_cannot_approve_the_undo_asked_for_since(make_bot, fake, sim):
    # Not a replay: a fresh click on the copy-back card (an old client, or before its buttons
    # were removed) while the same job waits for an undo decision.
    bot, req, direct = restored_then_changed(sim, make_bot)
    _, job = compare(bot, fake, req)
    _waiting_copy_back(bot, fake, job)
    bot.click(APPROVE_ACTION, job.id, "U2")
    _copied_then_undo_waiting(bot, fake, sim, job)
    for action in (APPROVE_ACTION, DENY_ACTION):
        bot.click(action, job.id, "U2")  # the copy-back card's value
        bot.wait_reply("U2", "out of date")
    settle()
    assert bot.services.store.job_get(job.id).state == JobState.UNDO_REQUESTED
    no_aws(sim, ITEM_WRITES)
    assert all(get(direct, i) == order(i) for i in MISSING)
    bot.click(APPROVE_ACTION, decision_value(job.id, undo=True), "U2")  # the undo card's
    posted(fake, "Undo of copy back into orders")
    assert all(get(direct, i) is None for i in MISSING)


# -- class 6: identity, not name ----------------------------------------------------------------
def test_compare_after_the_restored_tables_name_was_reused_reads_nothing(make_bot, fake, sim):
    bot, req, _ = restored(sim, make_bot)
    reuse_name(sim, RESTORED)
    sim.clear()
    bot.click(COMPARE_ACTION, req.id, "U1")
    text = bot.wait_reply("U1", "not the table this restore created")
    assert "did not" in text
    bot.command("/pitr-diff", RESTORED, user="U1")
    bot.wait_reply("U1", "not the table this restore created")
    settle()
    assert bot.services.store.job_find() == []
    assert sim.count("Scan") == sim.count("Query") == 0


def recreate_live(sim: Any) -> None:
    """The live table deleted and created again under its name (a deploy, or an attacker)."""
    direct = sim.client(direct=True)
    direct.delete_table(TableName=LIVE)
    sim.create_table(LIVE, pitr=True, items=0)


def test_copy_back_after_the_live_table_was_re_created_writes_nothing(make_bot, fake, sim):
    bot, req, direct = restored_then_changed(sim, make_bot, policy=COPY_BACK_ON)
    _, job = compare(bot, fake, req)
    _waiting_copy_back(bot, fake, job)
    recreate_live(sim)
    sim.clear()
    bot.click(APPROVE_ACTION, job.id, "U2")
    failed = wait_job(bot, job.id, JobState.FAILED)
    assert "not the table that was compared" in failed.note
    posted(fake, "not the table that was compared")
    no_aws(sim, ITEM_WRITES)
    assert direct.scan(TableName=LIVE)["Items"] == []


def test_undo_after_the_live_table_was_re_created_writes_nothing(make_bot, fake, sim):
    bot, req, direct = restored_then_changed(sim, make_bot, policy=COPY_BACK_ON)
    _, job = compare(bot, fake, req)
    _waiting_copy_back(bot, fake, job)
    bot.click(APPROVE_ACTION, job.id, "U2")
    wait_job(bot, job.id, JobState.COPIED)
    bot.click(UNDO_ACTION, job.id, "U1")
    posted(fake, "Undo copy back into orders?")
    recreate_live(sim)
    for i in MISSING:  # the new table happens to hold what the copy back wrote
        direct.put_item(TableName=LIVE, Item=order(i))
    sim.clear()
    bot.click(APPROVE_ACTION, decision_value(job.id, undo=True), "U2")
    failed = wait_job(bot, job.id, JobState.FAILED)
    assert "not the table that was compared" in failed.note
    no_aws(sim, ITEM_WRITES)
    assert all(get(direct, i) == order(i) for i in MISSING)


# -- class 5 on batch cards: one Approve for several tables -------------------------------------
@pytest.mark.parametrize("where", ["another channel", "another workspace"])
def test_a_batch_cards_approve_counts_only_from_its_channel_and_workspace(
    make_bot, fake, sim, where
):
    sim.create_table("Payments", pitr=True, items=2)
    bot = make_bot()
    bot.command("/pitr-restore", "MusicCollection,Payments -copy latest")
    leader = wait_leader(bot, fake)
    bot.quiet()
    sim.clear()
    before = snapshot(bot, sim, fake)
    channel, team = ("C666", "T1") if where == "another channel" else ("C1", "T666")
    for action in ("pitr_approve", "pitr_deny"):
        body = block_action_body(
            action,
            leader.id,
            "U2",
            channel,
            leader.card_ts,
            fake.response_url("click-U2"),
            team_id=team,
        )
        assert bot.sender.post(body).status == (200 if where == "another channel" else 403)
    settle()
    no_aws(sim, AWS_READS + ("RestoreTableToPointInTime",))
    assert snapshot(bot, sim, fake) == before
    assert {m.state.value for m in members_of(bot.services.store, leader.id)} == {"REQUESTED"}
