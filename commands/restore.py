"""/pitr-restore SOURCE TARGET [WHEN] [reason: ...], and the Approve / Deny buttons."""

from __future__ import annotations

import logging
import threading

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.blocks import APPROVE_ACTION, DENY_ACTION
from bot.restores import State
from bot.services import Services
from bot.workflow import NewRequest
from commands import break_glass, modal
from commands.common import (
    MAX_TEXT,
    InputError,
    after_ack,
    pairs_text,
    ref_problem,
    reports_errors,
    split_args,
    split_reason,
    user_tz,
    warn,
)

log = logging.getLogger(__name__)

USAGE = (
    "Usage: `/pitr-restore SOURCE TARGET [WHEN] [reason: why]` — WHEN is `latest` (default), "
    'an ISO 8601 time, Unix seconds or text like `"25 minutes ago"`. A table may be '
    "`NAME`, `NAME@REGION`, `ACCOUNT:NAME`, `ACCOUNT:NAME@REGION` or a table ARN. Several "
    "sources to one instant: `/pitr-restore orders,payments -before-incident WHEN` (the "
    "second argument is then a suffix added to each name)."
)


def parse_restore(text: str) -> tuple[str, str, str, str]:
    """-> (source, target, when, reason); raises InputError with the usage."""
    if len(text) > MAX_TEXT:
        raise InputError(f"That is {len(text)} characters; commands are limited to {MAX_TEXT}.")
    body, reason = split_reason(text)
    args = split_args(body)
    if len(args) < 2:
        raise InputError(f"I need a source and a target table. {USAGE}")
    source, target, *rest = args
    return source, target, " ".join(rest) or "latest", reason


def register(app: App, services: Services) -> None:
    def restore_command(ack: Ack, command: dict, respond: Respond, client: WebClient) -> None:
        text = (command.get("text") or "").strip()
        if not text:
            ack()

            def open_form() -> None:
                if not modal.open_modal(client, command):
                    warn(respond, f"I couldn't open the restore form. {USAGE}")

            # The form: views.open right after the ack, nothing (no AWS) before it. Its own
            # thread, not the work pool: the trigger_id is only good for 3 seconds.
            threading.Thread(target=open_form, name="open-form", daemon=True).start()
            return
        try:
            source, target, when, reason = parse_restore(text)
        except InputError as exc:
            ack()
            warn(respond, str(exc))
            return
        several = "," in source  # then the target is a suffix, checked by the engine
        problem = ref_problem(source, "Source table") or (
            None if several else ref_problem(target, "Target table")
        )
        if problem:
            ack()
            warn(respond, problem)
            return
        ack(response_type="ephemeral", text=f"Checking {pairs_text(source, target)}…")
        requester = command["user_id"]

        def check_and_post() -> None:
            outcome = services.workflow.request(
                NewRequest(
                    source=source,
                    target=target,
                    when=when,
                    requester=requester,
                    channel=command["channel_id"],
                    requester_tz=user_tz(client, requester),
                    reason=reason,
                )
            )
            if not outcome.ok or outcome.request is None:
                warn(respond, outcome.message)
                return
            services.announcer.flush()  # post the card now, so a failure can be told right here
            req = services.store.get(outcome.request.id)
            if req is not None and req.state == State.CANCELLED:
                warn(respond, req.error or "The approval card could not be posted.")
                return
            respond(
                response_type="ephemeral",
                replace_original=False,
                text=f"Approval card posted for {pairs_text(source, target)}. "
                "Someone else has to click *Approve*.",
            )

        after_ack(services, respond, check_and_post)

    def decision(approve: bool):  # noqa: ANN202 - a Bolt listener factory
        def on_click(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
            ack()
            user = body["user"]["id"]
            restore_id = str(action.get("value", ""))[:64]
            if approve and break_glass.offers_dialog(services, restore_id, user):
                # The requester, where the policy allows break-glass: ask why first.
                trigger = str(body.get("trigger_id") or "")
                break_glass.open_dialog(services.client, trigger, restore_id, respond)
                return

            def decide() -> None:
                workflow = services.workflow
                outcome = (
                    workflow.approve(restore_id, user)
                    if approve
                    else workflow.deny(restore_id, user)
                )
                if not outcome.ok:
                    warn(respond, outcome.message)
                    return
                req = outcome.request
                if approve and req is not None and req.state == State.REQUESTED:
                    respond(
                        response_type="ephemeral",
                        replace_original=False,
                        text=f"Approval recorded; {req.approvals_missing} more needed.",
                    )

            after_ack(services, respond, decide)

        return on_click

    app.command("/pitr-restore")(reports_errors(restore_command))
    app.action(APPROVE_ACTION)(reports_errors(decision(approve=True)))
    app.action(DENY_ACTION)(reports_errors(decision(approve=False)))
