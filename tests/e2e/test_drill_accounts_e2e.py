"""Over HTTP: `/pitr-drill prod:orders` drills a table in another AWS account (policy
`accounts`): restored, verified and deleted there, reported as `prod:orders`."""

from __future__ import annotations

from support.accounts import PROD, make_table, prod_dynamodb

from bot.drills.model import DrillState
from bot.policy import Policy
from e2e.test_drills import reports, wait_until

POLICY = Policy.model_validate(
    {
        "accounts": {"prod": {"role_arn": f"arn:aws:iam::{PROD}:role/pitr-bot"}},
        "drills": [{"tables": ["prod:orders"], "every": "0 0 1 1 *", "channel": "C9"}],
    }
)


def test_pitr_drill_of_a_table_in_another_account_runs_there(make_bot, fake, sim):
    prod = prod_dynamodb(sim)
    make_table(prod, "orders")
    bot = make_bot(policy=POLICY)

    resp = bot.command("/pitr-drill", "prod:orders")
    assert resp.status == 200
    bot.wait_reply("U1", "prod:orders")
    (report,) = wait_until(lambda: reports(fake), 30, "the drill report")

    (drill,) = bot.services.store.drill_find(source="prod:orders")
    assert drill.state == DrillState.PASSED, drill.problem
    assert drill.target.startswith("prod:orders-drill-")
    assert drill.table_arn.split(":")[4] == PROD  # restored in account 111111111111
    (restore,) = sim.requests("RestoreTableToPointInTime")
    assert restore["SourceTableName"] == "orders"
    assert restore["TargetTableName"] == drill.target.removeprefix("prod:")
    # Cleaned up there; nothing ever made in the bot's own account.
    assert prod.list_tables()["TableNames"] == ["orders"]
    assert not [n for n in sim.client(direct=True).list_tables()["TableNames"] if "drill" in n]
    assert "`prod:orders` passed" in report.args["text"]


def test_pitr_drill_of_an_unknown_account_is_refused_with_no_side_effect(make_bot, fake, sim):
    bot = make_bot(policy=POLICY)
    sim.clear()
    bot.command("/pitr-drill", "dev:orders")
    bot.wait_reply("U1", "`dev` is not an account the bot knows")
    bot.command("/pitr-drill", "orders")  # the bot's own `orders` is not drilled
    bot.wait_reply("U1", "has no restore drill")
    assert sim.count("RestoreTableToPointInTime") == 0 and sim.count("DescribeTable") == 0
    assert bot.services.store.drill_find(limit=10) == []
    assert fake.calls("chat.postMessage") == []
