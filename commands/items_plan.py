"""The copy-back card's account of what will be written, and its two adjustments before
approval: **Include N expired items** (items whose TTL passed are left out unless asked) and
**Leave out keys…** (a modal: one key a line). The engine side is bot/items/copyplan.py.

Counts only: the list of keys and values goes privately to allowed readers (another flow).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    InputBlock,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.blocks import code, md
from bot.items.copyplan import BadKey, parse_keys
from bot.items.jobs import ItemJob, JobState
from bot.items.recovery import ItemRecovery
from commands.common import after_ack, reports_errors, warn

log = logging.getLogger(__name__)

EXPIRED_ACTION = "pitr_items_include_expired"
LEAVE_OUT_ACTION = "pitr_items_leave_out"
LEAVE_OUT_VIEW = "pitr_items_leave_out_view"
KEYS_BLOCK, KEYS_INPUT = "leave_out_keys", "keys"


def plan_lines(job: ItemJob) -> list[str]:
    """What the copy back will write and what it leaves out, in counts (the card)."""
    plan = job.plan
    if not plan:
        return []
    lines = [
        f"Will write *{plan.get('missing', 0)}* missing items (inserted) and "
        f"*{plan.get('changed', 0)}* changed items (overwritten)."
    ]
    expired = plan.get("expired", 0)
    if expired:
        lines.append(
            f"Left out: *{expired}* items whose TTL (`{job.ttl_attribute}`) has passed: "
            "DynamoDB deleted them on purpose. *Include expired items* puts them back too."
        )
    elif job.include_expired:
        lines.append("Items whose TTL has passed are included, as asked.")
    if plan.get("left_out"):
        lines.append(f"Left out: *{plan['left_out']}* keys, as asked.")
    if plan.get("too_wide"):
        lines.append(
            f"Left out: *{plan['too_wide']}* items whose change writes too many attributes for "
            "one safe conditional write (DynamoDB allows 300 operators in a condition)."
        )
    if plan.get("not_undoable"):
        lines.append(
            f":warning: *{plan['not_undoable']}* of them cannot be undone (their undo needs "
            "more than DynamoDB's 300 operators in one condition)."
        )
    return lines


def plan_buttons(job: ItemJob) -> list[ButtonElement]:
    """Include the expired items / leave them out again, and leave keys out."""
    if job.state != JobState.COPY_REQUESTED or not job.plan:
        return []
    buttons = []
    if job.plan.get("expired"):
        label = f"Include {job.plan['expired']} expired items"
        buttons.append(ButtonElement(text=label, action_id=EXPIRED_ACTION, value=f"{job.id}:1"))
    elif job.include_expired:
        label = "Leave expired items out"
        buttons.append(ButtonElement(text=label, action_id=EXPIRED_ACTION, value=f"{job.id}:0"))
    buttons.append(ButtonElement(text="Leave out keys…", action_id=LEAVE_OUT_ACTION, value=job.id))
    return buttons


def plan_actions(job: ItemJob) -> list[ActionsBlock]:
    """The adjustments, in a block of their own under Approve / Deny."""
    buttons = plan_buttons(job)
    return [ActionsBlock(block_id="items_plan", elements=buttons)] if buttons else []


def leave_out_view(job: ItemJob, key_names: tuple[str, ...]) -> View:
    shape = " | ".join(key_names)
    return View(
        type="modal",
        callback_id=LEAVE_OUT_VIEW,
        private_metadata=job.id,
        title="Leave out keys",
        submit="Leave out",
        close="Cancel",
        blocks=[
            SectionBlock(
                text=md(
                    f"Keys the copy back into {code(job.live_table)} must not write, one a "
                    f"line: `{shape}`. The approvals so far start again."
                )
            ),
            InputBlock(
                block_id=KEYS_BLOCK,
                label="Keys",
                element=PlainTextInputElement(
                    action_id=KEYS_INPUT,
                    multiline=True,
                    initial_value="",
                    max_length=3000,
                ),
            ),
        ],
    )


def register(app: App, services: Any, engine: ItemRecovery) -> None:
    @app.action(EXPIRED_ACTION)
    @reports_errors
    def on_expired(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        job_id, _, flag = str(action.get("value", ""))[:70].partition(":")
        user_id = body["user"]["id"]

        def adjust() -> None:
            outcome = engine.adjust_copy(job_id[:64], user_id, include_expired=flag == "1")
            if not outcome.ok:
                warn(respond, outcome.message)

        after_ack(services, respond, adjust)

    @app.action(LEAVE_OUT_ACTION)
    @reports_errors
    def on_leave_out(ack: Ack, body: dict, action: dict, respond: Respond, client: Any) -> None:
        ack()
        job = services.store.job_get(str(action.get("value", ""))[:64])
        if job is None or job.state != JobState.COPY_REQUESTED:
            warn(respond, "No copy back is waiting for approval here.")
            return
        refusal = engine._may_write(job, body["user"]["id"])
        if refusal:
            warn(respond, refusal)
            return
        key_names, _ = engine.key_types(job)
        try:  # trigger_id is valid for 3 s: open at once, on the listener's thread
            client.views_open(trigger_id=body["trigger_id"], view=leave_out_view(job, key_names))
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("views.open failed: %s", exc)
            warn(respond, "Slack did not open the form; please click again.")

    @app.view(LEAVE_OUT_VIEW)
    def on_submit(ack: Ack, body: dict, view: dict, client: Any) -> None:
        job = services.store.job_get(str(view.get("private_metadata", ""))[:64])
        user_id = body["user"]["id"]
        if job is None or job.state != JobState.COPY_REQUESTED:
            ack(response_action="errors", errors={KEYS_BLOCK: "Nothing waits for approval."})
            return
        values = view.get("state", {}).get("values", {})
        text = str((values.get(KEYS_BLOCK, {}).get(KEYS_INPUT) or {}).get("value") or "")
        try:
            keys = parse_keys(text, *engine.key_types(job))
        except BadKey as exc:
            ack(response_action="errors", errors={KEYS_BLOCK: str(exc)[:150]})
            return
        if not keys:
            ack(response_action="errors", errors={KEYS_BLOCK: "Give at least one key."})
            return
        ack()

        def adjust() -> None:
            outcome = engine.adjust_copy(job.id, user_id, leave_out=keys)
            if not outcome.ok:
                client.chat_postEphemeral(
                    channel=job.channel, user=user_id, text=f":warning: {outcome.message}"
                )

        services.work.submit(adjust)
