"""After ACTIVE in Slack: the differences reply with its fix buttons, the cleanup reminder with
**Delete table**, and the Approve / Deny card a deletion needs.

Every message here is an outbox kind (sent, retried and never dropped by the Announcer); the
buttons ack first, then act through `bot.aftercare.Aftercare` and `bot.reminders.Reminders`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    SectionBlock,
)

from bot.aftercare.aws import AftercareService
from bot.aftercare.rules import BUTTONS, FIXES, LABELS, offered
from bot.aftercare.steps import Aftercare
from bot.blocks import code, esc, fit, md, to_dicts, user
from bot.reminders import Reminders
from bot.restore_events import slack_metadata
from bot.restores import RestoreRequest, human_duration, human_size
from bot.services import Services
from commands.common import after_ack, reports_errors, warn
from commands.items import compare_button

log = logging.getLogger(__name__)

FIX_ACTION = "pitr_fix_{}"  # + a key of FIXES
DELETE_ACTION = "pitr_delete_table"
DELETE_APPROVE_ACTION = "pitr_delete_approve"
DELETE_DENY_ACTION = "pitr_delete_deny"
NOT_CHECKED = "CloudWatch alarms and IAM policies are not compared; set them up if you need them."


# -- rendering ----------------------------------------------------------------------------
def aftercare_blocks(req: RestoreRequest) -> tuple[str, list[Block]]:
    care = req.aftercare or {}
    aspects = care.get("aspects", [])
    fixed = care.get("fixed", {})
    differing = [a for a in aspects if a.get("differs")]
    same = [a for a in aspects if a.get("differs") is False]
    unknown = [a for a in aspects if a.get("differs") is None]
    lines = [f":mag: *{code(req.target)} compared with {code(req.source)}*"]
    if differing:
        for a in differing:
            line = (
                f"• *{esc(LABELS.get(a['name'], a['name']))}*: source {esc(a['source'])} · "
                f"new table {esc(a['target'])}"
            )
            if a["name"] in fixed:
                done = fixed[a["name"]]
                by = "policy `after_restore`" if done.get("by") is None else user(done["by"])
                line += f" — :white_check_mark: {esc(done.get('what', 'fixed'))} ({by})"
            lines.append(line)
    else:
        lines.append("No differences in the settings I compare.")
    if same:
        lines.append("Same on both: " + ", ".join(esc(LABELS[a["name"]]) for a in same) + ".")
    for a in unknown:
        lines.append(
            f"Could not check *{esc(LABELS.get(a['name'], a['name']))}*: "
            f"{esc(a.get('note') or 'unknown error')}"
        )
    for aspect in care.get("auto", []):
        lines.append(
            f":robot_face: Done automatically (policy `after_restore`): "
            f"{esc(LABELS.get(aspect, aspect))} — {esc(fixed.get(aspect, {}).get('what', ''))}"
        )
    for key, message in care.get("errors", {}).items():
        name = BUTTONS.get(key) or LABELS.get(key, key)
        lines.append(f":warning: {esc(name)} failed: {esc(message)}")
    for note in care.get("notes", []):
        lines.append(f":warning: {esc(note)}")
    blocks: list[Block] = [SectionBlock(text=md(fit("\n".join(lines))))]
    buttons = offered(req)
    if buttons:
        blocks.append(
            ActionsBlock(
                block_id="aftercare",
                elements=[
                    ButtonElement(text=BUTTONS[g], action_id=FIX_ACTION.format(g), value=req.id)
                    for g in buttons
                ],
            )
        )
        blocks.append(
            ContextBlock(
                elements=[
                    md(
                        f"{user(req.requester)} or an approver for {code(req.source)} can click; "
                        "the bot copies the setting from the source and confirms here. "
                        + NOT_CHECKED
                    )
                ]
            )
        )
    else:
        blocks.append(ContextBlock(elements=[md(NOT_CHECKED)]))
    blocks.append(compare_button(req.id))  # getting the data back (commands/items.py)
    names = ", ".join(LABELS.get(a["name"], a["name"]) for a in differing) or "none"
    return f"{req.target} compared with {req.source}: differences: {names}", blocks


def fixed_text(req: RestoreRequest, group: str) -> str:
    care = req.aftercare or {}
    error = care.get("errors", {}).get(group)
    if error:
        return f":warning: {esc(BUTTONS[group])} on {code(req.target)} failed: {esc(error)}"
    done = [(a, care.get("fixed", {}).get(a)) for a in FIXES[group]]
    parts = [esc(d["what"]) for _, d in done if d]
    who = next((d["by"] for _, d in done if d and d.get("by")), None)
    by = f" by {user(who)}" if who else ""
    return (
        f":white_check_mark: {esc(BUTTONS[group])} done on {code(req.target)}{by}: "
        + ("; ".join(parts) or "nothing to change")
        + "."
    )


def reminder_blocks(req: RestoreRequest, facts: dict[str, Any], now: Any) -> tuple[str, list]:
    state = req.delete_state
    target = code(req.target)
    age = human_duration(now - req.finished_at) if req.finished_at else "a while"
    if state == "DELETED":
        text = (
            f":wastebasket: {target} was deleted — asked by {user(req.delete_requested_by or '')}"
            f", approved by {user(req.delete_decided_by or '')}."
        )
        return f"{req.target} deleted", [SectionBlock(text=md(text))]
    if state == "APPROVED":
        text = (
            f":hourglass_flowing_sand: Deleting {target} — approved by "
            f"{user(req.delete_decided_by or '')}…"
        )
        return f"Deleting {req.target}", [SectionBlock(text=md(text))]
    if state == "REQUESTED":
        text = (
            f":wastebasket: *Delete {target}?* (restored from {code(req.source)} {age} ago)\n"
            f"Asked by {user(req.delete_requested_by or '')}. Someone else who may approve "
            f"restores of {code(req.source)} has to approve."
        )
        return f"Delete {req.target}? Waiting for approval", [
            SectionBlock(text=md(text)),
            ActionsBlock(
                block_id="delete_decision",
                elements=[
                    ButtonElement(
                        text="Approve",
                        action_id=DELETE_APPROVE_ACTION,
                        value=req.id,
                        style="primary",
                    ),
                    ButtonElement(
                        text="Deny", action_id=DELETE_DENY_ACTION, value=req.id, style="danger"
                    ),
                ],
            ),
        ]
    size = (
        f"{facts['items'] if facts.get('items') is not None else 'unknown'} items, "
        f"{human_size(facts.get('bytes'))}"
    )
    lines = [
        f":broom: Cleanup reminder: {target} (restored from {code(req.source)} {age} ago) "
        f"still exists — {size}. If it is no longer needed, delete it; deleting needs a "
        "second person's approval."
    ]
    if facts.get("error"):
        lines = [
            f":broom: Cleanup reminder: I could not check {target} "
            f"({esc(facts['error'])}). If it still exists and is no longer needed, delete it."
        ]
    if facts.get("protected"):
        lines.append("Deletion protection is on: it has to be turned off before I can delete it.")
    if state in {"DENIED", "REFUSED", "FAILED"} and req.delete_note:
        lines.append(f"Last attempt: {esc(req.delete_note)}")
    elif state == "DENIED":
        lines.append(f"Last request denied by {user(req.delete_decided_by or '')}.")
    return f"Cleanup reminder: {req.target} still exists", [
        SectionBlock(text=md(fit("\n".join(lines)))),
        ActionsBlock(
            block_id="cleanup",
            elements=[
                ButtonElement(
                    text="Delete table", action_id=DELETE_ACTION, value=req.id, style="danger"
                )
            ],
        ),
    ]


def delete_result_text(req: RestoreRequest) -> str:
    target = code(req.target)
    if req.delete_state == "DELETED":
        asked, approved = user(req.delete_requested_by or ""), user(req.delete_decided_by or "")
        note = esc(req.delete_note or "deleted")
        return f":wastebasket: {note} — asked by {asked}, approved by {approved}."
    if req.delete_state == "DENIED":
        return f":no_entry: Deleting {target} was denied by {user(req.delete_decided_by or '')}."
    if req.delete_state == "REFUSED":
        return f":shield: {esc(req.delete_note or 'Deletion refused.')}"
    return f":x: Deleting {target} failed: {esc(req.delete_note or 'unknown error')}"


# -- wiring -------------------------------------------------------------------------------
class AftercareSlack:
    """The outbox senders for the kinds this module owns."""

    def __init__(self, services: Services, engine: Aftercare, reminders: Reminders):
        self.services = services
        self.engine = engine
        self.reminders = reminders

    @property
    def client(self) -> Any:
        return self.services.client

    def senders(self) -> dict[str, Callable[[RestoreRequest], None]]:
        out: dict[str, Callable[[RestoreRequest], None]] = {
            "aftercare": self.send_aftercare,
            "aftercare_update": self.update_aftercare,
            "reminder": self.send_reminder,
            "reminder_update": self.update_reminder,
            "delete_result": self.send_delete_result,
        }
        for group in FIXES:
            out[f"aftercare_fixed:{group}"] = self._fixed_sender(group)
        return out

    def send_aftercare(self, req: RestoreRequest) -> None:
        req = self.engine.prepare(req)
        self.reminders.schedule(req)
        if req.aftercare_ts or not req.card_ts:
            return
        text, blocks = aftercare_blocks(req)
        resp = self.client.chat_postMessage(
            channel=req.channel,
            thread_ts=req.card_ts,
            text=text,
            blocks=to_dicts(blocks),
            metadata=slack_metadata(req, "pitr_restore_aftercare"),
        )
        self._remember(req.id, aftercare_ts=resp["ts"])

    def update_aftercare(self, req: RestoreRequest) -> None:
        if not req.aftercare_ts:
            return
        text, blocks = aftercare_blocks(req)
        self.client.chat_update(
            channel=req.channel,
            ts=req.aftercare_ts,
            text=text,
            blocks=to_dicts(blocks),
            metadata=slack_metadata(req, "pitr_restore_aftercare"),
        )

    def _fixed_sender(self, group: str) -> Callable[[RestoreRequest], None]:
        def send(req: RestoreRequest) -> None:
            if req.card_ts:
                self.client.chat_postMessage(
                    channel=req.channel,
                    thread_ts=req.card_ts,
                    text=fixed_text(req, group),
                    metadata=slack_metadata(req, "pitr_restore_fixed"),
                )

        return send

    def send_reminder(self, req: RestoreRequest) -> None:
        if req.reminder_ts or not req.card_ts:
            return
        exists, facts = self.reminders.table_facts(req)
        if exists is False:
            # Already cleaned up: nothing to remind anyone of; the audit trail says so.
            self.services.workflow.audit("reminder_skipped", req, None, detail="table gone")
            return
        text, blocks = reminder_blocks(req, facts, self.services.clock())
        resp = self.client.chat_postMessage(
            channel=req.channel,
            thread_ts=req.card_ts,
            text=text,
            blocks=to_dicts(blocks),
            metadata=slack_metadata(req, "pitr_cleanup_reminder"),
        )
        self._remember(req.id, reminder_ts=resp["ts"])

    def update_reminder(self, req: RestoreRequest) -> None:
        if not req.reminder_ts:
            return
        facts: dict[str, Any] = {}
        if req.delete_state not in {"DELETED", "APPROVED", "REQUESTED"}:
            _, facts = self.reminders.table_facts(req)
        text, blocks = reminder_blocks(req, facts, self.services.clock())
        self.client.chat_update(
            channel=req.channel,
            ts=req.reminder_ts,
            text=text,
            blocks=to_dicts(blocks),
            metadata=slack_metadata(req, "pitr_cleanup_reminder"),
        )

    def send_delete_result(self, req: RestoreRequest) -> None:
        if req.card_ts:
            self.client.chat_postMessage(
                channel=req.channel,
                thread_ts=req.card_ts,
                text=delete_result_text(req),
                metadata=slack_metadata(req, f"pitr_table_delete_{req.delete_state or ''}".lower()),
            )

    def _remember(self, restore_id: str, **changes: Any) -> None:
        """Record a message id with compare-and-set, re-reading on conflict."""
        store = self.services.store
        for _ in range(20):
            fresh = store.get(restore_id)
            if fresh is None or store.save(fresh, replace(fresh, **changes)) is not None:
                return
        log.error("restore %s: could not record %s", restore_id, ", ".join(changes))


def register(app: App, services: Services) -> None:
    aws = AftercareService.from_pitr(services.pitr)
    engine = Aftercare(services.workflow, aws)
    reminders = Reminders(services.workflow, aws, services.tracker.scheduler)
    slack = AftercareSlack(services, engine, reminders)
    services.announcer.senders.update(slack.senders())
    services.on_start.append(reminders.start)

    def fix_listener(group: str):  # noqa: ANN202 - a Bolt listener factory
        def on_click(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
            ack()
            restore_id, user = str(action.get("value", ""))[:64], body["user"]["id"]

            def fix() -> None:
                outcome = engine.fix(restore_id, group, user)
                if not outcome.ok:
                    warn(respond, outcome.message)
                services.announcer.kick()

            after_ack(services, respond, fix)

        return on_click

    for group in FIXES:
        app.action(FIX_ACTION.format(group))(reports_errors(fix_listener(group)))

    @app.action(DELETE_ACTION)
    @reports_errors
    def on_delete(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        restore_id, user = str(action.get("value", ""))[:64], body["user"]["id"]

        def request_delete() -> None:
            outcome = reminders.request_delete(restore_id, user)
            if not outcome.ok:
                warn(respond, outcome.message)
                return
            respond(
                response_type="ephemeral",
                replace_original=False,
                text="Deletion requested. Someone else has to click *Approve*.",
            )

        after_ack(services, respond, request_delete)

    def decision(approve: bool):  # noqa: ANN202 - a Bolt listener factory
        def on_click(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
            ack()
            restore_id, user = str(action.get("value", ""))[:64], body["user"]["id"]

            def decide() -> None:
                outcome = reminders.decide(restore_id, user, approve)
                if not outcome.ok:
                    warn(respond, outcome.message)
                services.announcer.kick()

            after_ack(services, respond, decide)

        return on_click

    app.action(DELETE_APPROVE_ACTION)(reports_errors(decision(approve=True)))
    app.action(DELETE_DENY_ACTION)(reports_errors(decision(approve=False)))
