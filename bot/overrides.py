"""Restore overrides: the options a person chose -> parameters AWS accepts (pure).

RestoreTableToPointInTime rejects some combinations, so they are built here from the source's
description and refused with a clear reason before a card is posted:
- on-demand (PAY_PER_REQUEST) result: no ProvisionedThroughput anywhere, not even per index;
- provisioned result: every kept global index carries its own ProvisionedThroughput;
- only global secondary indexes can be left out by name; local ones always come along here.
"""

from __future__ import annotations

from typing import Any

ON_DEMAND = "PAY_PER_REQUEST"
PROVISIONED = "PROVISIONED"


class OverrideError(ValueError):
    """A chosen combination AWS would reject; the message says why, for a person."""


def key_region_problem(key: str, region: str) -> str | None:
    """Why a chosen KMS key can't encrypt a table created in `region`, or None.

    A KMS key lives in one region, and the restored table is created (and encrypted) in the
    target's region, also for a cross-region restore: a key ARN naming another region is
    refused before the card (a key ID or alias is looked up in the target's region by AWS).
    """
    parts = key.split(":")
    if key.startswith("arn:") and len(parts) > 3 and parts[3] and parts[3] != region:
        return (
            f"The KMS key is in {parts[3]}, but the new table is created in {region}: "
            f"a KMS key only works in its own region. Choose a key in {region}."
        )
    return None


def needs_description(chosen: dict) -> bool:
    """Do these options need the source's DescribeTable to be built?"""
    return bool(chosen.get("exclude_indexes"))


def source_billing(table: dict[str, Any]) -> str:
    """The source's billing mode from its DescribeTable `Table` (old tables lack the summary)."""
    mode = table.get("BillingModeSummary", {}).get("BillingMode")
    if mode:
        return str(mode)
    if table.get("ProvisionedThroughput", {}).get("ReadCapacityUnits"):
        return PROVISIONED
    return ON_DEMAND


def api_overrides(source: str, chosen: dict, table: dict[str, Any] | None) -> dict[str, Any]:
    """The override parameters for `chosen`; `table` is the source's description when
    `needs_description(chosen)`. Raises OverrideError for a combination AWS would reject."""
    out: dict[str, Any] = {}
    billing = chosen.get("billing_mode")
    if billing not in (None, ON_DEMAND):
        # Provisioned would need capacities nobody chose; the form only offers on-demand.
        raise OverrideError(
            f"Billing mode {billing!s} can't be chosen here: keep the source's or pick "
            "on-demand (PAY_PER_REQUEST)."
        )
    if billing == ON_DEMAND:
        out["BillingModeOverride"] = ON_DEMAND
    if chosen.get("sse_key"):
        out["SSESpecificationOverride"] = {
            "Enabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": chosen["sse_key"],
        }
    excluded = list(chosen.get("exclude_indexes") or [])
    if not excluded:
        return out
    if table is None:
        raise OverrideError(f"The indexes of `{source}` could not be read; try again.")
    gsis = table.get("GlobalSecondaryIndexes", [])
    lsis = {i["IndexName"] for i in table.get("LocalSecondaryIndexes", [])}
    names = {i["IndexName"] for i in gsis}
    for name in excluded:
        if name in lsis:
            raise OverrideError(
                f"`{name}` is a local secondary index of `{source}`; only global secondary "
                "indexes can be left out of a restore."
            )
        if name not in names:
            have = ", ".join(f"`{n}`" for n in sorted(names)) or "none"
            raise OverrideError(
                f"`{source}` has no global secondary index `{name}`. Its global indexes: {have}."
            )
    provisioned = billing is None and source_billing(table) == PROVISIONED
    keep = []
    # To leave indexes out, the API wants the full definitions of those to keep.
    for index in gsis:
        if index["IndexName"] in excluded:
            continue
        spec = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
        if provisioned:
            throughput = index.get("ProvisionedThroughput", {})
            if not throughput.get("ReadCapacityUnits") or not throughput.get("WriteCapacityUnits"):
                raise OverrideError(
                    f"Index `{index['IndexName']}` of provisioned table `{source}` has no "
                    "capacity to copy; choose on-demand billing to leave indexes out."
                )
            spec["ProvisionedThroughput"] = {
                "ReadCapacityUnits": throughput["ReadCapacityUnits"],
                "WriteCapacityUnits": throughput["WriteCapacityUnits"],
            }
        keep.append(spec)
    out["GlobalSecondaryIndexOverride"] = keep
    return out
