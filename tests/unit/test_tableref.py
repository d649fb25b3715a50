"""Table references and batches: the pure parsing every command shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.batches.model import common_window, outside_reason, queue_positions
from bot.restores import Window
from bot.tableref import RefError, TableRef, parse_ref, parse_sources, targets_for


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("orders", TableRef("orders")),
        ("orders@eu-west-1", TableRef("orders", region="eu-west-1")),
        ("prod:orders", TableRef("orders", account="prod")),
        ("prod:orders@us-east-1", TableRef("orders", "prod", "us-east-1")),
        (
            "arn:aws:dynamodb:eu-west-1:111111111111:table/orders",
            TableRef("orders", None, "eu-west-1", "111111111111"),
        ),
    ],
)
def test_every_written_form_parses(text, expected):
    assert parse_ref(text) == expected


def test_an_arn_of_a_known_account_gets_its_alias():
    ref = parse_ref(
        "arn:aws:dynamodb:eu-west-1:111111111111:table/orders", {"111111111111": "prod"}
    )
    assert (ref.account, str(ref), ref.policy_name) == (
        "prod",
        "prod:orders@eu-west-1",
        "prod:orders",
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "missing"),
        ("or", "not a table name"),
        ("orders@mars", "not an AWS region"),
        ("Prod!:orders", "not an account alias"),
        ("arn:aws:s3:::bucket", "not a DynamoDB table ARN"),
        ("orders;drop", "not a table name"),
    ],
)
def test_bad_references_are_refused_with_the_reason(text, says):
    with pytest.raises(RefError, match=says):
        parse_ref(text)


def test_several_sources_take_a_suffix_and_keep_their_place():
    sources = parse_sources("orders, prod:payments@eu-west-1,ledger")
    targets = targets_for(sources, "-before-incident")
    assert [str(t) for t in targets] == [
        "orders-before-incident",
        "prod:payments-before-incident@eu-west-1",
        "ledger-before-incident",
    ]


def test_a_target_may_name_its_own_region_else_the_sources():
    (source,) = parse_sources("orders@eu-west-1")
    assert targets_for([source], "orders-copy")[0].region == "eu-west-1"
    assert targets_for([source], "orders-copy@us-east-1")[0].region == "us-east-1"


def test_a_target_never_moves_to_another_account():
    with pytest.raises(RefError, match="source's account"):
        targets_for([parse_ref("prod:orders")], "staging:orders-copy")


def test_a_table_listed_twice_is_refused():
    with pytest.raises(RefError, match="listed twice"):
        parse_sources("orders,payments,orders")


T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def test_the_common_window_is_the_intersection_and_names_the_late_table():
    windows = {
        "orders": Window(T0 - timedelta(days=35), T0),
        "payments": Window(T0 - timedelta(days=2), T0 - timedelta(minutes=5)),
    }
    common = common_window(windows)
    assert common.window == Window(T0 - timedelta(days=2), T0 - timedelta(minutes=5))
    reason = outside_reason(T0 - timedelta(days=3), windows)
    assert reason is not None and "`payments`" in reason and "`orders`" not in reason
    assert outside_reason(T0 - timedelta(days=1), windows) is None


def test_disjoint_windows_have_no_common_instant():
    windows = {
        "a": Window(T0 - timedelta(days=10), T0 - timedelta(days=5)),
        "b": Window(T0 - timedelta(days=2), T0),
    }
    common = common_window(windows)
    assert common.window is None and "`b`" in common.reason and "`a`" in common.reason


def test_fifty_five_restores_in_one_account_start_fifty_and_queue_five():
    waiting = [(f"r{i}", "prod") for i in range(55)] + [("other", "staging")]
    ahead = queue_positions(waiting, {"prod": 0})
    assert sum(1 for v in ahead.values() if v is None) == 51  # 50 in prod + 1 in staging
    assert [ahead[f"r{i}"] for i in range(50, 55)] == [0, 1, 2, 3, 4]
    assert queue_positions([("x", "prod")], {"prod": 50}) == {"x": 0}


def test_an_arn_of_an_account_neither_the_bots_nor_in_accounts_is_refused():
    known = {"123456789012": "", "111111111111": "prod"}  # the bot's own, and `prod`
    arn = "arn:aws:dynamodb:us-east-1:{}:table/orders"
    assert parse_ref(arn.format("123456789012"), known).account is None
    assert parse_ref(arn.format("111111111111"), known).account == "prod"
    with pytest.raises(RefError, match="999999999999.*accounts"):
        parse_ref(arn.format("999999999999"), known)
