"""A drill table left behind: the store knows its finished drill (a cleanup that did not
happen), and the table carries that drill's tag. What the start-up sweep may delete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.drills.engine import _identity
from bot.drills.model import DRILL_TAG, Drill, DrillState


def leftover_drill(store: Any, client: Any, ref: str, name: str, source: str = "orders") -> Drill:
    """Record a FAILED drill of `source` that made table `name` (stored as `ref`, e.g.
    `prod:orders-drill-…@eu-west-1`) through `client`, and tag the table as that drill's."""
    desc = client.describe_table(TableName=name)["Table"]
    now = datetime.now(UTC)
    drill = Drill(
        source=source,
        target=ref,
        channel="C9",
        slot=now,
        created_at=now,
        state=DrillState.FAILED,
        table_arn=desc["TableArn"],
        table_id=_identity(desc),
        finished_at=now,
        problem="could not delete the drill table",
    )
    assert store.drill_add(drill)
    client.tag_resource(ResourceArn=desc["TableArn"], Tags=[{"Key": DRILL_TAG, "Value": drill.id}])
    return drill
