"""Restore events for other tools: Slack message metadata and EventBridge entries (pure).

Every card and notice the bot posts about a restore carries Slack message metadata
(`event_type`, `event_payload`), so incident tools reading the channel can follow it; with
PITR_BOT_EVENT_BUS set, each transition also becomes one EventBridge event of the same type
and payload (sent from the outbox: once, in order, after a restart too).
"""

from __future__ import annotations

import json
from typing import Any

from bot.restores import RestoreRequest, State
from bot.tableref import RefError, parse_ref

SOURCE = "pitr-bot"
# The state a restore enters -> the event it is.
STATE_EVENTS: dict[State, str] = {
    State.REQUESTED: "pitr_restore_requested",
    State.APPROVED: "pitr_restore_approved",
    State.RESTORING: "pitr_restore_started",
    State.ACTIVE: "pitr_restore_active",
    State.DENIED: "pitr_restore_denied",
    State.EXPIRED: "pitr_restore_expired",
    State.CANCELLED: "pitr_restore_cancelled",
    State.FAILED: "pitr_restore_failed",
}
PERIOD_EVENTS: dict[State, str] = {
    State.REQUESTED: "pitr_period_change_requested",
    State.APPROVED: "pitr_period_change_approved",
    State.RESTORING: "pitr_period_change_approved",
    State.ACTIVE: "pitr_period_changed",
    State.DENIED: "pitr_period_change_denied",
    State.EXPIRED: "pitr_period_change_expired",
    State.CANCELLED: "pitr_period_change_cancelled",
    State.FAILED: "pitr_period_change_failed",
}
COPY_BACK_DONE = "pitr_copy_back_done"
# Outbox kinds of EventBridge events: "bus:<STATE>" (the state the transition entered).
BUS_PREFIX = "bus:"
BUS_KINDS = tuple(BUS_PREFIX + state.value for state in State)


def event_type(req: RestoreRequest, state: State | None = None) -> str:
    """The event of `req` entering `state` (default: the state it is in)."""
    events = PERIOD_EVENTS if req.kind == "pitr_period" else STATE_EVENTS
    return events[state or req.state]


def _place(table: str) -> tuple[str, str]:
    try:
        ref = parse_ref(table)
    except RefError:
        return "", ""
    return ref.account or "", ref.region or ""


def payload(req: RestoreRequest) -> dict[str, Any]:
    """What a tool needs to act on a restore; only ids and names, never item data.

    Slack metadata values must be strings, numbers, booleans or lists/objects of them: no
    nulls, so an unknown value is "" (the instant is "latest" when none was given).
    """
    account, region = _place(req.source)
    return {
        "restore_id": req.id,
        "kind": req.kind,
        "state": req.state.value,
        "source_table": req.source,
        "target_table": req.target if req.kind == "restore" else "",
        "account": account,
        "region": region,
        "instant": req.restore_at.isoformat() if req.restore_at else "latest",
        "requester": req.requester,
        "approvers": list(req.approvals),
        "channel": req.channel,
        "table_arn": req.table_arn or "",
        "error": req.error or "",
    }


def slack_metadata(req: RestoreRequest, event: str | None = None) -> dict[str, Any]:
    """`metadata=` of chat.postMessage / chat.update for a message about `req`."""
    return {"event_type": event or event_type(req), "event_payload": payload(req)}


def bus_kind(state: State) -> str:
    return BUS_PREFIX + state.value


def bus_entry(req: RestoreRequest, kind: str, bus: str) -> dict[str, str]:
    """One PutEvents entry for the outbox item `kind` ("bus:APPROVED"...) of `req`."""
    state = State(kind.removeprefix(BUS_PREFIX))
    detail = {"event_type": event_type(req, state), **payload(req), "state": state.value}
    return {
        "Source": SOURCE,
        "DetailType": detail["event_type"],
        "Detail": json.dumps(detail, sort_keys=True),
        "EventBusName": bus,
    }


def job_metadata(job: Any, undone: bool = False) -> dict[str, Any]:
    """Metadata of a copy back's (or its undo's) result message (bot.items.jobs.ItemJob)."""
    account, region = _place(job.live_table)
    counts = job.undo_counts if undone else job.copy_counts
    return {
        "event_type": "pitr_copy_back_undone" if undone else COPY_BACK_DONE,
        "event_payload": {
            "restore_id": job.restore_id,
            "job_id": job.id,
            "source_table": job.restored_table,
            "target_table": job.live_table,
            "account": account,
            "region": region,
            "requester": (job.undo_requested_by if undone else job.copy_requested_by) or "",
            "approvers": list(job.approvals),
            "counts": {str(k): int(v) for k, v in (counts or {}).items()},
        },
    }
