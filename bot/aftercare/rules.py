"""What a restore leaves out, and what each fix copies: the aftercare rules (pure).

No Slack, no boto3: `bot.aftercare.aws.AftercareService` reads each aspect of both tables
from AWS and applies fixes; this module says how the readings compare, how they are shown,
which fix buttons are still offered. `bot.aftercare.Aftercare` records it all on the request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.restores import RestoreRequest

MARKER_TAG = "pitr-bot:restore-id"
NAMESPACE = "dynamodb"

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


def compare(theirs: dict[str, Any], ours: dict[str, Any]) -> list[Aspect]:
    """Each aspect of the source (`theirs`) beside the restored table's (`ours`), as read."""
    aspects = []
    for name in LABELS:
        src, tgt = theirs[name], ours[name]
        if isinstance(src, CouldNotCheck) or isinstance(tgt, CouldNotCheck):
            reason = src if isinstance(src, CouldNotCheck) else tgt
            aspects.append(Aspect(name, "?", "?", None, note=str(reason)))
            continue
        aspects.append(
            Aspect(name, summary(name, src), summary(name, tgt), differs(name, src, tgt))
        )
    return aspects


def dimension(full: str) -> str:
    """ "dynamodb:table:ReadCapacityUnits" -> "ReadCapacityUnits"."""
    return full.rsplit(":", 1)[-1]


def streams(desc: dict[str, Any]) -> dict[str, Any]:
    spec = desc.get("StreamSpecification") or {}
    enabled = bool(spec.get("StreamEnabled"))
    return {"enabled": enabled, "view": spec.get("StreamViewType") if enabled else None}


# AWS refuses a whole TagResource call naming a key with this prefix (CloudFormation's and
# CDK's own tags carry it; moto accepts it): such tags are never copied, nor count as missing.
RESERVED_TAG_PREFIX = "aws:"


def split_reserved(tags: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The tags a TagResource call may carry, and the sorted `aws:` keys left out."""
    reserved = sorted(k for k in tags if k.lower().startswith(RESERVED_TAG_PREFIX))
    return {k: v for k, v in tags.items() if k not in reserved}, reserved


def differs(name: str, source: Any, target: Any) -> bool:
    if name == "tags":
        copyable, _ = split_reserved(source)
        return any(target.get(k) != v for k, v in copyable.items())
    if name == "pitr":
        # Only "the source is protected and the copy is not" matters; days follow the source.
        return bool(source["enabled"]) and not target["enabled"]
    if name == "autoscaling":
        return _canon(source) != _canon(target)
    return source != target


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def summary(name: str, value: Any) -> str:
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


def already_fixed(req: RestoreRequest, group: str) -> str:
    fixed = (req.aftercare or {}).get("fixed", {})
    if any(a in fixed for a in FIXES[group]):
        return f"{BUTTONS[group]} was already done; see the thread."
    return f"Nothing to do for {BUTTONS[group]}: the new table already matches the source."


def protected(target: str) -> str:
    return (
        f"Deletion protection is on for `{target}`, so I did not delete it. If it really "
        "should go, turn deletion protection off first (console: the table → *Additional "
        "settings* → *Deletion protection*, or `aws dynamodb update-table --table-name "
        f"{target} --no-deletion-protection-enabled`), then ask again with *Delete table*."
    )
