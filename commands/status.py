"""/pitr-status TABLE: PITR, the restorable window, restores in flight, recent activity.

Shown only to people the policy lets request or approve restores of TABLE, in its channels.
"""

from __future__ import annotations

from slack_bolt import Ack, App, Respond
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject

from bot.blocks import esc, status_blocks, to_dicts
from bot.drills.model import drill_status_line
from bot.pitr import AwsError
from bot.services import Services
from commands.common import InputError, after_ack, reports_errors, split_args, warn

USAGE = "Usage: `/pitr-status TABLE` (`NAME`, `NAME@REGION`, `ACCOUNT:NAME[@REGION]` or an ARN)"


def register(app: App, services: Services) -> None:
    @app.command("/pitr-status")
    @reports_errors
    def status_command(ack: Ack, command: dict, respond: Respond) -> None:
        ack()
        try:
            args = split_args(command.get("text") or "")
        except InputError as exc:
            warn(respond, str(exc))
            return
        if len(args) != 1:
            warn(respond, USAGE)
            return
        table, problem = services.workflow.table_ref(args[0])
        if table is None:
            warn(respond, problem)
            return
        user, channel = command["user_id"], command["channel_id"]
        after_ack(services, respond, lambda: show_status(table, user, channel, respond))

    def show_status(table: str, user: str, channel: str, respond: Respond) -> None:
        # Before any AWS call: a table's size, window and audit actors are not for everyone.
        decision = services.policy.may_see(user, channel, table, services.workflow.members)
        if not decision.allowed:
            warn(respond, decision.reason)
            return
        try:
            info = services.pitr.table(table)
            if info is None:
                where = "" if "@" in table else f" in {services.pitr.region}"
                hint = services.workflow.did_you_mean(table, user, channel)
                warn(respond, f"Table `{table}` does not exist{where}.{hint}")
                return
            pitr = services.pitr.pitr(table)
        except AwsError as exc:
            warn(respond, exc.message)
            return
        in_flight = services.workflow.in_flight_from(table)
        history = services.store.audit_events(table=table, limit=5)
        text, blocks = status_blocks(table, info, pitr, in_flight, history, services.clock())
        drills = drill_status_line(services.store.drill_find(source=table, limit=50))
        if drills:
            text += "\n" + drills
            blocks.append(
                ContextBlock(elements=[MarkdownTextObject(text=esc(drills), verbatim=True)])
            )
        respond(response_type="ephemeral", text=text, blocks=to_dicts(blocks))
