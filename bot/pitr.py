"""PitrService: the gateway that talks to DynamoDB (clients come from bot.aws).

Everything AWS can say goes through `AwsError`, whose message is written for a tired on-call
engineer (what happened, what to do), and whose `retryable` tells the tracker whether to try
again on the next tick or give up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from bot.aws import (
    BOTO_CONFIG,
    DEFAULT_ACCOUNT,
    AssumedRole,
    Aws,
    UnknownAccount,
    custom_endpoint,
    default_aws,
    explicit_keys,
    session_name_for,
    sibling,
    source_identity_for,
)
from bot.overrides import OverrideError, api_overrides, needs_description
from bot.policy import AWS_MANAGED_KEY
from bot.restores import Window
from bot.tableref import RefError, TableRef, parse_ref

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
        # Where table references (`prod:orders@eu-west-1`) lead: see use_accounts().
        self.places: Aws | None = self.aws

    def use_accounts(self, roles: Mapping[str, AssumedRole]) -> None:
        """Reach the policy's `accounts` for references like `prod:orders`: every call about
        a table goes to the client of its (account, region), one cached session each."""
        self.places = self._new_places(roles)

    def _places(self) -> Aws:
        if self.places is None:
            self.places = self._new_places({})
        return self.places

    def _new_places(self, roles: Mapping[str, AssumedRole]) -> Aws:
        region = self.client.meta.region_name
        if self.aws is not None:
            return Aws(roles, region=region)
        # A ready client handed in (tests, the console): its endpoint and keys serve the rest.
        return Aws(
            roles,
            region=region,
            endpoint_url=custom_endpoint(self.client),
            keys=explicit_keys(self.client),
        )

    def client_at(self, account: str | None, region: str | None) -> Any:
        """The DynamoDB client for a place; this service's own for its account and region."""
        if account is None and region in (None, self.client.meta.region_name):
            return self.client
        try:
            return self._places().client("dynamodb", account or DEFAULT_ACCOUNT, region)
        except UnknownAccount as exc:
            raise AwsError(
                "UnknownAccount",
                f"The bot has no role for account `{account}` (policy `accounts`).",
            ) from exc

    def _route(self, table: str) -> tuple[Any, str]:
        """(client, bare table name) for a table reference; plain names stay here."""
        if ":" not in table and "@" not in table:
            return self.client, table
        ref = _ref(table)
        return self.client_at(ref.account, ref.region), ref.name

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
        self,
        source: str,
        target: str,
        at: datetime | None,
        overrides: dict | None = None,
        *,
        restore_id: str | None = None,
        approver: str | None = None,
    ) -> TableInfo:
        """Start the restore. `at` None means DynamoDB's latest restorable time.

        It runs in the target's account and region. In another account, under a session
        named for `restore_id` with SourceIdentity `approver`, so that account's CloudTrail
        shows who restored what. Across regions it names the source by ARN.
        """
        src, tgt = _ref(source), _ref(target)
        home = self.client.meta.region_name
        # Stored references are absolute: no region means the bot's own (see canonical()).
        src_region, tgt_region = src.region or home, tgt.region or home
        kwargs: dict[str, Any] = {"TargetTableName": tgt.name}
        # Cross-region (DynamoDB API reference, RestoreTableToPointInTime; Developer Guide,
        # "Before you begin using point-in-time recovery"): the call is made in the target's
        # region and names the source by `SourceTableArn`; the new table takes the source's
        # encryption settings unless `SSESpecificationOverride` says otherwise, and a KMS key
        # works only in its own region, so a KMS-encrypted source needs a key of the target's
        # region (DynamoDB's managed key there by default; a chosen key is checked before the
        # card, bot/overrides.py key_region_problem). Transfer out of the source region is
        # billed, which the card says.
        cross_region = src_region != tgt_region
        source_desc: dict[str, Any] = {}
        if cross_region:
            source_desc = self._call("DescribeTable", source, TableName=source)["Table"]
            kwargs["SourceTableArn"] = source_desc["TableArn"]
        else:
            kwargs["SourceTableName"] = src.name
        if at is None:
            kwargs["UseLatestRestorableTime"] = True
        else:
            kwargs["RestoreDateTime"] = at
        try:
            kwargs.update(self._overrides(source, overrides or {}))
        except OverrideError as exc:
            raise AwsError("InvalidOverrides", str(exc)) from exc
        if cross_region and "SSESpecificationOverride" not in kwargs:
            if source_desc.get("SSEDescription", {}).get("SSEType") == "KMS":
                # A KMS key lives in one region: the copy uses DynamoDB's managed key there.
                kwargs["SSESpecificationOverride"] = {
                    "Enabled": True,
                    "SSEType": "KMS",
                    "KMSMasterKeyId": AWS_MANAGED_KEY,
                }
        client = self._restore_client(tgt, tgt_region, restore_id, approver, target)
        resp = self._call("RestoreTableToPointInTime", source, via=client, **kwargs)
        return _table_info(resp["TableDescription"])

    def _restore_client(
        self,
        tgt: TableRef,
        region: str,
        restore_id: str | None,
        approver: str | None,
        label: str,
    ) -> Any:
        if tgt.account is None or restore_id is None:
            return self.client_at(tgt.account, region)
        try:
            return self._places().attributed_client(
                "dynamodb",
                tgt.account,
                region,
                session_name_for(restore_id),
                source_identity_for(approver),
            )
        except UnknownAccount as exc:
            raise AwsError(
                "UnknownAccount",
                f"The bot has no role for account `{tgt.account}` (policy `accounts`).",
            ) from exc
        except ClientError as exc:
            raise self._explain("sts:AssumeRole", label, exc) from exc
        except BotoCoreError as exc:
            raise AwsError(type(exc).__name__, f"AWS call failed: {exc}", retryable=True) from exc

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

    def own_account_id(self) -> str | None:
        """The bot's own AWS account ID (sts:GetCallerIdentity), asked once; None if AWS can't
        say now (asked again next time)."""
        if getattr(self, "_own_account", None) is None:
            try:
                self._own_account = str(self.sibling("sts").get_caller_identity()["Account"])
            except (ClientError, BotoCoreError) as exc:
                log.warning("own AWS account unknown (%s); table ARNs refused", exc)
                return None
        return self._own_account

    def identity_in(self, account: str) -> str:
        """Who the bot is in another account (policy `accounts`), through its role."""
        try:
            sts = self._places().client("sts", account)
            resp = sts.get_caller_identity()
        except UnknownAccount as exc:
            raise AwsError("UnknownAccount", f"No role for account `{account}`.") from exc
        except ClientError as exc:
            raise self._explain("sts:AssumeRole", account, exc) from exc
        except BotoCoreError as exc:
            raise AwsError(type(exc).__name__, f"AWS call failed: {exc}") from exc
        return f"{resp['Arn']} (account {resp['Account']})"

    def list_tables(
        self, limit: int = 1000, account: str | None = None, region: str | None = None
    ) -> list[str]:
        """Table names in a place (an account alias and region); this service's own by default."""
        names: list[str] = []
        kwargs: dict[str, Any] = {"Limit": 100}
        own = account is None and region in (None, self.client.meta.region_name)
        via = None if own else self.client_at(account, region)
        while len(names) < limit:
            resp = self._call("ListTables", "*", via=via, **kwargs)
            names += resp.get("TableNames", [])
            if "LastEvaluatedTableName" not in resp:
                break
            kwargs["ExclusiveStartTableName"] = resp["LastEvaluatedTableName"]
        return names[:limit]

    def _call(self, operation: str, table: str, via: Any = None, **kwargs: Any) -> dict[str, Any]:
        """One call about `table` (a name or reference), on the client of its place (or
        on `via`, a client made for this one call)."""
        if via is not None:
            return self._invoke(via, operation, table, **kwargs)
        client, name = self._route(table)
        if name != table:
            kwargs = {k: name if v == table else v for k, v in kwargs.items()}
        return self._invoke(client, operation, table, **kwargs)

    def _invoke(self, client: Any, operation: str, table: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(client, _snake(operation))
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
                f"The bot cannot reach DynamoDB in {client.meta.region_name} right now; "
                "it will keep trying.",
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
            where = "" if "@" in table else f" in {self.region}"
            message = f"Table `{table}` does not exist{where}."
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


def _ref(text: str) -> TableRef:
    try:
        return parse_ref(text)
    except RefError as exc:
        raise AwsError("InvalidTableReference", str(exc)) from exc


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
