"""`pitr-bot iam-policy`: the generated policy, evaluated against what the bot must and must not
be able to do (tests/support/iam_eval.py is the evaluator), and docs/iam-policy.json as its
output for docs/policy.example.yml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.iam_eval import ALLOW, DENY, IMPLICIT_DENY, allowed, evaluate
from test_iam_policy import RESTORE_NEEDS, missing_actions, needed_actions

from bot.cli import main
from bot.iam import MARKER_TAG, iam_policy
from bot.policy import Policy, load_policy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "policy.example.yml"
SHIPPED = ROOT / "docs" / "iam-policy.json"
ACCOUNT, REGION = "123456789012", "eu-west-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"  # listed in the example's kms_keys (as an ARN)
MARKED = {f"aws:ResourceTag/{MARKER_TAG}": "r-1"}
VIA_DYNAMODB = {"kms:ViaService": f"dynamodb.{REGION}.amazonaws.com"}


def table(name: str, account: str = ACCOUNT, region: str = REGION) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{name}"


def key(key_id: str = KEY_ID) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"


def alarm(name: str) -> str:
    return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"


@pytest.fixture(scope="module")
def pinned() -> dict:
    return iam_policy(load_policy(EXAMPLE), ACCOUNT, REGION, state_table="pitr-bot-state")


# (action, resource, request context, allowed?)
CASES = [
    # Restore only from the policy's tables.
    ("dynamodb:RestoreTableToPointInTime", table("orders"), {}, True),
    ("dynamodb:RestoreTableToPointInTime", table("users-eu"), {}, True),
    ("dynamodb:RestoreTableToPointInTime", table("secrets"), {}, False),
    ("dynamodb:DescribeTable", table("secrets"), {}, False),
    ("dynamodb:UpdateContinuousBackups", table("orders"), {}, True),  # /pitr-enable
    ("dynamodb:UpdateContinuousBackups", table("secrets"), {}, False),
    # Never a business table's data written (copy_back is off in the example).
    ("dynamodb:PutItem", table("orders"), {}, False),
    ("dynamodb:GetItem", table("orders"), {}, False),
    ("dynamodb:Scan", table("secrets"), {}, False),
    ("dynamodb:BatchWriteItem", table("orders"), {}, False),
    # Compare items reads a source; writes to it only where copy_back is on (not here).
    ("dynamodb:Scan", table("orders"), {}, True),
    ("dynamodb:Query", table("orders"), {}, True),
    ("dynamodb:UpdateItem", table("orders"), {}, False),
    # The restore's writes into the new table, and its copy of settings.
    ("dynamodb:PutItem", table("restored-orders"), {}, True),
    ("dynamodb:BatchWriteItem", table("restored-orders"), {}, True),
    ("dynamodb:Query", table("restored-orders") + "/index/by-date", {}, True),
    ("dynamodb:TagResource", table("restored-orders"), {}, True),
    ("dynamodb:TagResource", table("orders"), {}, False),  # tag, then delete: not possible
    # Change or delete: a matching name AND the bot's marker tag.
    ("dynamodb:DeleteTable", table("restored-x"), MARKED, True),
    ("dynamodb:DeleteTable", table("restored-x"), {}, False),
    ("dynamodb:DeleteTable", table("orders"), MARKED, False),
    ("dynamodb:UpdateTable", table("orders"), MARKED, False),
    ("dynamodb:UpdateTimeToLive", table("restored-x"), MARKED, True),
    ("dynamodb:CreateTable", table("orders"), {}, False),
    # Pinned to the account and the region.
    ("dynamodb:RestoreTableToPointInTime", table("orders", account="999999999999"), {}, False),
    ("dynamodb:RestoreTableToPointInTime", table("orders", region="us-east-1"), {}, False),
    ("dynamodb:DeleteTable", table("restored-x", region="us-east-1"), MARKED, False),
    # Auto scaling writes in the dynamodb namespace only.
    (
        "application-autoscaling:RegisterScalableTarget",
        f"arn:aws:application-autoscaling:{REGION}:{ACCOUNT}:scalable-target/0abc",
        {"application-autoscaling:service-namespace": "dynamodb"},
        True,
    ),
    (
        "application-autoscaling:PutScalingPolicy",
        f"arn:aws:application-autoscaling:{REGION}:{ACCOUNT}:scalable-target/0abc",
        {"application-autoscaling:service-namespace": "ecs"},
        False,
    ),
    ("application-autoscaling:RegisterScalableTarget", "*", {}, False),
    # CloudWatch: the alarms target tracking makes for a restored table, no others.
    ("cloudwatch:PutMetricAlarm", alarm("TargetTracking-table/restored-x-AlarmHigh-1"), {}, True),
    ("cloudwatch:DeleteAlarms", alarm("TargetTracking-table/restored-x-AlarmLow-1a2b"), {}, True),
    ("cloudwatch:DeleteAlarms", alarm("TargetTracking-table/orders-AlarmHigh-1a2b"), {}, False),
    ("cloudwatch:PutMetricAlarm", alarm("orders-5xx"), {}, False),
    # KMS: the listed keys, only through DynamoDB.
    ("kms:CreateGrant", key(), VIA_DYNAMODB, True),
    ("kms:DescribeKey", key(), VIA_DYNAMODB, True),
    ("kms:GenerateDataKey", key(), VIA_DYNAMODB, True),
    ("kms:CreateGrant", key(), {}, False),  # called directly, not by DynamoDB
    ("kms:Decrypt", key(), {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}, False),
    ("kms:CreateGrant", key("ffffffff-0000-0000-0000-000000000000"), VIA_DYNAMODB, False),
    (
        "kms:CreateGrant",
        key("0f0f0f0f-0000-0000-0000-000000000000"),
        {**VIA_DYNAMODB, "kms:ResourceAliases": ["alias/pitr-restores"]},
        True,
    ),
    (
        "kms:CreateGrant",
        key("0f0f0f0f-0000-0000-0000-000000000000"),
        {**VIA_DYNAMODB, "kms:ResourceAliases": ["alias/payroll"]},
        False,
    ),
    ("kms:ScheduleKeyDeletion", key(), VIA_DYNAMODB, False),
    # The state table (PITR_BOT_STATE=dynamodb://pitr-bot-state), and only it.
    ("dynamodb:CreateTable", table("pitr-bot-state"), {}, True),
    ("dynamodb:PutItem", table("pitr-bot-state"), {}, True),
    # Never IAM or anything else.
    ("iam:PassRole", "*", {}, False),
    ("dynamodb:DeleteBackup", table("orders"), {}, False),
]


@pytest.mark.parametrize(
    ("action", "resource", "context", "expected"),
    CASES,
    ids=[f"{c[0]}-{c[1].rsplit(':', 1)[-1]}-{'allow' if c[3] else 'deny'}" for c in CASES],
)
def test_generated_policy_allows_and_forbids(pinned, action, resource, context, expected):
    assert allowed(pinned, action, resource, context) is expected


def test_without_a_policy_target_pattern_any_target_is_writable_as_before():
    policy = iam_policy(Policy())
    assert allowed(policy, "dynamodb:RestoreTableToPointInTime", table("anything"))
    assert allowed(policy, "dynamodb:PutItem", table("any-target"))
    assert allowed(policy, "dynamodb:DeleteTable", table("any-target"), MARKED)
    assert not allowed(policy, "dynamodb:DeleteTable", table("any-target"))
    # No kms_keys: no KMS action at all. SQLite state: no state-table statement.
    assert not any(a.startswith("kms:") for s in policy["Statement"] for a in s["Action"])
    assert not allowed(policy, "dynamodb:CreateTable", table("pitr-bot-state"))


@pytest.mark.parametrize("policy", [Policy(), load_policy(EXAMPLE)], ids=["default", "example"])
def test_generated_policy_grants_every_action_the_code_calls(policy):
    """The same scan of the code as test_iam_policy.py, against the generated document."""
    document = iam_policy(policy, ACCOUNT, REGION, state_table="pitr-bot-state")
    needed = needed_actions()
    missing = missing_actions(document, set(needed) | RESTORE_NEEDS)
    assert not missing, f"the generated policy lacks {sorted(missing)}"


def test_item_writes_on_live_tables_only_where_a_rule_turns_copy_back_on():
    policy = Policy(
        tables=["orders", "users-*", "payments"],
        target_pattern="restored-*",
        rules=[
            {"tables": ["orders"], "copy_back": True},
            {"tables": ["*"], "copy_back": True, "approvers": ["U0APPROVER"]},
            {"tables": ["payments"], "copy_back": True},
        ],
    )
    document = iam_policy(policy, ACCOUNT, REGION)
    for action in ("PutItem", "UpdateItem", "DeleteItem", "GetItem"):
        assert allowed(document, f"dynamodb:{action}", table("orders"))
        assert allowed(document, f"dynamodb:{action}", table("users-eu"))  # `*` narrowed
        assert not allowed(document, f"dynamodb:{action}", table("secrets"))
    assert not allowed(document, "dynamodb:BatchWriteItem", table("orders"))  # no conditions
    assert not allowed(document, "dynamodb:DeleteTable", table("orders"))

    off = iam_policy(
        Policy(
            tables=["orders", "payments"],
            target_pattern="restored-*",
            rules=[{"tables": ["orders"], "copy_back": True}],
        ),
        ACCOUNT,
        REGION,
    )
    assert allowed(off, "dynamodb:UpdateItem", table("orders"))
    assert not allowed(off, "dynamodb:UpdateItem", table("payments"))  # default off
    # The comparison reads every source, copy back on or not; its restored copy is a target.
    assert allowed(off, "dynamodb:Scan", table("payments"))
    assert allowed(off, "dynamodb:Query", table("payments"))
    assert not allowed(off, "dynamodb:Scan", table("secrets"))


def test_no_copy_back_no_item_write_on_any_live_table():
    document = iam_policy(Policy(tables=["orders"], target_pattern="r-*"), ACCOUNT, REGION)
    assert not any(s["Sid"].startswith("CopyBack") for s in document["Statement"])
    assert not allowed(document, "dynamodb:PutItem", table("orders"))


def test_shipped_policy_is_the_generator_output_for_the_example(monkeypatch, capsys):
    monkeypatch.setenv("PITR_BOT_POLICY", str(EXAMPLE))
    monkeypatch.setenv("PITR_BOT_STATE", "dynamodb://pitr-bot-state")
    assert main(["iam-policy"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(SHIPPED.read_text()), (
        "docs/iam-policy.json is stale: regenerate it with the command in docs/policy.example.yml"
    )


def test_cli_pins_account_and_region(monkeypatch, capsys):
    monkeypatch.setenv("PITR_BOT_POLICY", str(EXAMPLE))
    monkeypatch.setenv("PITR_BOT_STATE", "sqlite:///x.db")
    assert main(["iam-policy", "--account", ACCOUNT, "--region", REGION]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert allowed(printed, "dynamodb:RestoreTableToPointInTime", table("orders"))
    assert not allowed(
        printed, "dynamodb:RestoreTableToPointInTime", table("orders", account="210987654321")
    )
    assert "*:*:table" not in json.dumps(printed)


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--account", "12"], "12-digit"), (["--region", "eu west"], "region")],
)
def test_cli_refuses_a_bad_account_or_region_in_one_line(monkeypatch, capsys, args, says):
    monkeypatch.delenv("PITR_BOT_POLICY", raising=False)
    assert main(["iam-policy", *args]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert says in out.err and len(out.err.strip().splitlines()) == 1


# -- the evaluator itself ---------------------------------------------------------------------
def test_evaluator_explicit_deny_wins_and_nothing_is_allowed_by_default():
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "dynamodb:DeleteTable", "Resource": table("orders")},
        ]
    }
    assert evaluate(policy, "dynamodb:DeleteTable", table("orders")) == DENY
    assert evaluate(policy, "DynamoDB:deletetable", table("other")) == ALLOW  # actions: any case
    assert evaluate(policy, "s3:GetObject", "arn:aws:s3:::b/k") == IMPLICIT_DENY
    assert evaluate({"Statement": []}, "dynamodb:GetItem", table("orders")) == IMPLICIT_DENY


def test_evaluator_wildcards_and_conditions():
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "dynamodb:Get?tem",
                "Resource": "arn:aws:dynamodb:*:*:table/t-?",
                "Condition": {"Null": {"aws:ResourceTag/k": "false"}},
            }
        ]
    }
    assert allowed(policy, "dynamodb:GetItem", table("t-1"), {"aws:ResourceTag/k": "v"})
    assert not allowed(policy, "dynamodb:GetItem", table("t-1"))  # tag missing
    assert not allowed(policy, "dynamodb:GetItem", table("t-12"), {"aws:ResourceTag/k": "v"})
    assert not allowed(policy, "dynamodb:GetItems", table("t-1"), {"aws:ResourceTag/k": "v"})
    odd = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "a:B",
                "Resource": "*",
                "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}},
            }
        ]
    }
    with pytest.raises(ValueError, match="DateGreaterThan"):
        evaluate(odd, "a:B", "x", {"aws:CurrentTime": "2030-01-01"})


def test_generator_names_the_tag_and_namespace_the_code_uses():
    from bot.aftercare.rules import MARKER_TAG as CODE_MARKER
    from bot.aftercare.rules import NAMESPACE
    from bot.iam import AUTOSCALING_NAMESPACE

    assert CODE_MARKER == MARKER_TAG
    assert NAMESPACE == AUTOSCALING_NAMESPACE


def test_cli_warns_when_the_policy_outgrows_an_iam_managed_policy(tmp_path, monkeypatch, capsys):
    many = tmp_path / "many.yml"
    many.write_text("tables: [" + ", ".join(f"team-{i:03d}-orders" for i in range(300)) + "]\n")
    monkeypatch.setenv("PITR_BOT_POLICY", str(many))
    monkeypatch.setenv("PITR_BOT_STATE", "sqlite:///x.db")
    assert main(["iam-policy"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["Statement"]
    assert "6144" in out.err and "wider `tables`" in out.err


def test_cli_prints_nothing_on_stderr_for_a_policy_that_fits(monkeypatch, capsys):
    monkeypatch.setenv("PITR_BOT_POLICY", str(EXAMPLE))
    assert main(["iam-policy"]) == 0
    assert capsys.readouterr().err == ""


def test_put_events_only_on_the_configured_bus(monkeypatch, capsys):
    bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/incidents"
    other = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
    without = iam_policy(load_policy(EXAMPLE), ACCOUNT, REGION)
    assert not allowed(without, "events:PutEvents", bus)
    document = iam_policy(load_policy(EXAMPLE), ACCOUNT, REGION, event_bus="incidents")
    assert allowed(document, "events:PutEvents", bus)
    assert not allowed(document, "events:PutEvents", other)
    assert not allowed(document, "events:PutRule", bus)
    # The CLI reads PITR_BOT_EVENT_BUS; a bus ARN is granted as it is.
    monkeypatch.setenv("PITR_BOT_POLICY", str(EXAMPLE))
    monkeypatch.setenv("PITR_BOT_STATE", "sqlite:///x.db")
    monkeypatch.setenv("PITR_BOT_EVENT_BUS", bus)
    assert main(["iam-policy"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert allowed(printed, "events:PutEvents", bus)
    assert not allowed(printed, "events:PutEvents", other)
