"""After ACTIVE, the AWS side: read what a restore leaves out on both tables, and copy it.

A point-in-time restore does not carry over PITR, TTL, tags, stream settings, deletion
protection, auto scaling or contributor insights. `AftercareService` reads each of them on both
tables (with the same DynamoDB client as `PitrService`, plus an Application Auto Scaling client
from the same account, region and credentials) and copies them on request. How the readings
compare and what is shown lives in `bot.aftercare.rules` (pure).

The restored table is tagged `pitr-bot:restore-id = <request id>` as soon as it is ACTIVE. The
IAM policy (docs/iam-policy.json) only lets the bot change or delete tables carrying that tag,
so it can never alter or drop an ordinary business table. The tag is ignored when comparing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from bot.aftercare.rules import (
    MARKER_TAG,
    NAMESPACE,
    Aspect,
    CouldNotCheck,
    DeletionRefused,
    compare,
    dimension,
    protected,
    split_reserved,
    streams,
    summary,
)
from bot.aws import BOTO_CONFIG, DEFAULT_ACCOUNT, ONE_TRY, UnknownAccount
from bot.pitr import NOT_FOUND, AwsError, PitrService, _snake, _table_info
from bot.policy import table_name_of
from bot.table_identity import identity
from bot.tableref import parse_ref

SOURCE_FRESH = 30.0  # seconds a source's settings are reused across comparisons


class AftercareService(PitrService):
    """DynamoDB + Application Auto Scaling calls for the after-restore checks and fixes."""

    def __init__(self, client: Any | None = None, autoscaling: Any | None = None, **gateway: Any):
        super().__init__(client, **gateway)
        self.autoscaling = autoscaling or self.sibling("application-autoscaling")
        # Contributor insights is only reported, never fixed: one try is enough, and an
        # endpoint without the API (moto) must not cost a round of retries per comparison.
        self._insights = self.sibling("dynamodb", ONE_TRY)
        # Restores of one source often finish together (a batch, or fifty after an incident):
        # its settings are read once for all of them, not once per restore.
        self._sources: dict[str, tuple[float, dict[str, Any]]] = {}
        self._sources_lock = threading.Lock()

    @classmethod
    def from_pitr(cls, pitr: PitrService, autoscaling: Any | None = None) -> AftercareService:
        """The same account, region and credentials as `pitr`."""
        if pitr.aws is None:  # a ready client handed in (tests, simulators)
            service = cls(pitr.client, autoscaling)
        else:
            gateway = {"aws": pitr.aws, "account": pitr.account, "region": pitr.asked_region}
            service = cls(None, autoscaling, **gateway)
        service.on_error = pitr.on_error
        service.places = pitr.places  # the same accounts (table references)
        return service

    # -- reading ----------------------------------------------------------------------------
    def describe(self, table: str) -> dict[str, Any]:
        resp = self._call("DescribeTable", table, TableName=table)
        return dict(resp["Table"])

    def read(self, table: str, desc: dict[str, Any] | None = None) -> dict[str, Any]:
        """Every aspect of `table`, each a comparable value or a CouldNotCheck."""
        desc = desc or self.describe(table)
        out: dict[str, Any] = {}
        readers: dict[str, Callable[[], Any]] = {
            "pitr": lambda: self._read_pitr(table),
            "ttl": lambda: self._read_ttl(table),
            "tags": lambda: self._read_tags(table, desc),
            "streams": lambda: streams(desc),
            "deletion_protection": lambda: bool(desc.get("DeletionProtectionEnabled", False)),
            "autoscaling": lambda: self._read_autoscaling(table, desc),
            "contributor_insights": lambda: self._read_insights(table),
        }
        for name, reader in readers.items():
            try:
                out[name] = reader()
            except AwsError as exc:
                out[name] = CouldNotCheck(exc.message)
            except CouldNotCheck as exc:
                out[name] = exc
        return out

    def compare(self, source: str, target: str) -> list[Aspect]:
        return compare(self._source_settings(source), self.read(target))

    def _source_settings(self, source: str) -> dict[str, Any]:
        """The source's aspects, read at most once every SOURCE_FRESH seconds."""
        now = time.monotonic()
        with self._sources_lock:
            cached = self._sources.get(source)
        if cached is not None and now - cached[0] < SOURCE_FRESH:
            return cached[1]
        settings = self.read(source)
        with self._sources_lock:
            self._sources = {k: v for k, v in self._sources.items() if now - v[0] < SOURCE_FRESH}
            self._sources[source] = (now, settings)
        return settings

    def _read_pitr(self, table: str) -> dict[str, Any]:
        info = self.pitr(table)
        return {"enabled": info.enabled, "days": info.recovery_days if info.enabled else None}

    def _read_ttl(self, table: str) -> dict[str, Any]:
        resp = self._call("DescribeTimeToLive", table, TableName=table)
        desc = resp.get("TimeToLiveDescription", {})
        status = desc.get("TimeToLiveStatus", "DISABLED")
        enabled = status in {"ENABLED", "ENABLING"}
        return {"enabled": enabled, "attribute": desc.get("AttributeName") if enabled else None}

    def identity(self, table: str) -> dict[str, Any] | None:
        """What bot/table_identity.py compares: the table as AWS describes it now, or None."""
        try:
            desc = self.describe(table)
        except AwsError as exc:
            if exc.code in NOT_FOUND:
                return None
            raise
        info = _table_info(desc)
        marker = self._all_tags(table, desc).get(MARKER_TAG)
        return identity(
            info.arn, info.table_id, info.restored_from, info.restored_at, marker, info.created_at
        )

    def _read_tags(self, table: str, desc: dict[str, Any]) -> dict[str, str]:
        tags = self._all_tags(table, desc)
        tags.pop(MARKER_TAG, None)
        return tags

    def _all_tags(self, table: str, desc: dict[str, Any]) -> dict[str, str]:
        arn = desc["TableArn"]
        tags: dict[str, str] = {}
        kwargs: dict[str, Any] = {"ResourceArn": arn}
        while True:
            resp = self._call("ListTagsOfResource", table, **kwargs)
            tags.update({t["Key"]: t["Value"] for t in resp.get("Tags", [])})
            if not resp.get("NextToken"):
                break
            kwargs["NextToken"] = resp["NextToken"]
        return tags

    def _read_insights(self, table: str) -> str:
        try:
            client = self._at(table, "dynamodb", ONE_TRY) or self._insights
            resp = client.describe_contributor_insights(TableName=table_name_of(table))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise CouldNotCheck(f"DescribeContributorInsights failed ({code})") from exc
        except BotoCoreError as exc:
            reason = type(exc).__name__
            raise CouldNotCheck(f"DescribeContributorInsights failed ({reason})") from exc
        except NotImplementedError as exc:  # an endpoint (moto) without this API
            raise CouldNotCheck("DescribeContributorInsights is not available") from exc
        return str(resp.get("ContributorInsightsStatus", "DISABLED"))

    def _read_autoscaling(self, table: str, desc: dict[str, Any]) -> dict[str, Any]:
        """{"" or "index/NAME": {dimension: {min, max, policies}}} for the table and its GSIs."""
        name = table_name_of(table)
        resources = {f"table/{name}": ""}
        for index in desc.get("GlobalSecondaryIndexes", []):
            resources[f"table/{name}/index/{index['IndexName']}"] = f"index/{index['IndexName']}"
        found: dict[str, Any] = {}
        targets = self._scaling_pages(
            "DescribeScalableTargets",
            table,
            "ScalableTargets",
            ServiceNamespace=NAMESPACE,
            ResourceIds=list(resources),
        )
        for target in targets:
            part = resources.get(target["ResourceId"])
            if part is None:
                continue
            found.setdefault(part, {})[dimension(target["ScalableDimension"])] = {
                "min": target["MinCapacity"],
                "max": target["MaxCapacity"],
                "policies": [],
            }
        for resource_id, part in resources.items():
            if part not in found:
                continue
            policies = self._scaling_pages(
                "DescribeScalingPolicies",
                table,
                "ScalingPolicies",
                ServiceNamespace=NAMESPACE,
                ResourceId=resource_id,
            )
            for policy in policies:
                if policy.get("ResourceId", resource_id) != resource_id:
                    continue
                dim = found[part].get(dimension(policy["ScalableDimension"]))
                if dim is None:
                    continue
                spec = {k: policy[k] for k in ("PolicyName", "PolicyType") if k in policy}
                for key in (
                    "TargetTrackingScalingPolicyConfiguration",
                    "StepScalingPolicyConfiguration",
                ):
                    if key in policy:
                        spec[key] = policy[key]
                dim["policies"].append(spec)
        for dims in found.values():
            for dim in dims.values():
                dim["policies"].sort(key=lambda p: p.get("PolicyName", ""))
        return found

    def _scaling_pages(self, operation: str, table: str, key: str, **kwargs: Any) -> list[dict]:
        out: list[dict] = []
        while True:
            resp = self._scaling(operation, table, **kwargs)
            out += resp.get(key, [])
            if not resp.get("NextToken"):
                return out
            kwargs["NextToken"] = resp["NextToken"]

    # -- fixing -----------------------------------------------------------------------------
    def mark(self, target: str, restore_id: str) -> None:
        """Tag the restored table as ours (what the IAM policy's conditions look for)."""
        arn = self.describe(target)["TableArn"]
        self._call(
            "TagResource",
            target,
            ResourceArn=arn,
            Tags=[{"Key": MARKER_TAG, "Value": restore_id}],
        )

    def fix(self, aspect: str, source: str, target: str) -> str:
        """Make `target` match `source` for one aspect; returns what was done, in words."""
        if aspect == "pitr":
            days = self._read_pitr(source)["days"]
            info = self.enable_pitr(target, days)
            period = f"{info.recovery_days} days" if info.recovery_days else "35 days"
            return f"PITR enabled (recovery period {period})"
        if aspect == "ttl":
            want, have = self._read_ttl(source), self._read_ttl(target)
            if want == have:
                return "TTL already matched"
            if have["enabled"]:  # DynamoDB changes TTL in two steps: off, then on again
                self._call(
                    "UpdateTimeToLive",
                    target,
                    TableName=target,
                    TimeToLiveSpecification={
                        "Enabled": False,
                        "AttributeName": have["attribute"],
                    },
                )
            if want["enabled"]:
                self._call(
                    "UpdateTimeToLive",
                    target,
                    TableName=target,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": want["attribute"]},
                )
                return f"TTL enabled on attribute `{want['attribute']}`"
            return "TTL disabled"
        if aspect == "tags":
            tags, reserved = split_reserved(self._read_tags(source, self.describe(source)))
            left_out = (
                f"; left out {', '.join(reserved)} (`aws:` keys are AWS's)" if reserved else ""
            )
            if not tags:
                return "no tags to copy" + left_out
            arn = self.describe(target)["TableArn"]
            items = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
            for start in range(0, len(items), 50):  # TagResource takes at most 50 at once
                self._call("TagResource", target, ResourceArn=arn, Tags=items[start : start + 50])
            return f"{len(tags)} tag(s) copied" + left_out
        if aspect == "streams":
            want = streams(self.describe(source))
            have = streams(self.describe(target))
            if want == have:
                return "stream settings already matched"
            if have["enabled"] and want["enabled"]:
                # The view type can't be changed in place: turn the stream off, then on.
                self._update_stream(target, {"StreamEnabled": False})
            spec: dict[str, Any] = {"StreamEnabled": want["enabled"]}
            if want["enabled"]:
                spec["StreamViewType"] = want["view"]
            self._update_stream(target, spec)
            return f"stream {summary('streams', want)}"
        if aspect == "autoscaling":
            return self._copy_autoscaling(source, target)
        raise ValueError(f"no fix for {aspect}")

    def _update_stream(self, target: str, spec: dict[str, Any]) -> None:
        self._call("UpdateTable", target, TableName=target, StreamSpecification=spec)

    def _copy_autoscaling(self, source: str, target: str) -> str:
        wanted = self._read_autoscaling(source, self.describe(source))
        target_desc = self.describe(target)
        indexes = {f"index/{i['IndexName']}" for i in target_desc.get("GlobalSecondaryIndexes", [])}
        targets = policies = 0
        for part, dims in sorted(wanted.items()):
            if part and part not in indexes:
                continue  # an index left out of the restore
            resource_id = f"table/{table_name_of(target)}" + (f"/{part}" if part else "")
            kind = "index" if part else "table"
            for unit, setting in sorted(dims.items()):
                scalable = f"dynamodb:{kind}:{unit}"
                self._scaling(
                    "RegisterScalableTarget",
                    target,
                    ServiceNamespace=NAMESPACE,
                    ResourceId=resource_id,
                    ScalableDimension=scalable,
                    MinCapacity=setting["min"],
                    MaxCapacity=setting["max"],
                )
                targets += 1
                for policy in setting["policies"]:
                    self._scaling(
                        "PutScalingPolicy",
                        target,
                        ServiceNamespace=NAMESPACE,
                        ResourceId=resource_id,
                        ScalableDimension=scalable,
                        **policy,
                    )
                    policies += 1
        return f"{targets} scalable target(s) and {policies} scaling polic(ies) copied"

    def delete_restored(self, target: str, source: str) -> str:
        """Delete `target` if it is a restore of `source` without deletion protection."""
        try:
            desc = self.describe(target)
        except AwsError as exc:
            if exc.code in NOT_FOUND:
                return f"`{target}` was already gone"
            raise
        restored_from = desc.get("RestoreSummary", {}).get("SourceTableArn") or ""
        # No RestoreSummary at all is no restore: refuse rather than fail open.
        if not restored_from.endswith(f":table/{table_name_of(source)}"):
            raise DeletionRefused(
                f"`{target}` is not a restore of `{source}` any more (someone replaced it), "
                "so I did not touch it."
            )
        if desc.get("DeletionProtectionEnabled"):
            raise DeletionRefused(protected(target))
        try:
            self._call("DeleteTable", target, TableName=target)
        except AwsError as exc:
            if exc.code in NOT_FOUND:
                return f"`{target}` was already gone"
            if "deletionprotection" in exc.message.lower().replace(" ", ""):
                raise DeletionRefused(protected(target)) from exc
            raise
        return f"`{target}` deleted"

    # -- Application Auto Scaling calls, with the same error wording as DynamoDB's ----------
    def _at(self, table: str, service: str, config: Any = BOTO_CONFIG) -> Any:
        """A client of `service` in the account and region of a table reference
        (`prod:orders@eu-west-1`), or None for a table of this service's own place."""
        if ":" not in table and "@" not in table:
            return None
        ref = parse_ref(table)
        try:
            return self._places().client(
                service, ref.account or DEFAULT_ACCOUNT, ref.region, config
            )
        except UnknownAccount as exc:
            raise AwsError("UnknownAccount", f"No role for account `{ref.account}`.") from exc

    def _scaling(self, operation: str, table: str, **kwargs: Any) -> dict[str, Any]:
        client = self._at(table, "application-autoscaling") or self.autoscaling
        method = getattr(client, _snake(operation))
        try:
            return method(**kwargs)
        except ClientError as exc:
            raise self._explain(f"application-autoscaling:{operation}", table, exc) from exc
        except NoCredentialsError as exc:
            raise AwsError("NoCredentials", "The bot has no AWS credentials.") from exc
        except BotoCoreError as exc:
            raise AwsError(type(exc).__name__, f"AWS call failed: {exc}", retryable=True) from exc
