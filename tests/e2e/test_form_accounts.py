"""Over HTTP: the restore form offers the tables of every account and region the policy allows
(as `prod:orders@eu-west-1`), and several picks across accounts are one batch: one card, one
approval, each restore in its own account and region."""

from __future__ import annotations

import json
import time
from typing import Any

from support.accounts import PROD, make_table, prod_dynamodb

import e2e.test_modal as form
from bot.modal_blocks import CALLBACK_ID, SOURCE_ACTION, SOURCE_BLOCK
from bot.policy import Policy
from e2e.harness import BotUnderTest

POLICY = Policy.model_validate(
    {
        "accounts": {
            "prod": {
                "role_arn": f"arn:aws:iam::{PROD}:role/pitr-bot",
                "regions": ["us-east-1", "eu-west-1"],
            }
        }
    }
)


def picks(*refs: str) -> dict[str, Any]:
    """The source block of view.state.values as Slack sends it for a multi-select."""
    options = [{"text": {"type": "plain_text", "text": r}, "value": r} for r in refs]
    return {
        SOURCE_BLOCK: {
            SOURCE_ACTION: {"type": "multi_external_select", "selected_options": options}
        }
    }


def offered_until(bot: BotUnderTest, typed: str, wanted: str, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        offered = [o["value"] for o in form.suggest(bot, typed)]
        if wanted in offered or time.monotonic() > deadline:
            return offered
        time.sleep(0.2)


def submit(bot: BotUnderTest, refs: tuple[str, ...], target: str) -> Any:
    values = form.form_values(target=target, target_block="target.picked") | picks(*refs)
    return bot.sender.submit(CALLBACK_ID, values, "U1", private_metadata=form.META)


def test_form_offers_every_account_and_region_and_submits_one_cross_account_batch(
    make_bot, fake, sim
):
    prod, prod_eu = prod_dynamodb(sim), prod_dynamodb(sim, "eu-west-1")
    make_table(prod, "orders")
    make_table(prod_eu, "ledger")
    sim.create_table("payments", pitr=True, items=1)
    bot = make_bot(policy=POLICY)

    # A place slower than the listing budget joins on a later keystroke: type until it is in.
    offered = offered_until(bot, "", "prod:ledger@eu-west-1")
    # The bot's own table stays a plain name; other places are written as the command takes them.
    assert {"payments", "prod:orders", "prod:ledger@eu-west-1"} <= set(offered)
    assert [o["value"] for o in form.suggest(bot, "eu-west")] == ["prod:ledger@eu-west-1"]

    resp = submit(bot, ("prod:orders", "prod:ledger@eu-west-1", "payments"), "-copy")
    assert resp.status == 200 and "errors" not in resp.body
    first = bot.wait_card()
    leader = bot.services.store.get(first.batch_id)
    card = json.dumps(bot.cards()[0].args["blocks"])
    assert "Restore 3 tables to one instant" in card
    assert "prod:orders-copy" in card and "prod:ledger-copy@eu-west-1" in card
    assert len(leader.batch_members) == 3

    bot.approve(leader.id, "U2")
    for member in leader.batch_members:
        bot.wait_state(member, "ACTIVE", timeout=30)
    # Each restore ran in its own account and region (moto keeps them apart).
    assert "orders-copy" in prod.list_tables()["TableNames"]
    assert "ledger-copy" in prod_eu.list_tables()["TableNames"]
    own = sim.client(direct=True).list_tables()["TableNames"]
    assert "payments-copy" in own and "orders-copy" not in own and "ledger-copy" not in own
    calls = sim.requests("RestoreTableToPointInTime")
    assert len(calls) == 3
    assert len({c["RestoreDateTime"] for c in calls}) == 1  # one instant for all


def test_a_forged_pick_outside_the_policy_places_is_refused_with_no_side_effect(
    make_bot, fake, sim
):
    bot = make_bot(policy=POLICY)
    sim.clear()
    resp = submit(bot, ("prod:orders@ap-south-1",), "orders-copy")
    assert resp.status == 200
    errors = resp.json()["errors"]
    assert "only reachable in us-east-1, eu-west-1" in errors[SOURCE_BLOCK]
    assert bot.services.store.find() == []
    assert sim.count("RestoreTableToPointInTime") == 0 and sim.count("DescribeTable") == 0
    assert fake.calls("chat.postMessage") == []
