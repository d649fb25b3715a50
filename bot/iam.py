"""The least-privilege IAM policy for the bot's role, generated from the policy file.

Pure: a Policy in, a JSON-ready dict out (`pitr-bot iam-policy` prints it). What each statement
is for:

- sources (policy `tables`): read them, restore from them, turn PITR on (`/pitr-enable`);
- targets (policy `target_pattern`): the data-plane writes a restore makes through the
  caller's permissions, tagging, copying settings; changing or deleting only with the bot's
  marker tag on the table as well;
- Application Auto Scaling writes only in the `dynamodb` namespace, and the CloudWatch alarms a
  target-tracking policy creates only under the targets' alarm-name prefix;
- the KMS keys of policy `kms_keys`, used only through DynamoDB;
- comparing items (**Compare items**, `/pitr-diff`): Scan and Query on the sources;
- copying items back: item writes on the live tables a rule enables with `copy_back: true`,
  and only those (a separate statement, absent when no table enables it);
- the state table, when PITR_BOT_STATE is dynamodb://TABLE;
- the export path (`/pitr-diff LIVE_TABLE WHEN`), when PITR_BOT_EXPORT_S3 (or an account's
  `export_s3`) is set: ExportTableToPointInTime on the sources, DescribeExport on their exports,
  what DynamoDB's export writes with the caller's permissions on the bucket prefix, and the
  bot's own reads of the files there; with an SSE-KMS bucket's customer managed key
  (PITR_BOT_EXPORT_S3_KMS_KEY, an account's `export_s3_kms_key`), that key through S3 only.

ARNs name the account and region when given, else `*`.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from bot.aftercare.rules import MARKER_TAG
from bot.aftercare.rules import NAMESPACE as AUTOSCALING_NAMESPACE
from bot.drills.model import DRILL_TAG
from bot.items.export_plan import parse_s3
from bot.policy import AWS_MANAGED_KEY, Policy

SOURCE_READS = (
    "dynamodb:DescribeTable",
    "dynamodb:DescribeContinuousBackups",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:ListTagsOfResource",
    "dynamodb:DescribeContributorInsights",
)
# /pitr-enable on a source; after_restore `pitr` on a target. (IAM cannot tell turning PITR
# on from shortening or turning it off: the bot's own approval rules guard that.)
PROTECT = ("dynamodb:UpdateContinuousBackups",)
# "Using IAM with DynamoDB backup and restore" (docs.aws.amazon.com/amazondynamodb/latest/
# developerguide/backuprestore_IAM.html): "RestoreTableToPointInTime permissions are necessary
# on the source table, and DynamoDB read and write permissions on the target table". These:
RESTORE_WRITES = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:BatchWriteItem",
)
TARGET_SETUP = ("dynamodb:TagResource",)
# Only on tables that carry the bot's marker tag: a table someone else made under a matching
# name stays out of reach.
TARGET_CHANGES = (
    "dynamodb:UpdateTable",
    "dynamodb:UpdateTimeToLive",
    "dynamodb:DeleteTable",
)
SCALING_READS = (
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
)
SCALING_WRITES = (
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:PutScalingPolicy",
)
# Application Auto Scaling docs ("Permissions required for API actions on target services and
# CloudWatch"): a target-tracking PutScalingPolicy creates, lists and removes its CloudWatch
# alarms with the caller's permissions. Their names start "TargetTracking-table/<table>-".
ALARM_WRITES = ("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms")
ALARM_READS = ("cloudwatch:DescribeAlarms",)
# "How Amazon DynamoDB uses AWS KMS" (docs.aws.amazon.com/kms/latest/developerguide/
# services-dynamodb.html), its example key policy for principals that use a table: kms:Encrypt,
# kms:Decrypt, kms:ReEncrypt*, kms:GenerateDataKey*, kms:CreateGrant, kms:DescribeKey, through
# DynamoDB only (kms:ViaService). CreateGrant lets DynamoDB use the key for the new table;
# DescribeKey resolves it. ReEncrypt* is for switching an existing table's key (UpdateTable),
# which the bot never does, so it is left out; the wildcards are spelt out.
KMS_ACTIONS = (
    "kms:DescribeKey",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
)
# The comparison reads every item of the live (source) table: its restored copy is a target.
COMPARE_READS = ("dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:Query")
# Copy back and its undo: conditional PutItem (missing item), UpdateItem (changed item),
# DeleteItem (undo of an insert), GetItem (re-read after a failed condition).
COPY_BACK_WRITES = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
)
# "Requesting a table export in DynamoDB" (Developer Guide), its example policy: the export
# writes to S3 with the caller's permissions (s3:AbortMultipartUpload, s3:PutObject,
# s3:PutObjectAcl); DescribeExport is on the export's ARN (table/NAME/export/ID).
EXPORT_START = ("dynamodb:ExportTableToPointInTime",)
EXPORT_DESCRIBE = ("dynamodb:DescribeExport",)
EXPORT_S3_WRITES = ("s3:AbortMultipartUpload", "s3:PutObject", "s3:PutObjectAcl")
# The bot reads the manifests and data files (never lists a folder; ListBucket, limited to the
# prefix, only so a missing key is a 404 rather than a 403).
EXPORT_S3_READS = ("s3:GetObject",)
# An SSE-KMS export bucket with a customer managed key: S3 user guide, "Using server-side
# encryption with AWS KMS keys (SSE-KMS)": "To upload or download an object encrypted with an
# AWS KMS key to or from Amazon S3, you need kms:GenerateDataKey and kms:Decrypt permissions on
# the key" (Decrypt also for multipart uploads, "Multipart upload API and permissions"). The
# export writes with the caller's permissions (above) and the bot reads the files: both, on that
# key only, and only through S3 in the key's region (kms:ViaService, AWS KMS condition keys).
EXPORT_KMS_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
STATE_TABLE_ACTIONS = (
    "dynamodb:CreateTable",
    "dynamodb:DescribeTable",
    "dynamodb:UpdateTimeToLive",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:Query",
    "dynamodb:Scan",
)

# The bot's identity assumes member-account roles; the trust policy must allow both
# ("Monitor and control actions taken with assumed roles", IAM user guide: sts:SetSourceIdentity).
ASSUME_ACTIONS = ("sts:AssumeRole", "sts:SetSourceIdentity")
BOT_PRINCIPAL = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/:-]+$")

ACCOUNT = re.compile(r"^\d{12}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class IamPolicyError(ValueError):
    """--account or --region is not one."""


def partition(region: str | None) -> str:
    if region and region.startswith("cn-"):
        return "aws-cn"
    if region and region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def iam_policy(
    policy: Policy,
    account: str | None = None,
    region: str | None = None,
    state_table: str | None = None,
    event_bus: str | None = None,
    export_s3: str | None = None,
    export_kms_key: str | None = None,
) -> dict[str, Any]:
    """The IAM policy document for a bot running with `policy` (`event_bus`:
    PITR_BOT_EVENT_BUS; `export_s3`: where its incremental exports go, PITR_BOT_EXPORT_S3;
    `export_kms_key`: that bucket's customer managed KMS key, PITR_BOT_EXPORT_S3_KMS_KEY)."""
    if account is not None and not ACCOUNT.match(account):
        raise IamPolicyError(f"--account {account!r} is not a 12-digit AWS account ID")
    if region is not None and not REGION.match(region):
        raise IamPolicyError(f"--region {region!r} is not an AWS region name (e.g. eu-west-1)")
    arn = _Arns(partition(region), region or "*", account or "*")
    # `prod:*`-style patterns name other accounts' tables: granted there (member_policies).
    own = [t for t in dict.fromkeys(policy.tables) if ":" not in t] or ["no-table-allowed"]
    sources = [arn.table(_iam_glob(t)) for t in own]
    target = policy.target_pattern
    targets = [arn.table(target), arn.table(f"{target}/index/*")]
    statements: list[dict[str, Any]] = [
        _allow("ReadAndProtectAllowedSources", [*SOURCE_READS, *PROTECT], sources),
        _allow("RestoreFromAllowedSources", ["dynamodb:RestoreTableToPointInTime"], sources),
        _allow("ListTables", ["dynamodb:ListTables"], ["*"]),
        _allow(
            "WriteRestoredTargets",
            [*RESTORE_WRITES, *SOURCE_READS, *PROTECT, *TARGET_SETUP],
            targets,
        ),
        _allow(
            "ChangeOnlyTablesTheBotRestored",
            list(TARGET_CHANGES),
            targets[:1],
            {"Null": {f"aws:ResourceTag/{MARKER_TAG}": "false"}},
        ),
        # Drill tables carry a tag of their own (bot/drills/model.py DRILL_TAG), never the
        # restores' marker: the drill clean-up may delete those, and only those.
        *(
            [
                _allow(
                    "DeleteOnlyDrillTables",
                    ["dynamodb:DeleteTable"],
                    targets[:1],
                    {"Null": {f"aws:ResourceTag/{DRILL_TAG}": "false"}},
                )
            ]
            if policy.drills
            else []
        ),
        _allow("ReadAutoScaling", [*SCALING_READS, *ALARM_READS], ["*"]),
        _allow(
            "CopyAutoScalingOnlyForDynamoDB",
            list(SCALING_WRITES),
            ["*"],
            {"StringEquals": {"application-autoscaling:service-namespace": AUTOSCALING_NAMESPACE}},
        ),
        _allow(
            "AutoScalingAlarmsOfTargetsOnly",
            list(ALARM_WRITES),
            [arn.alarm(f"TargetTracking-table/{target}")],
        ),
    ]
    statements.append(_allow("CompareItemsWithSources", list(COMPARE_READS), sources))
    # The export path reads PITR's log of a source (harmless without the S3 grants below).
    statements.append(_allow("ExportChangesOfSources", list(EXPORT_START), sources))
    exports = [f"{s}/export/*" for s in sources]
    statements.append(_allow("DescribeExportsOfSources", list(EXPORT_DESCRIBE), exports))
    # After a restart that lost a start's reply, the export is looked up by its ClientToken
    # (tokens last 8 hours). ListExports names no table in IAM (like ListTables): `*`; it
    # returns export ARNs and states, no item data.
    statements.append(_allow("ListExportsToAdoptOneAfterARestart", ["dynamodb:ListExports"], ["*"]))
    # `prod:orders`-style patterns are other accounts' tables: granted there (member_policies).
    writable = [t for t in copy_back_tables(policy) if ":" not in t]
    if writable:
        statements.append(
            _allow(
                "CopyBackIntoLiveTablesWithCopyBackOn",
                list(COPY_BACK_WRITES),
                [arn.table(_iam_glob(t)) for t in writable],
            )
        )
    statements += _kms_statements(policy.kms_keys, arn)
    if export_s3:
        statements += _export_statements(export_s3, sources, arn.part, export_kms_key)
    if policy.accounts:
        # Reach the member accounts; SetSourceIdentity names the approver in their CloudTrail.
        roles = [account.role_arn for account in policy.accounts.values()]
        statements.append(_allow("AssumeMemberAccountRoles", list(ASSUME_ACTIONS), roles))
    if state_table:
        statements.append(
            _allow(
                "StateTable",
                list(STATE_TABLE_ACTIONS),
                [arn.table(state_table), arn.table(f"{state_table}/index/*")],
            )
        )
    if event_bus:
        # Restore events (bot/restore_events.py): that bus only.
        bus = event_bus if event_bus.startswith("arn:") else arn.event_bus(event_bus)
        statements.append(_allow("PutRestoreEventsOnTheBus", ["events:PutEvents"], [bus]))
    return {"Version": "2012-10-17", "Statement": statements}


def copy_back_tables(policy: Policy) -> list[str]:
    """Glob patterns of the live tables the bot may write items back into.

    A rule's patterns (or the default's `tables`) where `copy_back` is on, narrowed to the
    policy's `tables`: a pattern wider than every source (e.g. `*` with tables [orders]) is
    replaced by the sources it covers. IAM has no "first matching rule": when the default is on
    and a rule turns it off, the default's patterns still cover that rule's tables here (the
    bot refuses them itself), which docs/operator-guide.md says.
    """
    patterns: list[str] = []
    for rule in policy.rules:
        if rule.copy_back if rule.copy_back is not None else policy.copy_back:
            patterns += rule.tables
    if policy.copy_back:
        patterns += policy.tables
    out: list[str] = []
    for pattern in patterns:
        if any(fnmatch.fnmatchcase(pattern, source) for source in policy.tables):
            out.append(pattern)
        else:
            out += [s for s in policy.tables if fnmatch.fnmatchcase(s, pattern)]
    return list(dict.fromkeys(out))


def member_policies(policy: Policy, alias: str, bot_principal: str) -> dict[str, Any]:
    """For the role the bot assumes in account `alias`: its trust policy (who may assume it:
    `bot_principal`, the bot's own role ARN, with the external ID when one is set) and its
    permission policy (the bot's grants, limited to that account and its tables)."""
    if alias not in policy.accounts:
        known = ", ".join(sorted(policy.accounts)) or "none"
        raise IamPolicyError(f"--member {alias!r} is not in the policy's `accounts` ({known})")
    if not BOT_PRINCIPAL.fullmatch(bot_principal):
        raise IamPolicyError(
            f"--bot-role {bot_principal!r} is not an IAM role ARN "
            "(arn:aws:iam::123456789012:role/NAME): the role the bot runs as"
        )
    account = policy.accounts[alias]
    principal = {"AWS": bot_principal}
    assume: dict[str, Any] = {
        "Sid": "PitrBotAssumesThisRole",
        "Effect": "Allow",
        "Principal": principal,
        "Action": ["sts:AssumeRole"],
    }
    if account.external_id:
        assume["Condition"] = {"StringEquals": {"sts:ExternalId": account.external_id}}
    # A statement of its own: AWS's service authorization reference lists `sts:ExternalId` for
    # AssumeRole, not for SetSourceIdentity, so the external ID condition must not cover it.
    # (Only a session the AssumeRole statement let in ever sets a source identity.)
    name = {
        "Sid": "PitrBotNamesTheApprover",
        "Effect": "Allow",
        "Principal": principal,
        "Action": ["sts:SetSourceIdentity"],
    }
    tables = member_tables(policy.tables, alias)
    # The rules too (copy_back: true on `prod:orders` is item writes on `orders` there).
    rules = [
        rule.model_copy(update={"tables": mapped})
        for rule in policy.rules
        if (mapped := member_tables(rule.tables, alias))
    ]
    # In the member account the bot keeps no state and reaches no further account.
    member = policy.model_copy(
        update={"tables": tables or ["no-table-allowed"], "rules": rules, "accounts": {}}
    )
    region = account.regions[0] if len(account.regions) == 1 else None
    return {
        "role_arn": account.role_arn,
        "trust_policy": {"Version": "2012-10-17", "Statement": [assume, name]},
        "permission_policy": iam_policy(
            member,
            account.account_id,
            region,
            export_s3=account.export_s3,
            export_kms_key=account.export_s3_kms_key,
        ),
    }


def member_tables(patterns: list[str], alias: str) -> list[str]:
    """The policy `tables` globs that can match a table of account `alias`, as bare-name
    globs: `prod:orders*` -> `orders*`; `*` (any account) stays `*`; `orders` (the bot's
    own account only) is left out."""
    out: list[str] = []
    for pattern in patterns:
        if ":" in pattern:
            head, _, tail = pattern.partition(":")
            if fnmatch.fnmatchcase(alias, head):
                out.append(tail)
        elif pattern.startswith("*"):
            out.append(pattern)
    return list(dict.fromkeys(out))


def _export_statements(
    export_s3: str, sources: list[str], part: str, kms_key: str | None = None
) -> list[dict[str, Any]]:
    bucket = parse_s3(export_s3)
    prefix = f"{bucket.prefix}/" if bucket.prefix else ""
    objects = [f"arn:{part}:s3:::{bucket.name}/{prefix}*"]
    listing = {"StringLike": {"s3:prefix": [f"{prefix}*"]}} if prefix else None
    return [
        _allow("ExportWritesToTheExportPrefix", list(EXPORT_S3_WRITES), objects),
        _allow("ReadExportFiles", list(EXPORT_S3_READS), objects),
        _allow(
            "ListOnlyTheExportPrefix",
            ["s3:ListBucket"],
            [f"arn:{part}:s3:::{bucket.name}"],
            listing,
        ),
        *(
            [
                _allow(
                    "UseTheExportBucketKeyThroughS3",
                    list(EXPORT_KMS_ACTIONS),
                    [kms_key],
                    {
                        "StringEquals": {
                            "kms:ViaService": f"s3.{kms_key.split(':')[3]}.amazonaws.com"
                        }
                    },
                )
            ]
            if kms_key
            else []
        ),
    ]


def state_table_of(state: str) -> str | None:
    """PITR_BOT_STATE -> the DynamoDB state table's name, or None for SQLite."""
    prefix = "dynamodb://"
    return state[len(prefix) :] if state.startswith(prefix) else None


class _Arns:
    def __init__(self, part: str, region: str, account: str):
        self.part, self.region, self.account = part, region, account

    def table(self, name: str) -> str:
        return f"arn:{self.part}:dynamodb:{self.region}:{self.account}:table/{name}"

    def event_bus(self, name: str) -> str:
        return f"arn:{self.part}:events:{self.region}:{self.account}:event-bus/{name}"

    def alarm(self, prefix: str) -> str:
        # CloudWatch alarm ARNs: arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME
        return f"arn:{self.part}:cloudwatch:{self.region}:{self.account}:alarm:{prefix}*"

    def key(self, key_id: str) -> str:
        return f"arn:{self.part}:kms:{self.region}:{self.account}:key/{key_id}"


def _kms_statements(keys: list[str], arn: _Arns) -> list[dict[str, Any]]:
    """Key ARNs and IDs are resources; aliases cannot be (IAM checks the key), so a key is
    matched by its alias with kms:ResourceAliases."""
    by_key: list[str] = []
    aliases: list[str] = []
    alias_keys: list[str] = []
    for key in dict.fromkeys(keys):
        if key == AWS_MANAGED_KEY or key.endswith(":" + AWS_MANAGED_KEY):
            continue  # AWS managed: its key policy already lets DynamoDB users use it
        if key.startswith("arn:"):
            head, resource = key.split(":", 5)[:5], key.split(":", 5)[5]
            if resource.startswith("alias/"):
                aliases.append(resource)
                alias_keys.append(":".join(head) + ":key/*")
            else:
                by_key.append(key)
        elif key.startswith("alias/"):
            aliases.append(key)
            alias_keys.append(arn.key("*"))
        else:
            by_key.append(arn.key(key))
    via = (
        {"StringEquals": {"kms:ViaService": f"dynamodb.{arn.region}.amazonaws.com"}}
        if arn.region != "*"
        else {"StringLike": {"kms:ViaService": "dynamodb.*.amazonaws.com"}}
    )
    out = []
    if by_key:
        out.append(_allow("UseAllowedKmsKeysThroughDynamoDB", list(KMS_ACTIONS), by_key, via))
    if aliases:
        condition = {**via, "ForAnyValue:StringEquals": {"kms:ResourceAliases": aliases}}
        out.append(
            _allow(
                "UseAllowedKmsAliasesThroughDynamoDB",
                list(KMS_ACTIONS),
                list(dict.fromkeys(alias_keys)),
                condition,
            )
        )
    return out


def _iam_glob(pattern: str) -> str:
    """fnmatch -> IAM: IAM has * and ? but no [...] classes; a class becomes `?` (one
    character), which can only widen the grant to names the policy file would refuse anyway
    at request time."""
    return re.sub(r"\[[^\]]*\]", "?", pattern)


def _allow(
    sid: str, actions: list[str], resources: list[str], condition: dict | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(dict.fromkeys(actions)),
        "Resource": resources[0] if len(resources) == 1 else resources,
    }
    if condition:
        statement["Condition"] = condition
    return statement
