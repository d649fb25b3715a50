"""Attacks on authorisation, over signed HTTP against the real app (issue 10, items 3, 4, 6).

| attack                                                    | expected answer                     |
|-----------------------------------------------------------|-------------------------------------|
| `/pitr-enable T 7` on a table with 35 days (shrink)       | approval card, no change until an   |
|                                                           | approver clicks; card says history  |
|                                                           | before <date> will be lost          |
| the requester approves their own shrink                   | refused (four-eyes), no change      |
| `/pitr-enable T 35` when T already has 35 days            | "nothing was changed", no write     |
| `/pitr-status` of a table outside the policy's `tables`   | ephemeral refusal, no AWS call      |
| `/pitr-status` from a channel outside `channels`          | ephemeral refusal, no AWS call      |
| `/pitr-status` by someone who may neither request nor     | ephemeral refusal, no AWS call      |
| approve that table                                        |                                     |
| App Home opened by such a person                          | the table and its restores absent   |
| the form's table search for such tables or channels       | not offered                         |
| a crafted pick of such a table in the form                | ignored: no AWS read, no update     |
| Delete table after the restored name was reused           | refused, table untouched            |
| a fix button after the restored name was reused           | refused, table untouched            |

Each refusal: no 5xx, no AWS write, no Slack post beyond the ephemeral refusal, no store write.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bot.policy import Policy, Rule
from e2e.harness import BotUnderTest
from e2e.test_home import home_opened, publishes
from e2e.test_modal import pick_source, suggest

SOURCE = "MusicCollection"
AWS_WRITES = (
    "UpdateContinuousBackups",
    "RestoreTableToPointInTime",
    "DeleteTable",
    "UpdateTable",
    "TagResource",
    "UntagResource",
    "UpdateTimeToLive",
    "PutItem",
    "DeleteItem",
    "BatchWriteItem",
)


# -- helpers ----------------------------------------------------------------------------------
def snapshot(bot: BotUnderTest, sim: Any, fake: Any) -> dict[str, Any]:
    """Everything a refusal must leave as it was: store, AWS writes, Slack posts.
    Taken once the bot owes Slack nothing: an edit still on its way is not a side effect."""
    bot.quiet()
    store = bot.services.store
    return {
        "requests": sorted((r.id, r.version, r.delete_state) for r in store.find(limit=1000)),
        "audit": len(store.audit_events()),
        "aws_writes": {op: sim.count(op) for op in AWS_WRITES},
        "slack_posts": len(fake.calls("chat.postMessage")) + len(fake.calls("chat.update")),
    }


def in_channel(fake: Any) -> list[str]:
    return [
        str(c.args.get("text", ""))
        for c in fake.calls("response_url")
        if c.args.get("response_type") == "in_channel"
    ]


def period(sim: Any, table: str) -> int | None:
    desc = sim.client(direct=True).describe_continuous_backups(TableName=table)
    return desc["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"].get(
        "RecoveryPeriodInDays"
    )


def set_period(sim: Any, table: str, days: int) -> None:
    sim.client(direct=True).update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True,
            "RecoveryPeriodInDays": days,
        },
    )


def wait_request(bot: BotUnderTest, kind: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for req in bot.services.store.find():
            if req.kind == kind and req.card_ts:
                return req
        time.sleep(0.02)
    raise AssertionError(f"no {kind} request with a card")


def buttons(args: dict) -> list[str]:
    return [
        el["text"]["text"]
        for block in args.get("blocks", [])
        if block["type"] == "actions"
        for el in block["elements"]
    ]


def restore(bot: BotUnderTest, target: str) -> Any:
    bot.command("/pitr-restore", f"{SOURCE} {target} latest")
    req = bot.wait_card()
    assert bot.approve(req.id, "U2").status == 200
    bot.wait_state(req.id, "ACTIVE", timeout=20)
    return req


def wait_field(bot: BotUnderTest, restore_id: str, field: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = bot.services.store.get(restore_id)
        if getattr(req, field):
            return req
        time.sleep(0.05)
    raise AssertionError(f"{field} never set: {bot.services.store.get(restore_id)}")


def reuse_name(sim: Any, table: str) -> None:
    """The attack: drop the restored table and create an ordinary one with its name."""
    direct = sim.client(direct=True)
    direct.delete_table(TableName=table)
    sim.create_table(table, pitr=False, items=2)


# -- 3. shrinking restore history -----------------------------------------------------------
def test_lowering_the_recovery_period_needs_an_approval_card_first(make_bot, fake, sim):
    bot = make_bot(policy=Policy(approvers=["U2"]))
    set_period(sim, SOURCE, 35)
    sim.clear()

    resp = bot.command("/pitr-enable", f"{SOURCE} 7", user="U1")
    assert resp.status == 200
    req = wait_request(bot, "pitr_period")
    bot.wait_reply("U1", "needs approval")
    # Nothing changed yet, and the channel was not told anything was "protected".
    assert sim.count("UpdateContinuousBackups") == 0
    assert period(sim, SOURCE) == 35
    assert in_channel(fake) == []
    card = bot.cards()[-1]
    text = json.dumps(card.args, ensure_ascii=False)
    assert "35 days → 7 days" in text
    assert "Restore history before" in text and "will be lost" in text
    assert buttons(card.args) == ["Approve", "Deny"]

    # Four eyes: the requester's own Approve changes nothing.
    before = snapshot(bot, sim, fake)
    assert bot.approve(req.id, "U1").status == 200
    bot.wait_reply("U1", "someone else has to approve")
    assert sim.count("UpdateContinuousBackups") == 0
    assert snapshot(bot, sim, fake)["aws_writes"] == before["aws_writes"]

    # An approver: exactly one UpdateContinuousBackups, the truth told in the channel.
    assert bot.approve(req.id, "U2").status == 200
    done = bot.wait_state(req.id, "ACTIVE")
    assert period(sim, SOURCE) == 7
    assert [
        r["PointInTimeRecoverySpecification"] for r in sim.requests("UpdateContinuousBackups")
    ] == [{"PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": 7}]
    notice = fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and "shortened from 35 to 7 days" in c.args.get("text", "")
        )
    )[0]
    assert notice.args["thread_ts"] == done.card_ts and notice.args.get("reply_broadcast")
    assert bot.approve(req.id, "U3").status == 200  # a late click: nothing twice
    bot.wait_reply("U3", "already")
    assert sim.count("UpdateContinuousBackups") == 1
    # Never treated as a restore.
    assert sim.count("RestoreTableToPointInTime") == 0
    events = [e.event for e in bot.services.store.audit_events()]
    assert "pitr_period_requested" in events and "pitr_period_changed" in events


def test_a_denied_shrink_changes_nothing(make_bot, fake, sim):
    bot = make_bot()
    set_period(sim, SOURCE, 20)
    sim.clear()
    bot.command("/pitr-enable", f"{SOURCE} 1", user="U1")
    req = wait_request(bot, "pitr_period")
    bot.deny(req.id, "U2")
    bot.wait_state(req.id, "DENIED")
    assert sim.count("UpdateContinuousBackups") == 0
    assert period(sim, SOURCE) == 20


def test_the_same_period_again_says_so_and_changes_nothing(bot, fake, sim):
    set_period(sim, SOURCE, 35)
    sim.clear()
    before = snapshot(bot, sim, fake)
    resp = bot.command("/pitr-enable", f"{SOURCE} 35", user="U1")
    assert resp.status == 200
    bot.wait_reply("U1", "nothing was changed")
    assert snapshot(bot, sim, fake) == before
    assert in_channel(fake) == []


def test_raising_the_period_stays_one_step_and_says_raised(bot, fake, sim):
    set_period(sim, SOURCE, 7)
    sim.clear()
    bot.command("/pitr-enable", f"{SOURCE} 30", user="U1")
    text = bot.wait_reply("U1", "raised from 7 to 30 days")
    assert "PITR" in text
    assert in_channel(fake) == [text]
    assert period(sim, SOURCE) == 30
    assert bot.services.store.find() == []  # no approval needed


# -- 4. reading what the policy does not allow ----------------------------------------------
def refused_status(bot, fake, sim, user: str, table: str, channel: str, says: str) -> None:
    sim.clear()
    before = snapshot(bot, sim, fake)
    resp = bot.command("/pitr-status", table, user=user, channel=channel)
    assert resp.status == 200
    text = bot.wait_reply(user, says)
    assert text.startswith(":warning:")
    assert [
        c for c in fake.calls("response_url") if c.args.get("response_type") == "in_channel"
    ] == []
    for op in ("DescribeTable", "DescribeContinuousBackups", "ListTables"):
        assert sim.count(op) == 0, op
    assert snapshot(bot, sim, fake) == before


def test_status_of_a_table_outside_the_policy_is_refused_without_aws(make_bot, fake, sim):
    sim.create_table("SecretLedger", pitr=True)
    bot = make_bot(policy=Policy(tables=["Music*"]))
    refused_status(bot, fake, sim, "U3", "SecretLedger", "C1", "not covered by the policy")


def test_status_from_a_channel_outside_the_policy_is_refused_without_aws(make_bot, fake, sim):
    bot = make_bot(policy=Policy(channels=["C1"]))
    refused_status(bot, fake, sim, "U3", SOURCE, "C9", "in this channel")


def test_status_for_someone_who_may_neither_request_nor_approve(make_bot, fake, sim):
    rule = Rule(tables=["Music*"], requesters=["U1"], approvers=["U2"])
    bot = make_bot(policy=Policy(rules=[rule]))
    refused_status(bot, fake, sim, "U3", SOURCE, "C1", "neither request nor approve")
    # The approver may look.
    bot.command("/pitr-status", SOURCE, user="U2")
    bot.wait_reply("U2", "PITR status of MusicCollection")


def test_home_shows_only_the_tables_and_restores_a_person_may_see(make_bot, fake, sim):
    sim.create_table("SecretLedger", pitr=True)
    rule = Rule(tables=["Secret*"], requesters=["U1"], approvers=["U2"])
    bot = make_bot(policy=Policy(rules=[rule]))
    bot.command("/pitr-restore", "SecretLedger SecretCopy latest", user="U1")
    bot.wait_card()
    before = snapshot(bot, sim, fake)

    home_opened(bot, user="U3", n=1)
    outsider = json.dumps(
        fake.wait_for(lambda c: c in publishes(fake, "U3"))[0].args, ensure_ascii=False
    )
    assert "SecretLedger" not in outsider and "SecretCopy" not in outsider
    assert SOURCE in outsider  # the tables U3 may request are still listed

    home_opened(bot, user="U2", n=2)
    approver = json.dumps(
        fake.wait_for(lambda c: c in publishes(fake, "U2"))[0].args, ensure_ascii=False
    )
    assert "SecretLedger" in approver and "SecretCopy" in approver
    after = snapshot(bot, sim, fake)
    assert after["requests"] == before["requests"] and after["aws_writes"] == before["aws_writes"]


def test_table_search_offers_nothing_outside_the_policy(make_bot, fake, sim):
    # (Already filtered before issue 10; kept here so the attack table is complete.)
    sim.create_table("SecretLedger", pitr=True)
    bot = make_bot(policy=Policy(tables=["Music*"], channels=["C1"]))
    before = snapshot(bot, sim, fake)
    assert [o["value"] for o in suggest(bot, "secret", user="U3")] == []
    assert "SecretLedger" not in [o["value"] for o in suggest(bot, "", user="U3")]
    assert suggest(bot, "", user="U3", meta=json.dumps({"channel": "C9"})) == []
    assert snapshot(bot, sim, fake) == before


def test_picking_a_table_outside_the_policy_in_the_form_reads_nothing(make_bot, fake, sim):
    # A picked table the search would not offer: no DescribeTable, no form update with its facts.
    sim.create_table("SecretLedger", pitr=True)
    bot = make_bot(policy=Policy(tables=["Music*"]))
    sim.clear()
    before = snapshot(bot, sim, fake)
    assert pick_source(bot, "SecretLedger", user="U3").status == 200
    assert pick_source(bot, SOURCE, user="U3").status == 200  # allowed: the form is updated
    fake.wait_for(lambda c: c.method == "views.update" and SOURCE in json.dumps(c.args))
    updates = [json.dumps(c.args) for c in fake.calls("views.update")]
    assert not [u for u in updates if "SecretLedger" in u]
    assert [r["TableName"] for r in sim.requests("DescribeTable")] == [SOURCE]
    assert snapshot(bot, sim, fake)["requests"] == before["requests"]


# -- 6. destructive follow-ups after the name was reused ------------------------------------
def test_delete_table_after_the_name_was_reused_is_refused(make_bot, fake, sim):
    bot = make_bot(policy=Policy(remind_after_days=0.00002))
    req = restore(bot, "MusicTemp")
    req = wait_field(bot, req.id, "reminder_ts")
    reuse_name(sim, "MusicTemp")
    sim.clear()
    before = snapshot(bot, sim, fake)

    resp = bot.click("pitr_delete_table", req.id, "U1")
    assert resp.status == 200
    text = bot.wait_reply("U1", "not the table this restore created")
    assert "did not touch it" in text
    assert snapshot(bot, sim, fake) == before
    items = sim.client(direct=True).scan(TableName="MusicTemp")["Items"]
    assert len(items) == 2  # the newcomer is untouched


def test_delete_approved_after_the_name_was_reused_is_refused(make_bot, fake, sim):
    bot = make_bot(policy=Policy(remind_after_days=0.00002))
    req = restore(bot, "MusicSwap")
    req = wait_field(bot, req.id, "reminder_ts")
    bot.click("pitr_delete_table", req.id, "U1")
    wait_field(bot, req.id, "delete_requested_by")
    reuse_name(sim, "MusicSwap")  # between the request and its approval

    bot.click("pitr_delete_approve", req.id, "U2")
    deadline = time.monotonic() + 30
    while bot.services.store.get(req.id).delete_state != "REFUSED":
        assert time.monotonic() < deadline, bot.services.store.get(req.id)
        time.sleep(0.05)
    assert "not the table this restore created" in bot.services.store.get(req.id).delete_note
    assert sim.count("DeleteTable") == 0
    assert len(sim.client(direct=True).scan(TableName="MusicSwap")["Items"]) == 2


def test_fix_button_after_the_name_was_reused_is_refused(make_bot, fake, sim):
    direct = sim.client(direct=True)
    direct.update_time_to_live(
        TableName=SOURCE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    bot = make_bot()
    req = restore(bot, "MusicFix")
    req = wait_field(bot, req.id, "aftercare_ts")
    reuse_name(sim, "MusicFix")
    sim.clear()
    before = snapshot(bot, sim, fake)

    for group in ("ttl_tags", "pitr"):
        resp = bot.click(f"pitr_fix_{group}", req.id, "U1")
        assert resp.status == 200
    deadline = time.monotonic() + 30
    while len([t for t in bot.replies_to("U1") if "not the table" in t]) < 2:
        assert time.monotonic() < deadline, bot.replies_to("U1")
        time.sleep(0.02)
    assert snapshot(bot, sim, fake) == before
    ttl = direct.describe_time_to_live(TableName="MusicFix")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "DISABLED"
    pitr = direct.describe_continuous_backups(TableName="MusicFix")
    assert (
        pitr["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
            "PointInTimeRecoveryStatus"
        ]
        == "DISABLED"
    )
