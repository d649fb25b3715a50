"""Over HTTP: a table in another AWS account (policy `accounts`), restored there, and the card,
thread and broadcast naming it `prod:…`."""

from __future__ import annotations

import time

from support.accounts import PROD, make_table, prod_dynamodb

from bot.policy import Policy

POLICY = Policy.model_validate(
    {"accounts": {"prod": {"role_arn": f"arn:aws:iam::{PROD}:role/pitr-bot", "external_id": "e2e"}}}
)


def test_a_restore_in_another_account_end_to_end(make_bot, fake, sim):
    prod = prod_dynamodb(sim)
    make_table(prod, "orders", items=0)
    bot = make_bot(policy=POLICY)

    bot.command("/pitr-restore", "prod:orders orders-copy latest")
    req = bot.wait_card()
    card = str(bot.cards()[0].args["blocks"])
    assert "prod:orders" in card and "prod:orders-copy" in card

    bot.approve(req.id, "U2")
    bot.wait_state(req.id, "ACTIVE", timeout=20)
    (call,) = sim.requests("RestoreTableToPointInTime")
    assert (call["SourceTableName"], call["TargetTableName"]) == ("orders", "orders-copy")
    assert "orders-copy" in prod.list_tables()["TableNames"]  # in account 111111111111
    assert "orders-copy" not in sim.client(direct=True).list_tables()["TableNames"]

    final = fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage" and c.args.get("reply_broadcast") in (True, "true", "1")
        )
    )[0]
    text = final.args["text"] + str(final.args.get("blocks"))
    assert "prod:orders-copy" in text and "ACTIVE" in text


def test_an_unknown_account_is_refused_before_any_aws_call(make_bot, sim):
    bot = make_bot(policy=POLICY)
    bot.command("/pitr-restore", "dev:orders orders-copy latest")
    bot.wait_reply("U1", "`dev` is not an account the bot knows")
    assert sim.count("DescribeTable") == 0
    assert bot.services.store.find() == []


def test_status_and_enable_reach_the_other_account(make_bot, fake, sim):
    prod = prod_dynamodb(sim)
    make_table(prod, "payments", items=0, pitr=False)
    bot = make_bot(policy=POLICY)
    bot.command("/pitr-enable", "prod:payments 7")
    bot.wait_reply("U1", "prod:payments")
    backups = prod.describe_continuous_backups(TableName="payments")
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"  # in account 111111111111
    before = len(bot.replies_to("U1"))
    bot.command("/pitr-status", "prod:payments")
    deadline = time.monotonic() + 30
    while len(bot.replies_to("U1")) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    status = bot.replies_to("U1")[before:]
    assert status and "prod:payments" in status[0] and "does not exist" not in status[0]
    assert "payments" not in sim.client(direct=True).list_tables()["TableNames"]


def test_compare_and_copy_back_of_a_restore_in_another_account(make_bot, fake, sim):
    """Compare items and Copy back read and write the tables in the account (and region) of the
    restore, through that account's role, never the bot's own account."""
    from commands.items import APPROVE_ACTION, COMPARE_ACTION, COPY_ALL_ACTION

    prod = prod_dynamodb(sim)
    make_table(prod, "orders", items=0)

    def order(i: int, status: str = "paid") -> dict:
        return {"pk": {"S": f"o-{i:02d}"}, "status": {"S": status}}

    for i in range(20):
        prod.put_item(TableName="orders", Item=order(i))
    policy = Policy.model_validate(
        {**POLICY.model_dump(), "rules": [{"tables": ["prod:orders"], "copy_back": True}]}
    )
    bot = make_bot(policy=policy)
    req = bot.restore_to_active("prod:orders", "orders-copy")
    for i in range(3):  # lost
        prod.delete_item(TableName="orders", Key={"pk": order(i)["pk"]})
    for i in range(3, 5):  # overwritten by a bad script
        prod.put_item(TableName="orders", Item=order(i, "broken"))

    bot.click(COMPARE_ACTION, req.id, "U1")
    fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage" and "3 missing, 2 changed, 0 added" in c.args["text"]
        ),
        timeout=30,
    )
    (job,) = bot.services.store.job_find()
    bot.click(COPY_ALL_ACTION, job.id, "U1")
    fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and "Copy back 5 items into prod:orders?" in c.args["text"]
        ),
        timeout=30,
    )
    bot.click(APPROVE_ACTION, job.id, "U2")
    fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and "Copy back into prod:orders: 5 written, 0 skipped (conflict), 0 failed"
            in c.args["text"]
        ),
        timeout=30,
    )
    for i in range(5):  # back, in account 111111111111
        got = prod.get_item(TableName="orders", Key={"pk": order(i)["pk"]}, ConsistentRead=True)
        assert got["Item"] == order(i)
    own = sim.client(direct=True).list_tables()["TableNames"]
    assert "orders" not in own and "orders-copy" not in own  # nothing in the bot's own account
