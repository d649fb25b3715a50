"""Break-glass: the requester's Approve opens a dialog asking why; the review card's Reviewed.

Where the policy's rule sets `break_glass: true`, the requester's own click on **Approve**
opens a confirmation dialog (views.open with the click's trigger_id) instead of the four-eyes
refusal. Submitting a reason of at least 20 characters approves the restore
(bot/engine/break_glass.py); the channel is told at once with a review card, every approver
of the table gets a direct message, and the card stays open until another approver clicks
**Reviewed**.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    InputBlock,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.blocks import code, esc, to_dicts
from bot.engine.break_glass import DMS, MAX_REASON, MIN_REASON, NOTICE, REMIND, REVIEWED
from bot.restore_events import slack_metadata
from bot.restores import RestoreRequest
from bot.services import Services
from commands.common import after_ack, reports_errors, warn

log = logging.getLogger(__name__)

DIALOG = "pitr_break_glass"
REVIEW_ACTION = "pitr_break_glass_review"
REASON_BLOCK, REASON_ACTION = "reason", "reason"
EVENT = "pitr_restore_break_glass"
REMIND_CHECK_MINUTES = 10


def offers_dialog(services: Services, restore_id: str, user: str) -> bool:
    """Is this Approve click the requester's own, on a table with break-glass on?"""
    req = services.store.get(restore_id)
    return (
        req is not None
        and req.requester == user
        and services.workflow.break_glass.offer(restore_id, user).ok
    )


def open_dialog(client: WebClient, trigger_id: str, req_id: str, respond: Respond) -> None:
    """views.open now (the trigger_id is good for 3 s), on its own thread."""
    view = View(
        type="modal",
        callback_id=DIALOG,
        private_metadata=req_id,
        title="Break glass",
        submit="Approve my restore",
        close="Cancel",
        blocks=[
            SectionBlock(
                text="You asked for this restore. This table allows you to approve it "
                "yourself in an emergency: the channel is told, every approver gets a "
                "message, and another approver reviews it afterwards."
            ),
            InputBlock(
                block_id=REASON_BLOCK,
                label="Why can't this wait for a second person?",
                element=PlainTextInputElement(
                    action_id=REASON_ACTION,
                    multiline=True,
                    min_length=MIN_REASON,
                    max_length=MAX_REASON,
                ),
            ),
        ],
    )

    def run() -> None:
        try:
            client.views_open(trigger_id=trigger_id, view=view.to_dict())
        except Exception:  # noqa: BLE001 - tell the person, never a trace in Slack
            log.warning("break-glass dialog not opened", exc_info=True)
            warn(respond, "I couldn't open the break-glass dialog; please click Approve again.")

    threading.Thread(target=run, name="open-break-glass", daemon=True).start()


def review_card(req: RestoreRequest) -> tuple[str, list[Any]]:
    head = (
        f":rotating_light: *Break-glass:* <@{req.requester}> approved their own restore of "
        f"{code(req.source)} → {code(req.target)}.\n*Reason:* {esc(req.break_glass_reason)}"
    )
    if req.reviewed_by:
        text = f"{head}\n:white_check_mark: Reviewed by <@{req.reviewed_by}>."
        return text, [SectionBlock(text=text)]
    text = f"{head}\nAnother approver of this table has to review it."
    button = ButtonElement(text="Reviewed", action_id=REVIEW_ACTION, value=req.id, style="primary")
    return text, [SectionBlock(text=text), ActionsBlock(block_id="review", elements=[button])]


class Senders:
    def __init__(self, services: Services):
        self.services = services
        self.client = services.client

    def notice(self, req: RestoreRequest) -> None:
        """The channel is told at once, with the review card (posted once)."""
        if req.review_ts:
            return
        text, blocks = review_card(req)
        resp = self.client.chat_postMessage(
            channel=req.channel,
            text=text,
            blocks=to_dicts(blocks),
            metadata=slack_metadata(req, EVENT),
        )
        self._remember(req.id, review_ts=resp["ts"])

    def dms(self, req: RestoreRequest) -> None:
        """A direct message to every approver of the table, the members of an approver
        group included (a group Slack cannot list now: its members see the channel's notice)."""
        approvers: list[str] = []
        for who in self.services.policy.for_table(req.source).approvers:
            if who.startswith("S"):
                approvers += sorted(self.services.workflow.members(who) or ())
            else:
                approvers.append(who)
        text = (
            f":rotating_light: Break-glass in <#{req.channel}>: <@{req.requester}> approved "
            f"their own restore of {code(req.source)} → {code(req.target)}. Reason: "
            f"{esc(req.break_glass_reason)}. Please review it there."
        )
        for user in dict.fromkeys(approvers):
            if user.startswith(("U", "W")) and user != req.requester:
                self.client.chat_postMessage(
                    channel=user, text=text, metadata=slack_metadata(req, EVENT)
                )

    def reviewed(self, req: RestoreRequest) -> None:
        if not req.review_ts:
            return
        text, blocks = review_card(req)
        self.client.chat_update(
            channel=req.channel,
            ts=req.review_ts,
            text=text,
            blocks=to_dicts(blocks),
            metadata=slack_metadata(req, "pitr_restore_break_glass_reviewed"),
        )

    def remind(self, req: RestoreRequest) -> None:
        """In the review card's thread, naming the approvers, until someone reviews it."""
        if not req.review_ts or req.reviewed_by:
            return
        approvers = self.services.policy.for_table(req.source).approvers
        who = ", ".join(
            f"<!subteam^{a}>" if a.startswith("S") else f"<@{a}>"
            for a in approvers
            if a != req.requester
        )
        self.client.chat_postMessage(
            channel=req.channel,
            thread_ts=req.review_ts,
            text=f":alarm_clock: Reminder: this break-glass approval still needs a review "
            f"by another approver{' (' + who + ')' if who else ''}: click *Reviewed*.",
            metadata=slack_metadata(req, "pitr_restore_break_glass_review_pending"),
        )

    def _remember(self, restore_id: str, **changes: Any) -> None:
        store = self.services.store
        for _ in range(20):
            fresh = store.get(restore_id)
            if fresh is None or store.save(fresh, replace(fresh, **changes)):
                return
        log.error("restore %s: could not record the review card", restore_id)


def register(app: App, services: Services) -> None:
    senders = Senders(services)
    services.announcer.senders.update(
        {
            NOTICE: senders.notice,
            DMS: senders.dms,
            REVIEWED: senders.reviewed,
            REMIND: senders.remind,
        }
    )

    def remind_job() -> None:
        try:
            services.workflow.break_glass.remind()
        except Exception:  # noqa: BLE001 - the next run tries again
            log.warning("break-glass review reminders failed", exc_info=True)

    def schedule_reminders() -> None:
        # On the tracker's scheduler, like the cleanup reminders (bot/reminders.py); the
        # store is the truth (review_reminded_at), so every replica may run it.
        services.tracker.scheduler.add_job(
            remind_job,
            "interval",
            minutes=REMIND_CHECK_MINUTES,
            id="break-glass-reviews",
            replace_existing=True,
        )

    services.on_start.append(schedule_reminders)

    def submitted(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        user = body["user"]["id"]
        restore_id = str(view.get("private_metadata") or "")[:64]
        values = (view.get("state") or {}).get("values") or {}
        reason = str(((values.get(REASON_BLOCK) or {}).get(REASON_ACTION) or {}).get("value") or "")
        if len(" ".join(reason.split())) < MIN_REASON:
            ack(
                response_action="errors",
                errors={REASON_BLOCK: f"Please give a reason of at least {MIN_REASON} characters."},
            )
            return
        ack()

        def approve() -> None:
            outcome = services.workflow.break_glass.approve(restore_id, user, reason)
            req = services.store.get(restore_id)
            if not outcome.ok and req is not None:
                client.chat_postEphemeral(
                    channel=req.channel, user=user, text=f":warning: {esc(outcome.message)}"
                )

        services.work.submit(approve)

    def review(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        user = body["user"]["id"]
        restore_id = str(action.get("value", ""))[:64]

        def run() -> None:
            outcome = services.workflow.break_glass.review(restore_id, user)
            if not outcome.ok:
                warn(respond, outcome.message)

        after_ack(services, respond, run)

    app.view(DIALOG)(reports_errors(submitted))
    app.action(REVIEW_ACTION)(reports_errors(review))
