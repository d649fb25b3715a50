"""Over HTTP: the Home tab names the account and region of what is not the bot's own — a
restore in flight, a drill, and the PITR coverage of every account and region of the policy."""

from __future__ import annotations

import json

from support.accounts import PROD, make_table, prod_dynamodb

from bot.policy import Policy
from e2e.test_drills import reports, wait_until
from e2e.test_home import home_opened, wait_card_for

POLICY = Policy.model_validate(
    {
        "accounts": {
            "prod": {
                "role_arn": f"arn:aws:iam::{PROD}:role/pitr-bot",
                "regions": ["us-east-1", "eu-west-1"],
            }
        },
        "drills": [{"tables": ["prod:orders"], "every": "0 0 1 1 *", "channel": "C9"}],
    }
)


def test_home_names_other_accounts_and_regions_in_restores_drills_and_coverage(make_bot, fake, sim):
    prod, prod_eu = prod_dynamodb(sim), prod_dynamodb(sim, "eu-west-1")
    make_table(prod, "orders")
    make_table(prod_eu, "ledger")
    bot = make_bot(policy=POLICY)
    bot.command("/pitr-restore", "prod:ledger@eu-west-1 ledger-copy latest", user="U3")
    wait_card_for(bot, "prod:ledger-copy@eu-west-1")
    bot.command("/pitr-drill", "prod:orders")
    wait_until(lambda: reports(fake), 30, "the drill report")

    home_opened(bot, user="U2")
    call = fake.wait_for(lambda c: c.method == "views.publish" and c.args.get("user_id") == "U2")[0]
    text = json.dumps(call.args["view"]["blocks"], ensure_ascii=False)

    in_flight = text[text.index("In flight") : text.index("Recent")]
    assert "`prod:ledger@eu-west-1` → `prod:ledger-copy@eu-west-1`" in in_flight
    drills = text[text.index("Restore drills") : text.index("PITR coverage")]
    assert "Restore drill of `prod:orders` passed" in drills
    coverage = text[text.index("PITR coverage") :]
    assert "`MusicCollection` — PITR on" in coverage  # the bot's own: a plain name
    assert "`prod:orders` — PITR on" in coverage
    assert "`prod:ledger@eu-west-1` — PITR on" in coverage
