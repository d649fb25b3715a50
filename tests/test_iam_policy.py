"""docs/iam-policy.json grants every DynamoDB action the bot's code calls, and no more power.

The actions are found in the source, not listed by hand: `PitrService._call("Operation", ...)`
string literals and direct `<...>.client.<snake_case>(...)` boto3 calls (plus paginators and
waiters) anywhere in bot/ and commands/. botocore's own DynamoDB model names the operations, so a
typo or a call that is not a DynamoDB operation is reported too.

Operations map to IAM actions one to one (`dynamodb:<Operation>`), except transactions: IAM has
no TransactWriteItems action; each item in it needs the action of its kind (Put -> PutItem,
ConditionCheck -> ConditionCheckItem, ...), per "Using IAM with DynamoDB transactions".

Application Auto Scaling (copying auto scaling onto a restored table) is found the same way:
`AftercareService._scaling("Operation", ...)` and `_scaling_pages(...)` literals and calls on
a receiver named `autoscaling`, checked against botocore's application-autoscaling model, as
`application-autoscaling:<Operation>`.

Changing or deleting a table is granted only on tables carrying the bot's marker tag (set on
every table it restored): those actions count as granted only through that exact condition.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import json
from functools import cache
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "bot", ROOT / "commands"]
POLICY_FILE = ROOT / "docs" / "iam-policy.json"

# Code that only ever talks to a simulated, in-process AWS (the `pitr-bot console` demo).
SIMULATED_ONLY = ("bot/console/",)

# Transaction item kinds -> the IAM action each needs.
TRANSACT_KINDS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}

# Receivers that hold a boto3 DynamoDB client (or resource) in this code base.
CLIENT_NAMES = {"client", "_client", "ddb", "dynamodb", "boto_client"}
# Receivers that hold an Application Auto Scaling client, and its call wrapper.
AUTOSCALING_NAMES = {"autoscaling"}
AUTOSCALING_CALLS = {"_scaling", "_scaling_pages"}
AUTOSCALING = "application-autoscaling"
ACTION_PREFIXES = ("dynamodb:", f"{AUTOSCALING}:", "cloudwatch:", "kms:")
# Every Application Auto Scaling call in the code passes ServiceNamespace="dynamodb" (checked
# below), so a grant conditioned on that namespace counts for those actions.
SCALING_CONDITION = {"StringEquals": {f"{AUTOSCALING}:service-namespace": "dynamodb"}}

# Actions the bot may only use on tables it restored itself (marked with this tag).
MARKER_TAG = "pitr-bot:restore-id"
RESTORED_CONDITION = {"Null": {f"aws:ResourceTag/{MARKER_TAG}": "false"}}
RESTORED_ONLY = {"dynamodb:DeleteTable", "dynamodb:UpdateTable"}

# AWS: RestoreTableToPointInTime also needs these on the target table, because the restore
# writes the data through them ("Using IAM with DynamoDB backup and restore").
RESTORE_NEEDS = {
    "dynamodb:Scan",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:GetItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
}
# Things a restore bot must never be able to do to an ordinary business table.
BUSINESS_TABLE = "arn:aws:dynamodb:eu-west-1:123456789012:table/Orders"
RESTORED_TABLE = "arn:aws:dynamodb:eu-west-1:123456789012:table/restored-orders"
FORBIDDEN = {
    "dynamodb:DeleteTable",
    "dynamodb:DeleteBackup",
    "dynamodb:UpdateTable",
    "dynamodb:CreateTable",
    "dynamodb:PutResourcePolicy",
    "dynamodb:DeleteResourcePolicy",
    "iam:PassRole",
}


@cache
def dynamodb_model() -> tuple[dict[str, str], frozenset[str]]:
    """({snake_case method: Operation}, {Operation}) from botocore's DynamoDB service model."""
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",  # noqa: S106 - never used, no call is made
    )
    return dict(client.meta.method_to_api_mapping), frozenset(
        client.meta.service_model.operation_names
    )


@cache
def autoscaling_model() -> tuple[dict[str, str], frozenset[str]]:
    client = boto3.client(
        AUTOSCALING,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",  # noqa: S106 - never used, no call is made
    )
    return dict(client.meta.method_to_api_mapping), frozenset(
        client.meta.service_model.operation_names
    )


def _receiver_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _display(file: Path) -> str:
    return str(file.relative_to(ROOT)) if file.is_relative_to(ROOT) else file.name


def _dict_keys(tree: ast.AST) -> set[str]:
    return {
        key.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key in node.keys
        if isinstance(key, ast.Constant) and isinstance(key.value, str)
    }


def collect_operations(paths: list[Path] = SOURCES) -> dict[str, list[str]]:
    """{Operation: ["file:line", ...]} for every DynamoDB operation the code calls.

    A transaction is recorded as e.g. "TransactWriteItems:Put", one entry per item kind the
    module builds (all kinds when none can be seen).
    """
    methods, operations = dynamodb_model()
    scaling_methods, scaling_operations = autoscaling_model()
    found: dict[str, list[str]] = {}
    unknown: list[str] = []

    for base in paths:
        for file in sorted(base.rglob("*.py")):
            name = _display(file)
            if name.startswith(SIMULATED_ONLY):
                continue
            tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
            kinds = sorted(TRANSACT_KINDS.keys() & _dict_keys(tree)) or sorted(TRANSACT_KINDS)

            def add(op: str, where: str, kinds: list[str] = kinds) -> None:
                if op not in operations:
                    unknown.append(f"{where}: {op!r} is not a DynamoDB operation")
                if op == "TransactWriteItems":
                    for kind in kinds:
                        if kind != "Get":
                            found.setdefault(f"{op}:{kind}", []).append(where)
                elif op == "TransactGetItems":
                    found.setdefault(f"{op}:Get", []).append(where)
                else:
                    found.setdefault(op, []).append(where)

            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                where = f"{name}:{node.lineno}"
                attr = node.func.attr
                first = node.args[0] if node.args else None
                literal = (
                    first.value
                    if isinstance(first, ast.Constant) and isinstance(first.value, str)
                    else None
                )
                if attr == "_call" and literal is not None:
                    add(literal, where)
                elif attr in AUTOSCALING_CALLS and literal is not None:
                    if literal not in scaling_operations:
                        unknown.append(f"{where}: {literal!r} is not an {AUTOSCALING} operation")
                    found.setdefault(f"{AUTOSCALING}:{literal}", []).append(where)
                elif _receiver_name(node.func.value) in AUTOSCALING_NAMES:
                    if attr in scaling_methods:
                        op = scaling_methods[attr]
                        found.setdefault(f"{AUTOSCALING}:{op}", []).append(where)
                elif _receiver_name(node.func.value) in CLIENT_NAMES:
                    if attr in methods:
                        add(methods[attr], where)
                    elif attr == "get_paginator" and literal in methods:
                        add(methods[literal], where)
                    elif attr == "get_waiter" and literal is not None:
                        add("DescribeTable", where)  # both DynamoDB waiters poll DescribeTable
    assert not unknown, "\n".join(unknown)
    return found


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _matches(name: str, patterns: list[str]) -> bool:
    # IAM action names are case-insensitive; * and ? are wildcards (in ARNs * spans "/" too).
    # ARNs are really case-sensitive, but a table name that differs only by case is no concern.
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)


def allows(policy: dict, action: str, resource: str | None = None, restored: bool = False) -> bool:
    """Whether some Allow statement grants `action` (on `resource`, or on anything when None)
    and no Deny statement takes it away. `restored`: on a table carrying the bot's marker
    tag, so a statement with exactly RESTORED_CONDITION applies too."""
    allowed = denied = False
    for statement in _as_list(policy.get("Statement")):  # type: ignore[arg-type]
        stmt = statement if isinstance(statement, dict) else {}
        if "Condition" in stmt and not (
            (restored and stmt["Condition"] == RESTORED_CONDITION)
            or (action.startswith(f"{AUTOSCALING}:") and stmt["Condition"] == SCALING_CONDITION)
        ):
            continue  # a conditional grant is not a grant we can count on
        if "NotAction" in stmt:
            hit = not _matches(action, _as_list(stmt["NotAction"]))
        else:
            hit = _matches(action, _as_list(stmt.get("Action")))
        resources = _as_list(stmt.get("Resource"))
        if not hit or not resources:
            continue
        if resource is not None and not _matches(resource, resources):
            continue
        if stmt.get("Effect") == "Allow":
            allowed = True
        elif stmt.get("Effect") == "Deny":
            denied = True
    return allowed and not denied


def missing_actions(policy: dict, actions: set[str]) -> set[str]:
    """Actions not granted; those in RESTORED_ONLY may be granted on marked tables only."""
    return {a for a in actions if not allows(policy, a, restored=a in RESTORED_ONLY)}


def load_policy() -> dict:
    return json.loads(POLICY_FILE.read_text(encoding="utf-8"))


def iam_action(operation: str) -> str:
    """ "DescribeTable" -> "dynamodb:DescribeTable"; "TransactWriteItems:Put" -> PutItem."""
    if operation.startswith(f"{AUTOSCALING}:"):
        return operation
    if ":" in operation:
        return f"dynamodb:{TRANSACT_KINDS[operation.split(':', 1)[1]]}"
    return f"dynamodb:{operation}"


def needed_actions() -> dict[str, list[str]]:
    """{IAM action: ["file:line", ...]} for everything the code calls."""
    needed: dict[str, list[str]] = {}
    for op, where in collect_operations().items():
        needed.setdefault(iam_action(op), []).extend(where)
    return needed


# -- the checks -----------------------------------------------------------------------------
def test_collector_finds_the_operations_the_bot_is_known_to_use():
    found = collect_operations()
    for op in (
        "DescribeTable",
        "DescribeContinuousBackups",
        "UpdateContinuousBackups",
        "RestoreTableToPointInTime",
        "ListTables",
    ):
        assert op in found, f"{op} not found in the code: {sorted(found)}"


def test_policy_document_is_well_formed():
    policy = load_policy()
    assert policy.get("Version") == "2012-10-17"
    statements = _as_list(policy.get("Statement"))  # type: ignore[arg-type]
    assert statements
    for stmt in statements:
        assert stmt.get("Effect") in {"Allow", "Deny"}, stmt
        assert ("Action" in stmt) != ("NotAction" in stmt), stmt
        assert _as_list(stmt.get("Resource")), stmt
        for action in _as_list(stmt.get("Action")):
            assert action.startswith(ACTION_PREFIXES), f"unexpected service in {action}"


def test_policy_allows_every_action_the_code_calls():
    needed = needed_actions()
    missing = missing_actions(load_policy(), set(needed))
    assert not missing, "docs/iam-policy.json lacks: " + ", ".join(
        f"{a} (called at {', '.join(needed[a])})" for a in sorted(missing)
    )


def test_policy_allows_what_a_point_in_time_restore_needs_on_the_target():
    assert not missing_actions(load_policy(), RESTORE_NEEDS)


def test_policy_grants_no_destructive_or_wildcard_power():
    policy = load_policy()
    granted = sorted(a for a in FORBIDDEN if allows(policy, a, BUSINESS_TABLE))
    assert granted == [], f"the bot's role could {granted} on {BUSINESS_TABLE}"
    for stmt in _as_list(policy["Statement"]):
        for action in _as_list(stmt.get("Action")):
            assert "*" not in action, f"wildcard action {action}"
        assert "NotAction" not in stmt


@pytest.mark.parametrize(
    "action",
    [
        "dynamodb:RestoreTableToPointInTime",
        "dynamodb:ListTables",
        "dynamodb:PutItem",
        "dynamodb:DeleteTable",
        "dynamodb:TagResource",
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:PutScalingPolicy",
    ],
)
def test_checker_reports_an_action_removed_from_the_policy(action):
    original = load_policy()
    policy = copy.deepcopy(original)
    for stmt in policy["Statement"]:
        actions = _as_list(stmt.get("Action"))
        if action in actions:
            stmt["Action"] = [a for a in actions if a != action]
    needed = set(needed_actions())
    assert action in needed
    assert missing_actions(policy, needed) - missing_actions(original, needed) == {action}


def test_checker_honours_wildcards_and_denies():
    base = {"Version": "2012-10-17", "Statement": []}
    wildcard = copy.deepcopy(base)
    wildcard["Statement"] = [
        {"Effect": "Allow", "Action": "dynamodb:Describe*", "Resource": "*"},
    ]
    assert allows(wildcard, "dynamodb:DescribeTable")
    assert not allows(wildcard, "dynamodb:RestoreTableToPointInTime")
    denied = copy.deepcopy(wildcard)
    denied["Statement"].append(
        {"Effect": "Deny", "Action": ["dynamodb:DescribeTable"], "Resource": "*"}
    )
    assert not allows(denied, "dynamodb:DescribeTable")
    assert allows(denied, "dynamodb:DescribeContinuousBackups")


def test_collector_sees_direct_client_calls_and_paginators(tmp_path):
    code = tmp_path / "sample.py"
    code.write_text(
        "class S:\n"
        "    def f(self):\n"
        "        self.client.delete_table(TableName='x')\n"
        "        self.client.get_paginator('list_backups')\n"
        "        self._call('TagResource', 'x')\n"
        "        self.slack.chat_postMessage(channel='C1')\n"  # not a DynamoDB client
        "        self.client.transact_write_items(TransactItems=[{'ConditionCheck': {}}])\n"
    )
    assert set(collect_operations([tmp_path])) == {
        "DeleteTable",
        "ListBackups",
        "TagResource",
        "TransactWriteItems:ConditionCheck",
    }
    assert iam_action("TransactWriteItems:ConditionCheck") == "dynamodb:ConditionCheckItem"
    assert missing_actions(load_policy(), {"dynamodb:DeleteBackup"}) == {"dynamodb:DeleteBackup"}
    assert not allows(load_policy(), "dynamodb:DeleteTable")  # only on tables the bot restored


def test_checker_is_resource_aware():
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "dynamodb:CreateTable",
                "Resource": "arn:aws:dynamodb:*:*:table/pitr-bot-state",
            }
        ],
    }
    assert allows(policy, "dynamodb:CreateTable")
    assert allows(
        policy, "dynamodb:CreateTable", "arn:aws:dynamodb:eu-west-1:1:table/pitr-bot-state"
    )
    assert not allows(policy, "dynamodb:CreateTable", BUSINESS_TABLE)


def test_collector_finds_the_after_restore_operations():
    found = collect_operations()
    for op in (
        "DescribeTimeToLive",
        "UpdateTimeToLive",
        "ListTagsOfResource",
        "TagResource",
        "UpdateTable",
        "DeleteTable",
        f"{AUTOSCALING}:DescribeScalableTargets",
        f"{AUTOSCALING}:RegisterScalableTarget",
        f"{AUTOSCALING}:PutScalingPolicy",
    ):
        assert op in found, f"{op} not found in the code: {sorted(found)}"


def test_collector_sees_autoscaling_calls_and_rejects_unknown_ones(tmp_path):
    code = tmp_path / "sample.py"
    code.write_text(
        "class S:\n"
        "    def f(self):\n"
        "        self._scaling('DeleteScalingPolicy', 't')\n"
        "        self.autoscaling.deregister_scalable_target(ServiceNamespace='dynamodb')\n"
    )
    assert set(collect_operations([tmp_path])) == {
        f"{AUTOSCALING}:DeleteScalingPolicy",
        f"{AUTOSCALING}:DeregisterScalableTarget",
    }
    code.write_text("def f(s):\n    s._scaling('NoSuchThing', 't')\n")
    with pytest.raises(AssertionError, match="NoSuchThing"):
        collect_operations([tmp_path])


def test_destructive_actions_only_on_tables_the_bot_restored():
    from bot.aftercare.rules import MARKER_TAG as CODE_MARKER

    assert CODE_MARKER == MARKER_TAG  # the tag the code sets is the one the policy checks
    policy = load_policy()
    for action in RESTORED_ONLY:
        assert allows(policy, action, RESTORED_TABLE, restored=True), action
        assert not allows(policy, action, RESTORED_TABLE), f"{action} granted without the tag"
        # The example policy's target_pattern (restored-*) keeps even a tagged Orders out.
        assert not allows(policy, action, BUSINESS_TABLE, restored=True), action
    # Another condition (say a typo in the tag key) is not counted as the marker grant.
    typo = copy.deepcopy(policy)
    for stmt in typo["Statement"]:
        if stmt.get("Condition") == RESTORED_CONDITION:
            stmt["Condition"] = {"Null": {"aws:ResourceTag/pitr-bot:restore": "false"}}
    assert missing_actions(typo, RESTORED_ONLY) == RESTORED_ONLY


def test_readme_shows_the_policy_file_as_it_is():
    """The operator guide's IAM JSON is the file, so what an operator grants is what is tested."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "docs" / "operator-guide.md").read_text()
    shown = readme.split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(shown) == json.loads((root / "docs" / "iam-policy.json").read_text())


def test_every_autoscaling_call_stays_in_the_dynamodb_namespace():
    """What lets SCALING_CONDITION count as a grant: each call names the dynamodb namespace."""
    from bot.aftercare.rules import NAMESPACE

    assert NAMESPACE == "dynamodb"
    calls = 0
    for base in SOURCES:
        for file in sorted(base.rglob("*.py")):
            if _display(file).startswith(SIMULATED_ONLY):
                continue
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                scaling = node.func.attr in AUTOSCALING_CALLS or (
                    _receiver_name(node.func.value) in AUTOSCALING_NAMES
                )
                if not scaling or node.func.attr == "_scaling" and not node.args:
                    continue
                where = f"{_display(file)}:{node.lineno}"
                if node.func.attr == "_scaling" and not isinstance(node.args[0], ast.Constant):
                    continue  # the wrapper itself forwarding **kwargs
                names = {
                    k.arg: k.value for k in node.keywords if k.arg is not None
                }  # **kwargs forwarding has arg None
                if not names and any(k.arg is None for k in node.keywords):
                    continue  # `method(**kwargs)` inside the wrapper
                value = names.get("ServiceNamespace")
                assert isinstance(value, ast.Name) and value.id == "NAMESPACE", where
                calls += 1
    assert calls >= 4
