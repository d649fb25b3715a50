"""PitrService: the gateway that talks to DynamoDB (clients come from bot.aws).

Everything AWS can say goes through `AwsError`, whose message is written for a tired on-call
engineer (what happened, what to do), and whose `retryable` tells the tracker whether to try
again on the next tick or give up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from bot.aws import BOTO_CONFIG, DEFAULT_ACCOUNT, Aws, default_aws, sibling
from bot.overrides import OverrideError, api_overrides, needs_description
from bot.restores import Window

log = logging.getLogger(__name__)

RETRYABLE = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
}
NOT_FOUND = {"ResourceNotFoundException", "TableNotFoundException", "SourceTableNotFoundException"}


@dataclass(frozen=True)
class TableInfo:
    name: str
    status: str
    arn: str | None = None
    item_count: int | None = None
    size_bytes: int | None = None
    billing_mode: str | None = None
    indexes: tuple[str, ...] = ()
    encryption: str | None = None
    deletion_protection: bool = False
    restored_from: str | None = None  # RestoreSummary.SourceTableArn, for a restored table
    restored_at: datetime | None = None  # RestoreSummary.RestoreDateTime: the instant restored
    table_id: str | None = None  # TableId: unlike the name or ARN, never reused (moto: none)
    created_at: datetime | None = None  # CreationDateTime


@dataclass(frozen=True)
class PitrInfo:
    table: str
    status: str  # ENABLED, DISABLED (or ENABLING/DISABLING in transitions)
    window: Window | None = None
    recovery_days: int | None = None

    @property
    def enabled(self) -> bool:
        return self.status == "ENABLED"


class AwsError(Exception):
    def __init__(self, code: str, message: str, retryable: bool = False):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


class PitrService:
    def __init__(
        self,
        client: Any | None = None,
        *,
        aws: Aws | None = None,
        account: str = DEFAULT_ACCOUNT,
        region: str | None = None,
    ):
        """A ready DynamoDB `client` (tests, simulators), or one from the factory `aws`
        (default: the process's) for `account` and `region`."""
        self.aws = None if client is not None else (aws or default_aws())
        self.account, self.asked_region = account, region
        self.client = client if client is not None else self.aws.client("dynamodb", account, region)
        self.on_error: Callable[[str], None] = lambda code: None  # metrics

    def sibling(self, service: str, config: Any = BOTO_CONFIG) -> Any:
        """A client for another AWS service, same account, region and credentials."""
        if self.aws is None:
            return sibling(self.client, service, config)
        return self.aws.client(service, self.account, self.asked_region, config)

    @property
    def region(self) -> str:
        return self.client.meta.region_name or "the configured region"

    def table(self, name: str) -> TableInfo | None:
        """The table's description, or None if it does not exist."""
        try:
            resp = self._call("DescribeTable", name, TableName=name)
        except AwsError as exc:
            if exc.code in NOT_FOUND:
                return None
            raise
        return _table_info(resp["Table"])

    def pitr(self, name: str) -> PitrInfo:
        resp = self._call("DescribeContinuousBackups", name, TableName=name)
        return _pitr_info(name, resp["ContinuousBackupsDescription"])

    def enable_pitr(self, name: str, days: int | None = None) -> PitrInfo:
        spec: dict[str, Any] = {"PointInTimeRecoveryEnabled": True}
        if days is not None:
            spec["RecoveryPeriodInDays"] = days
        resp = self._call(
            "UpdateContinuousBackups",
            name,
            TableName=name,
            PointInTimeRecoverySpecification=spec,
        )
        return _pitr_info(name, resp["ContinuousBackupsDescription"])

    def restore(
        self, source: str, target: str, at: datetime | None, overrides: dict | None = None
    ) -> TableInfo:
        """Start the restore. `at` None means DynamoDB's latest restorable time."""
        kwargs: dict[str, Any] = {"SourceTableName": source, "TargetTableName": target}
        if at is None:
            kwargs["UseLatestRestorableTime"] = True
        else:
            kwargs["RestoreDateTime"] = at
        try:
            kwargs.update(self._overrides(source, overrides or {}))
        except OverrideError as exc:
            raise AwsError("InvalidOverrides", str(exc)) from exc
        resp = self._call("RestoreTableToPointInTime", source, **kwargs)
        return _table_info(resp["TableDescription"])

    def overrides_problem(self, source: str, overrides: dict | None) -> str | None:
        """Why AWS would reject these overrides for `source`, or None (checked before a card)."""
        try:
            self._overrides(source, overrides or {})
        except OverrideError as exc:
            return str(exc)
        return None

    def _overrides(self, source: str, overrides: dict) -> dict[str, Any]:
        """The API's override parameters for the options a person chose (see bot.overrides)."""
        table = None
        if needs_description(overrides):
            table = self._call("DescribeTable", source, TableName=source)["Table"]
        return api_overrides(source, overrides, table)

    def caller_identity(self) -> str:
        """Who the bot is to AWS (sts:GetCallerIdentity): 'ARN (account N)'. For check-config."""
        sts = self.sibling("sts")
        try:
            resp = sts.get_caller_identity()
        except ClientError as exc:
            raise self._explain("GetCallerIdentity", "*", exc) from exc
        return f"{resp['Arn']} (account {resp['Account']})"

    def list_tables(self, limit: int = 1000) -> list[str]:
        names: list[str] = []
        kwargs: dict[str, Any] = {"Limit": 100}
        while len(names) < limit:
            resp = self._call("ListTables", "*", **kwargs)
            names += resp.get("TableNames", [])
            if "LastEvaluatedTableName" not in resp:
                break
            kwargs["ExclusiveStartTableName"] = resp["LastEvaluatedTableName"]
        return names[:limit]

    def _call(self, operation: str, table: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self.client, _snake(operation))
        try:
            return method(**kwargs)
        except ClientError as exc:
            raise self._explain(operation, table, exc, kwargs.get("TargetTableName")) from exc
        except NoCredentialsError as exc:
            raise AwsError(
                "NoCredentials",
                "The bot has no AWS credentials. Set them up through the standard AWS "
                "credential chain (environment, profile or instance role).",
            ) from exc
        except EndpointConnectionError as exc:
            self.on_error("EndpointConnectionError")
            raise AwsError(
                "EndpointConnectionError",
                f"The bot cannot reach DynamoDB in {self.region} right now; it will keep trying.",
                retryable=True,
            ) from exc
        except BotoCoreError as exc:
            log.warning("AWS %s on %s failed: %s", operation, table, exc)
            raise AwsError(type(exc).__name__, f"AWS call failed: {exc}", retryable=True) from exc

    def _explain(
        self, operation: str, table: str, exc: ClientError, target: str | None = None
    ) -> AwsError:
        """`table` is the table the call is about; for a restore, `target` is the new one."""
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        self.on_error(code)
        aws_message = exc.response.get("Error", {}).get("Message", "")
        retryable = code in RETRYABLE
        if code in NOT_FOUND:
            message = f"Table `{table}` does not exist in {self.region}."
        elif code == "PointInTimeRecoveryUnavailableException":
            message = (
                f"Point-in-time recovery is not enabled on `{table}`. "
                f"Turn it on with `/pitr-enable {table}` (it protects from now on)."
            )
        elif code == "InvalidRestoreTimeException":
            message = (
                "That instant is outside the table's restorable window. Pick an instant "
                f"inside it (`/pitr-status {table}` shows it) or use `latest`."
            )
        elif code in {"TableAlreadyExistsException", "ResourceInUseException"}:
            message = (
                f"Table `{target}` already exists. Pick another name for the target."
                if target
                else f"`{table}` already exists or is being changed. Try again in a few minutes."
            )
        elif code == "TableInUseException":
            # On a restore, AWS means the target name: a table of that name is being created
            # or deleted (botocore's model says so), not the source.
            busy = target or table
            message = (
                f"Table `{busy}` is being created or deleted right now, so it can't be the "
                "target. Wait for it, or pick another name."
                if target
                else f"`{busy}` is busy with another operation. Try again in a few minutes."
            )
        elif code == "LimitExceededException":
            message = (
                "DynamoDB's limit on concurrent table operations is reached (50 restores at "
                "once per account). The bot will try again."
            )
        elif code in {"AccessDeniedException", "UnrecognizedClientException"}:
            message = (
                f"The bot's AWS identity may not call {operation} on `{table}`. "
                "Grant the actions in docs/iam-policy.json."
            )
        elif retryable:
            message = f"AWS is throttling or unavailable ({code}); the bot will try again."
        else:
            message = f"AWS refused {operation}: {aws_message or code}"
        log.info("AWS %s on %s: %s (%s)", operation, table, code, aws_message)
        return AwsError(code, message, retryable=retryable)


def _snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")


def _table_info(desc: dict[str, Any]) -> TableInfo:
    indexes = tuple(
        i["IndexName"]
        for i in desc.get("GlobalSecondaryIndexes", []) + desc.get("LocalSecondaryIndexes", [])
    )
    billing = desc.get("BillingModeSummary", {}).get("BillingMode")
    if billing is None and desc.get("ProvisionedThroughput", {}).get("ReadCapacityUnits"):
        billing = "PROVISIONED"
    sse = desc.get("SSEDescription", {})
    encryption = sse.get("SSEType") or ("AWS owned key" if not sse else sse.get("Status"))
    return TableInfo(
        name=desc["TableName"],
        status=desc.get("TableStatus", "UNKNOWN"),
        arn=desc.get("TableArn"),
        item_count=desc.get("ItemCount"),
        size_bytes=desc.get("TableSizeBytes"),
        billing_mode=billing or "PAY_PER_REQUEST",
        indexes=indexes,
        encryption=encryption,
        deletion_protection=bool(desc.get("DeletionProtectionEnabled", False)),
        restored_from=desc.get("RestoreSummary", {}).get("SourceTableArn"),
        restored_at=_maybe_aware(desc.get("RestoreSummary", {}).get("RestoreDateTime")),
        table_id=desc.get("TableId"),
        created_at=_maybe_aware(desc.get("CreationDateTime")),
    )


def _pitr_info(table: str, desc: dict[str, Any]) -> PitrInfo:
    pitr = desc.get("PointInTimeRecoveryDescription", {})
    status = pitr.get("PointInTimeRecoveryStatus", "DISABLED")
    earliest, latest = pitr.get("EarliestRestorableDateTime"), pitr.get("LatestRestorableDateTime")
    window = None
    if status == "ENABLED" and earliest and latest:
        window = Window(_aware(earliest), _aware(latest))
    return PitrInfo(table, status, window, pitr.get("RecoveryPeriodInDays"))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _maybe_aware(value: Any) -> datetime | None:
    return _aware(value) if isinstance(value, datetime) else None
