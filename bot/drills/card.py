"""The approval card of a drill that waits for one (bot/drills/approval.py): Block Kit."""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ContextBlock, SectionBlock

from bot.blocks import code, md, slack_date, user
from bot.drills.model import Drill, DrillState
from bot.when import format_instant

APPROVE_DRILL_ACTION = "pitr_drill_approve"
DENY_DRILL_ACTION = "pitr_drill_deny"

STATUS = {
    DrillState.AWAITING_APPROVAL: ":raised_hand: Waiting for approval",
    DrillState.CANCELLED: ":no_entry_sign: Not run",
}


def drill_card(drill: Drill) -> tuple[str, list[Block]]:
    """Fallback text and blocks: what the drill does, who asked, and Approve / Deny while
    it waits; afterwards the decision, without buttons."""
    who = user(drill.requested_by) if drill.requested_by else "the drill schedule"
    text = (
        f"*Restore drill of {code(drill.source)}* asked by {who}: restore its latest "
        f"restorable time into {code(drill.target)}, verify it, then delete that table."
    )
    status = STATUS.get(drill.state, ":white_check_mark: Approved — the drill is running")
    if drill.state == DrillState.AWAITING_APPROVAL and drill.expires_at is not None:
        when = format_instant(drill.expires_at, "UTC")
        status += f" · expires {slack_date(drill.expires_at, when)}"
    elif drill.state == DrillState.CANCELLED:
        status += f": {drill.problem or 'cancelled'}"
    if drill.decided_by:
        status += f" (by {user(drill.decided_by)})"
    blocks: list[Block] = [SectionBlock(text=md(text)), ContextBlock(elements=[md(status)])]
    if drill.state == DrillState.AWAITING_APPROVAL:
        blocks.append(
            ActionsBlock(
                elements=[
                    ButtonElement(
                        text="Approve",
                        action_id=APPROVE_DRILL_ACTION,
                        value=drill.id,
                        style="primary",
                    ),
                    ButtonElement(
                        text="Deny", action_id=DENY_DRILL_ACTION, value=drill.id, style="danger"
                    ),
                ]
            )
        )
    return f"Restore drill of {drill.source}: {status}", blocks
