"""Is the table called `target` still the one this restore created?

Pure: no Slack, no boto3. A name can be reused: drop the restored table, create another with
the same name, and an old card's **Delete table** or fix button would act on the newcomer. So
the restored table's identity is recorded when it becomes ACTIVE, and every destructive
follow-up first compares it with what AWS says now. The ARN alone is no proof (it is built
from the name); `TableId` is (moto gives none), and so are the marker tag the bot puts on its
tables and the `RestoreSummary` (source ARN and restore time) that only a restore has.

The live table a copy back writes to is named the same way: its identity (ARN, `TableId`,
creation time) is recorded when it is compared, and a copy back or undo writes only if it
still matches (`replaced_problem`): a table deleted and created again is another table, and
what was compared with the old one says nothing about it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def identity(
    arn: str | None,
    table_id: str | None,
    source_arn: str | None,
    restored_at: datetime | None,
    marker: str | None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """An identity record (JSON-friendly, stored on the request)."""
    return {
        "arn": arn,
        "table_id": table_id,
        "source_arn": source_arn,
        "restored_at": restored_at.isoformat() if restored_at else None,
        "marker": marker,
        "created_at": created_at.isoformat() if created_at else None,
    }


def identity_problem(
    target: str,
    recorded: dict[str, Any] | None,
    current: dict[str, Any] | None,
    check_marker: bool = True,
) -> str | None:
    """Why `current` is not the recorded table (so nothing may be changed), or None.

    Fails closed: no record, no table, or a missing `RestoreSummary` is a refusal.
    `check_marker` False before the bot has tagged the table (right after ACTIVE).
    """
    if not recorded:
        return (
            f"I have no record of which table this restore created, so I won't change or "
            f"delete `{target}`. Do it in the AWS console if it is really the restored one."
        )
    if current is None:
        return f"`{target}` does not exist any more, so there is nothing to change."
    changed = [
        what
        for what, key in (
            ("ARN", "arn"),
            ("table ID", "table_id"),
            ("restore source", "source_arn"),
            ("restore time", "restored_at"),
        )
        if _differs(recorded.get(key), current.get(key), optional=key == "table_id")
    ]
    if check_marker and current.get("marker") != recorded.get("marker"):
        changed.append("pitr-bot marker tag")
    if not changed:
        return None
    return (
        f"`{target}` is not the table this restore created any more (its "
        f"{', '.join(changed)} changed: the name was probably reused), so I did not touch it."
    )


def replaced_problem(
    table: str, recorded: dict[str, Any] | None, current: dict[str, Any] | None
) -> str | None:
    """Why the live table `table` is not the one that was compared (so nothing may be
    written to it), or None. Fails closed: no record or no table is a refusal."""
    if not recorded:
        return (
            f"I have no record of which `{table}` was compared, so I won't write to it. "
            "Compare again."
        )
    if current is None:
        return f"`{table}` does not exist any more, so nothing was written to it."
    changed = [
        what
        for what, key in (("ARN", "arn"), ("table ID", "table_id"), ("creation time", "created_at"))
        if _differs(recorded.get(key), current.get(key), optional=key == "table_id")
    ]
    if not changed:
        return None
    return (
        f"`{table}` is not the table that was compared any more (its {', '.join(changed)} "
        "changed: it was deleted and created again), so nothing was written to it. "
        "Compare again."
    )


def _differs(recorded: Any, current: Any, optional: bool) -> bool:
    if optional and recorded is None:
        return False  # not known at ACTIVE (moto gives no TableId): the others must hold
    return recorded is None or recorded != current
