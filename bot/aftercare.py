"""After ACTIVE: compare a restored table with its source, and copy what a restore leaves out.

A point-in-time restore does not carry over PITR, TTL, tags, stream settings, deletion
protection, auto scaling or contributor insights. `AftercareService` reads each of them on both
tables (with the same boto3 DynamoDB client as `PitrService`, plus an Application Auto Scaling
client from the same credentials and region) and copies them on request. `Aftercare` records
the comparison and every fix on the request with compare-and-set, so a double click or a second
replica never copies twice.

The restored table is tagged `pitr-bot:restore-id = <request id>` as soon as it is ACTIVE. The
IAM policy (docs/iam-policy.json) only lets the bot change or delete tables carrying that tag,
so it can never alter or drop an ordinary business table. The tag is ignored when comparing.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from bot.pitr import BOTO_CONFIG, NOT_FOUND, AwsError, PitrService, _snake
from bot.policy import Decision
from bot.restores import RestoreRequest, State

ONE_TRY = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10)

log = logging.getLogger(__name__)

MARKER_TAG = "pitr-bot:restore-id"
NAMESPACE = "dynamodb"
CAS_ATTEMPTS = 20
SOURCE_FRESH = 30.0  # seconds a source's settings are reused across comparisons
CLAIM_STALE = timedelta(minutes=5)  # a claim older than this (a crash mid-fix) may be retaken

# Compared aspects, in the order they are listed. Those without a fix are only reported.
LABELS: dict[str, str] = {
    "pitr": "Point-in-time recovery",
    "ttl": "Time to live",
    "tags": "Tags",
    "streams": "DynamoDB Streams",
    "deletion_protection": "Deletion protection",
    "autoscaling": "Auto scaling",
    "contributor_insights": "Contributor insights",
}
# Buttons (fix groups) -> the aspects each one copies.
FIXES: dict[str, tuple[str, ...]] = {
    "pitr": ("pitr",),
    "ttl_tags": ("ttl", "tags"),
    "streams": ("streams",),
    "autoscaling": ("autoscaling",),
}
BUTTONS: dict[str, str] = {
    "pitr": "Enable PITR",
    "ttl_tags": "Copy TTL and tags",
    "streams": "Copy stream settings",
    "autoscaling": "Copy auto scaling",
}
FIXABLE = frozenset(a for aspects in FIXES.values() for a in aspects)


class CouldNotCheck(Exception):
    """An aspect that could not be read (an API the endpoint lacks, access denied, ...)."""


@dataclass(frozen=True)
class Aspect:
    name: str
    source: str  # human summary of the source's setting
    target: str
    differs: bool | None  # None: could not check
    note: str = ""

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)


class DeletionRefused(Exception):
    """The bot will not delete this table; the message says why and what to do."""


class AftercareService(PitrService):
    """DynamoDB + Application Auto Scaling calls for the after-restore checks and fixes."""

    def __init__(self, client: Any, autoscaling: Any | None = None):
        super().__init__(client)
        self.autoscaling = autoscaling or _sibling(client, "application-autoscaling")
        # Contributor insights is only reported, never fixed: one try is enough, and an
        # endpoint without the API (moto) must not cost a round of retries per comparison.
        self._insights = _sibling(client, "dynamodb", ONE_TRY)
        # Restores of one source often finish together (a batch, or fifty after an incident):
        # its settings are read once for all of them, not once per restore.
        self._sources: dict[str, tuple[float, dict[str, Any]]] = {}
        self._sources_lock = threading.Lock()

    @classmethod
    def from_pitr(cls, pitr: PitrService, autoscaling: Any | None = None) -> AftercareService:
        service = cls(pitr.client, autoscaling)
        service.on_error = pitr.on_error
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
            "streams": lambda: _streams(desc),
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
        theirs, ours = self._source_settings(source), self.read(target)
        aspects = []
        for name in LABELS:
            src, tgt = theirs[name], ours[name]
            if isinstance(src, CouldNotCheck) or isinstance(tgt, CouldNotCheck):
                reason = src if isinstance(src, CouldNotCheck) else tgt
                aspects.append(Aspect(name, "?", "?", None, note=str(reason)))
                continue
            aspects.append(
                Aspect(name, _summary(name, src), _summary(name, tgt), _differs(name, src, tgt))
            )
        return aspects

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

    def _read_tags(self, table: str, desc: dict[str, Any]) -> dict[str, str]:
        arn = desc["TableArn"]
        tags: dict[str, str] = {}
        kwargs: dict[str, Any] = {"ResourceArn": arn}
        while True:
            resp = self._call("ListTagsOfResource", table, **kwargs)
            tags.update({t["Key"]: t["Value"] for t in resp.get("Tags", [])})
            if not resp.get("NextToken"):
                break
            kwargs["NextToken"] = resp["NextToken"]
        tags.pop(MARKER_TAG, None)
        return tags

    def _read_insights(self, table: str) -> str:
        try:
            resp = self._insights.describe_contributor_insights(TableName=table)
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
        resources = {f"table/{table}": ""}
        for index in desc.get("GlobalSecondaryIndexes", []):
            resources[f"table/{table}/index/{index['IndexName']}"] = f"index/{index['IndexName']}"
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
            found.setdefault(part, {})[_dimension(target["ScalableDimension"])] = {
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
                dim = found[part].get(_dimension(policy["ScalableDimension"]))
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
            tags = self._read_tags(source, self.describe(source))
            if not tags:
                return "no tags to copy"
            arn = self.describe(target)["TableArn"]
            items = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
            for start in range(0, len(items), 50):  # TagResource takes at most 50 at once
                self._call("TagResource", target, ResourceArn=arn, Tags=items[start : start + 50])
            return f"{len(tags)} tag(s) copied"
        if aspect == "streams":
            want = _streams(self.describe(source))
            have = _streams(self.describe(target))
            if want == have:
                return "stream settings already matched"
            if have["enabled"] and want["enabled"]:
                # The view type can't be changed in place: turn the stream off, then on.
                self._update_stream(target, {"StreamEnabled": False})
            spec: dict[str, Any] = {"StreamEnabled": want["enabled"]}
            if want["enabled"]:
                spec["StreamViewType"] = want["view"]
            self._update_stream(target, spec)
            return f"stream {_summary('streams', want)}"
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
            resource_id = f"table/{target}" + (f"/{part}" if part else "")
            kind = "index" if part else "table"
            for unit, setting in sorted(dims.items()):
                dimension = f"dynamodb:{kind}:{unit}"
                self._scaling(
                    "RegisterScalableTarget",
                    target,
                    ServiceNamespace=NAMESPACE,
                    ResourceId=resource_id,
                    ScalableDimension=dimension,
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
                        ScalableDimension=dimension,
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
        if restored_from and not restored_from.endswith(f":table/{source}"):
            raise DeletionRefused(
                f"`{target}` is not a restore of `{source}` any more (someone replaced it), "
                "so I did not touch it."
            )
        if desc.get("DeletionProtectionEnabled"):
            raise DeletionRefused(_protected(target))
        try:
            self._call("DeleteTable", target, TableName=target)
        except AwsError as exc:
            if exc.code in NOT_FOUND:
                return f"`{target}` was already gone"
            if "deletionprotection" in exc.message.lower().replace(" ", ""):
                raise DeletionRefused(_protected(target)) from exc
            raise
        return f"`{target}` deleted"

    # -- Application Auto Scaling calls, with the same error wording as DynamoDB's ----------
    def _scaling(self, operation: str, table: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self.autoscaling, _snake(operation))
        try:
            return method(**kwargs)
        except ClientError as exc:
            raise self._explain(f"application-autoscaling:{operation}", table, exc) from exc
        except NoCredentialsError as exc:
            raise AwsError("NoCredentials", "The bot has no AWS credentials.") from exc
        except BotoCoreError as exc:
            raise AwsError(type(exc).__name__, f"AWS call failed: {exc}", retryable=True) from exc


def _sibling(client: Any, service: str, config: Config = BOTO_CONFIG) -> Any:
    """A client for `service` with the DynamoDB client's region and credentials.

    A custom endpoint (AWS_ENDPOINT_URL, a simulator) is reused; AWS's own is not, since each
    service has its own host.
    """
    kwargs: dict[str, Any] = {"region_name": client.meta.region_name, "config": config}
    endpoint = str(client.meta.endpoint_url or "")
    if endpoint and ".amazonaws.com" not in endpoint and ".amazonaws.com.cn" not in endpoint:
        kwargs["endpoint_url"] = endpoint
    get_credentials = getattr(client, "_get_credentials", None)
    creds = get_credentials() if callable(get_credentials) else None
    # Keys handed to the DynamoDB client directly are copied. Anything from the credential
    # chain (environment, profile, instance or task role) is left to the chain, which refreshes
    # temporary credentials; a frozen copy would stop working when they rotate.
    if creds is not None and getattr(creds, "method", "") == "explicit":
        frozen = creds.get_frozen_credentials()
        kwargs.update(
            aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token,
        )
    return boto3.client(service, **kwargs)


def _protected(target: str) -> str:
    return (
        f"Deletion protection is on for `{target}`, so I did not delete it. If it really "
        "should go, turn deletion protection off first (console: the table → *Additional "
        "settings* → *Deletion protection*, or `aws dynamodb update-table --table-name "
        f"{target} --no-deletion-protection-enabled`), then ask again with *Delete table*."
    )


def _dimension(full: str) -> str:
    """ "dynamodb:table:ReadCapacityUnits" -> "ReadCapacityUnits"."""
    return full.rsplit(":", 1)[-1]


def _streams(desc: dict[str, Any]) -> dict[str, Any]:
    spec = desc.get("StreamSpecification") or {}
    enabled = bool(spec.get("StreamEnabled"))
    return {"enabled": enabled, "view": spec.get("StreamViewType") if enabled else None}


def _differs(name: str, source: Any, target: Any) -> bool:
    if name == "tags":
        return any(target.get(k) != v for k, v in source.items())
    if name == "pitr":
        # Only "the source is protected and the copy is not" matters; days follow the source.
        return bool(source["enabled"]) and not target["enabled"]
    if name == "autoscaling":
        return _canon(source) != _canon(target)
    return source != target


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _summary(name: str, value: Any) -> str:
    if name == "pitr":
        if not value["enabled"]:
            return "off"
        return f"on ({value['days']} days)" if value["days"] else "on"
    if name == "ttl":
        return f"on (attribute `{value['attribute']}`)" if value["enabled"] else "off"
    if name == "tags":
        if not value:
            return "none"
        shown = ", ".join(f"{k}={v}" for k, v in sorted(value.items())[:5])
        return shown + (f" (+{len(value) - 5} more)" if len(value) > 5 else "")
    if name == "streams":
        return f"on ({value['view']})" if value["enabled"] else "off"
    if name == "deletion_protection":
        return "on" if value else "off"
    if name == "autoscaling":
        if not value:
            return "none"
        targets = sum(len(d) for d in value.values())
        policies = sum(len(s["policies"]) for d in value.values() for s in d.values())
        return f"{targets} scalable target(s), {policies} polic(ies)"
    return str(value)


# -- the engine: what is recorded on the request ------------------------------------------
@dataclass(frozen=True)
class FixOutcome:
    ok: bool
    message: str = ""
    request: RestoreRequest | None = None


def offered(req: RestoreRequest) -> list[str]:
    """The fix buttons still to show: a real difference, not fixed, not being fixed."""
    care = req.aftercare or {}
    fixed, claims = care.get("fixed", {}), care.get("claims", {})
    differing = {a["name"] for a in care.get("aspects", []) if a.get("differs")}
    return [
        group
        for group, aspects in FIXES.items()
        if any(a in differing and a not in fixed for a in aspects) and group not in claims
    ]


class Aftercare:
    """Compare and fix; every record a compare-and-set on the request."""

    def __init__(self, workflow: Any, aws: AftercareService):
        self.workflow = workflow  # store, policy, members, clock, audit, on_change
        self.aws = aws

    @property
    def store(self) -> Any:
        return self.workflow.store

    def prepare(self, req: RestoreRequest) -> RestoreRequest:
        """Once per restore: mark the table, compare it, apply `after_restore`. Idempotent."""
        if req.aftercare is not None:
            return req
        notes: list[str] = []
        try:
            self.aws.mark(req.target, req.id)
        except AwsError as exc:
            notes.append(f"Could not tag the new table as the bot's: {exc.message}")
        try:
            aspects = self.aws.compare(req.source, req.target)
        except AwsError as exc:
            aspects = [Aspect(n, "?", "?", None, note=exc.message) for n in LABELS]
        care: dict[str, Any] = {
            "aspects": [asdict(a) for a in aspects],
            "fixed": {},
            "claims": {},
            "errors": {},
            "notes": notes,
            "auto": [],
        }
        auto = self.workflow.policy.after_restore_for(req.source)
        differing = {a.name for a in aspects if a.differs}
        for aspect in auto:
            if aspect not in differing:
                continue
            try:
                done = self.aws.fix(aspect, req.source, req.target)
            except AwsError as exc:
                care["errors"][aspect] = exc.message
                continue
            care["fixed"][aspect] = {
                "by": None,
                "at": self.workflow.clock().isoformat(),
                "what": done,
            }
            care["auto"].append(aspect)
        for _ in range(CAS_ATTEMPTS):
            fresh = self.store.get(req.id)
            if fresh is None:
                return req
            if fresh.aftercare is not None:
                return fresh  # another replica got there first
            saved = self.store.save(fresh, replace(fresh, aftercare=care))
            if saved is not None:
                differences = ", ".join(sorted(differing)) or "none"
                self._audit("aftercare_compared", saved, None, f"differences: {differences}")
                for aspect in care["auto"]:
                    what = care["fixed"][aspect]["what"]
                    self._audit("aftercare_fixed", saved, None, f"{aspect} (policy): {what}")
                return saved
        return req

    def may_fix(self, req: RestoreRequest, user: str) -> Decision:
        if user == req.requester:
            return Decision.yes()
        policy = self.workflow.policy
        return policy.may_approve(user, req.requester, req.source, self.workflow.members)

    def fix(self, restore_id: str, group: str, user: str) -> FixOutcome:
        if group not in FIXES:
            return FixOutcome(False, "Unknown fix.")
        claimed = self._claim(restore_id, group, user)
        if isinstance(claimed, FixOutcome):
            return claimed
        req = claimed
        done: dict[str, str] = {}
        error = ""
        differing = {a["name"] for a in (req.aftercare or {}).get("aspects", []) if a["differs"]}
        for aspect in FIXES[group]:
            if aspect not in differing or aspect in (req.aftercare or {}).get("fixed", {}):
                continue
            try:
                done[aspect] = self.aws.fix(aspect, req.source, req.target)
            except AwsError as exc:
                error = exc.message
                break
        return self._record(restore_id, group, user, done, error)

    def _claim(self, restore_id: str, group: str, user: str) -> RestoreRequest | FixOutcome:
        for _ in range(CAS_ATTEMPTS):
            req = self.store.get(restore_id)
            if req is None or req.aftercare is None or req.state != State.ACTIVE:
                return FixOutcome(False, "There is nothing to fix for this restore.")
            if req.delete_state in {"APPROVED", "DELETED"}:
                return FixOutcome(False, f"`{req.target}` has been deleted.")
            now = self.workflow.clock()
            care = copy.deepcopy(req.aftercare)
            claim = care.get("claims", {}).get(group)
            if claim and now - datetime.fromisoformat(claim["at"]) < CLAIM_STALE:
                return FixOutcome(False, "Someone clicked this a moment ago; it is being done.")
            if claim is None and group not in offered(req):
                return FixOutcome(False, _already_fixed(req, group))
            decision = self.may_fix(req, user)
            if not decision.allowed:
                self._audit("aftercare_fix_refused", req, user, f"{group}: {decision.reason}")
                return FixOutcome(False, decision.reason)
            care.setdefault("claims", {})[group] = {"by": user, "at": now.isoformat()}
            saved = self.store.save(req, replace(req, aftercare=care, updated_at=now))
            if saved is not None:
                return saved
        return FixOutcome(False, "Too many people clicked at once; please try again.")

    def _record(
        self, restore_id: str, group: str, user: str, done: dict[str, str], error: str
    ) -> FixOutcome:
        for _ in range(CAS_ATTEMPTS):
            req = self.store.get(restore_id)
            if req is None or req.aftercare is None:
                return FixOutcome(False, "This restore no longer exists.")
            now = self.workflow.clock()
            care = copy.deepcopy(req.aftercare)
            care.setdefault("claims", {}).pop(group, None)
            for aspect, what in done.items():
                care.setdefault("fixed", {})[aspect] = {
                    "by": user,
                    "at": now.isoformat(),
                    "what": what,
                }
            errors = care.setdefault("errors", {})
            if error:
                errors[group] = error
            else:
                errors.pop(group, None)
            announce = ["aftercare_update"]
            if done or error:
                announce.append(f"aftercare_fixed:{group}")
            saved = self.store.save(req, replace(req, aftercare=care, updated_at=now), announce)
            if saved is None:
                continue
            if error:
                self._audit("aftercare_fix_failed", saved, user, f"{group}: {error}")
            else:
                detail = "; ".join(f"{a}: {w}" for a, w in done.items()) or "nothing to do"
                self._audit("aftercare_fixed", saved, user, f"{group}: {detail}")
            self.workflow.on_change()
            return FixOutcome(not error, error, saved)
        return FixOutcome(False, "Too many people clicked at once; please try again.")

    def _audit(self, event: str, req: RestoreRequest, actor: str | None, detail: str) -> None:
        self.workflow.audit(event, req, actor, detail=f"{req.target}: {detail}")


def _already_fixed(req: RestoreRequest, group: str) -> str:
    fixed = (req.aftercare or {}).get("fixed", {})
    if any(a in fixed for a in FIXES[group]):
        return f"{BUTTONS[group]} was already done; see the thread."
    return f"Nothing to do for {BUTTONS[group]}: the new table already matches the source."
