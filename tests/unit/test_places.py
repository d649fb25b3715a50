"""Places (account alias, region) and the `drills` table patterns: pure."""

from __future__ import annotations

import pytest

from bot.places import Place, matches, parse_pattern, pattern_places, places
from bot.policy import Policy
from bot.tableref import RefError, TableRef

HOME = "us-east-1"
POLICY = Policy.model_validate(
    {
        "accounts": {
            "prod": {
                "role_arn": "arn:aws:iam::111111111111:role/pitr-bot",
                "regions": ["us-east-1", "eu-west-1"],
            },
            "staging": {"role_arn": "arn:aws:iam::222222222222:role/pitr-bot"},
        }
    }
)


def test_places_are_the_bots_own_then_each_account_in_each_region():
    assert places(POLICY.accounts, HOME) == [
        Place(),
        Place("prod"),  # us-east-1 is the bot's own region: never written
        Place("prod", "eu-west-1"),
        Place("staging"),  # no regions listed: the bot's region
    ]
    assert [Place("prod", "eu-west-1").ref("orders"), Place().ref("orders")] == [
        "prod:orders@eu-west-1",
        "orders",
    ]


@pytest.mark.parametrize(
    ("table", "pattern", "expected"),
    [
        ("orders", "orders", True),
        ("orders", "orders@us-east-1", True),  # the bot's region, written out
        ("orders@eu-west-1", "orders", False),  # another region is another table
        ("orders@eu-west-1", "orders@eu-west-1", True),
        ("prod:orders", "orders", False),  # another account too
        ("prod:orders", "prod:orders", True),
        ("prod:orders-2@eu-west-1", "prod:orders-*@eu-west-1", True),
        ("prod:orders-2", "prod:orders-*@eu-west-1", False),
        ("prod:ledger", "prod:*", True),
        ("ledger", "prod:*", False),
    ],
)
def test_a_drill_pattern_matches_one_place_and_a_name_glob(table, pattern, expected):
    assert matches(table, pattern, HOME) is expected


def test_patterns_parse_like_table_references_with_globs():
    assert parse_pattern("prod:orders-*@eu-west-1") == TableRef("orders-*", "prod", "eu-west-1")
    assert parse_pattern("orders") == TableRef("orders")
    for bad in ("Prod:orders", "orders@mars", "ord ers*", "a:b:c*"):
        with pytest.raises(RefError):
            parse_pattern(bad)
    assert pattern_places(
        ["orders", "orders-*", "prod:xyz@eu-west-1", "prod:yyy@us-east-1"], HOME
    ) == [
        Place(),
        Place("prod", "eu-west-1"),
        Place("prod"),
    ]
