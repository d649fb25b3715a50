"""`pitr-bot iam-policy` with policy `accounts`: the bot may assume the member roles (and set
the source identity), and `--member ALIAS` prints that role's trust and permission policies."""

from __future__ import annotations

import json

import pytest
from support.iam_eval import allowed

from bot.cli import main
from bot.iam import IamPolicyError, iam_policy, member_policies, member_tables
from bot.policy import Policy

PROD, BOT = "111111111111", "123456789012"
ROLE = f"arn:aws:iam::{PROD}:role/pitr-bot"
BOT_ROLE = f"arn:aws:iam::{BOT}:role/pitr-bot"
POLICY = Policy.model_validate(
    {
        "tables": ["orders", "prod:orders*", "staging:*"],
        "target_pattern": "restored-*",
        "accounts": {
            "prod": {"role_arn": ROLE, "external_id": "x-42", "regions": ["eu-west-1"]},
            "staging": {"role_arn": "arn:aws:iam::222222222222:role/pitr-bot"},
        },
    }
)


def table(name: str, account: str, region: str = "eu-west-1") -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{name}"


def test_the_bot_may_assume_each_member_role_and_name_the_approver():
    doc = iam_policy(POLICY, BOT, "eu-west-1")
    for action in ("sts:AssumeRole", "sts:SetSourceIdentity"):
        assert allowed(doc, action, ROLE)
        assert not allowed(doc, action, "arn:aws:iam::333333333333:role/pitr-bot")
    # Its own account: only the tables without an account alias.
    restore = "dynamodb:RestoreTableToPointInTime"
    assert allowed(doc, restore, table("orders", BOT))
    assert not allowed(doc, restore, table("orders-eu", BOT))


def test_the_member_role_trusts_only_the_bot_with_the_external_id():
    trust = member_policies(POLICY, "prod", BOT_ROLE)["trust_policy"]
    assume = next(s for s in trust["Statement"] if s["Action"] == ["sts:AssumeRole"])
    assert assume["Principal"] == {"AWS": BOT_ROLE}
    assert assume["Condition"] == {"StringEquals": {"sts:ExternalId": "x-42"}}
    actions = {a for s in trust["Statement"] for a in s["Action"]}
    assert actions == {"sts:AssumeRole", "sts:SetSourceIdentity"}
    staging = member_policies(POLICY, "staging", BOT_ROLE)["trust_policy"]
    assert all("Condition" not in s for s in staging["Statement"])  # no external ID configured


# AWS's service authorization reference for STS (docs.aws.amazon.com/service-authorization/
# latest/reference/list_awssecuritytokenservice.html) lists `sts:ExternalId` for AssumeRole and
# not for SetSourceIdentity: a condition on a key an action does not have never matches there.
def test_the_external_id_conditions_assume_role_only_never_set_source_identity():
    trust = member_policies(POLICY, "prod", BOT_ROLE)["trust_policy"]
    by_action = {tuple(s["Action"]): s for s in trust["Statement"]}
    assert set(by_action) == {("sts:AssumeRole",), ("sts:SetSourceIdentity",)}
    for statement in trust["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {"AWS": BOT_ROLE}
    assume, name = by_action[("sts:AssumeRole",)], by_action[("sts:SetSourceIdentity",)]
    assert assume["Condition"] == {"StringEquals": {"sts:ExternalId": "x-42"}}
    assert "Condition" not in name
    assert "sts:ExternalId" not in json.dumps(name)
    staging = member_policies(POLICY, "staging", BOT_ROLE)["trust_policy"]
    assert all("Condition" not in s for s in staging["Statement"])  # no external ID there


def test_the_member_permission_policy_covers_that_accounts_tables_only():
    doc = member_policies(POLICY, "prod", BOT_ROLE)["permission_policy"]
    restore = "dynamodb:RestoreTableToPointInTime"
    assert allowed(doc, restore, table("orders-eu", PROD))  # prod:orders*
    assert not allowed(doc, restore, table("payments", PROD))
    assert not allowed(doc, restore, table("orders-eu", BOT))  # pinned to the member account
    assert not allowed(doc, restore, table("orders-eu", PROD, "us-east-1"))  # its one region
    assert allowed(doc, "dynamodb:PutItem", table("restored-orders", PROD))
    assert "sts:AssumeRole" not in json.dumps(doc)  # no further hop from there


def test_member_tables_keeps_the_patterns_that_can_match_the_account():
    assert member_tables(["orders", "*", "prod:a*", "p*:b", "staging:c"], "prod") == [
        "*",
        "a*",
        "b",
    ]


@pytest.mark.parametrize(
    ("alias", "bot_role", "says"),
    [("dev", BOT_ROLE, "not in the policy's `accounts`"), ("prod", "", "not an IAM role ARN")],
)
def test_member_policies_refuse_an_unknown_alias_or_a_missing_bot_role(alias, bot_role, says):
    with pytest.raises(IamPolicyError, match=says):
        member_policies(POLICY, alias, bot_role)


def test_cli_prints_the_member_policies(tmp_path, monkeypatch, capsys):
    path = tmp_path / "policy.yml"
    path.write_text(json.dumps(POLICY.model_dump(exclude_defaults=True)))  # JSON is YAML
    monkeypatch.setenv("PITR_BOT_POLICY", str(path))
    monkeypatch.setenv("PITR_BOT_STATE", "sqlite:///x.db")
    assert main(["iam-policy", "--member", "prod", "--bot-role", BOT_ROLE]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"role_arn", "trust_policy", "permission_policy"}
    assert main(["iam-policy", "--member", "prod"]) == 2
    assert "--bot-role" in capsys.readouterr().err


def test_compare_and_copy_back_in_a_member_account_follow_its_rules():
    """Compare items reads a member account's live table; Copy back writes there only where a
    rule says `copy_back: true` for it (`prod:orders`), never in the bot's own account."""
    policy = Policy.model_validate(
        {**POLICY.model_dump(), "rules": [{"tables": ["prod:orders"], "copy_back": True}]}
    )
    doc = member_policies(policy, "prod", BOT_ROLE)["permission_policy"]
    for action in ("dynamodb:Scan", "dynamodb:Query", "dynamodb:DescribeTable"):
        assert allowed(doc, action, table("orders", PROD))  # the live table, compared
        assert allowed(doc, action, table("restored-orders", PROD))  # its restored copy
        assert not allowed(doc, action, table("payments", PROD))  # not a source: never read
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        assert allowed(doc, action, table("orders", PROD))  # copy_back: true
        assert not allowed(doc, action, table("orders-eu", PROD))  # a source, copy_back off
        assert not allowed(doc, action, table("payments", PROD))
    staging = member_policies(policy, "staging", BOT_ROLE)["permission_policy"]
    assert not allowed(staging, "dynamodb:PutItem", table("orders", "222222222222"))

    own = iam_policy(policy, BOT, "eu-west-1")
    assert "prod:orders" not in json.dumps(own)  # another account's table: not a resource here
    assert not allowed(own, "dynamodb:PutItem", table("orders", BOT))
    assert not allowed(own, "dynamodb:Scan", table("payments", BOT))
