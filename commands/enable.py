"""/pitr-enable TABLE [DAYS]: turn point-in-time recovery on. It only adds protection."""

from __future__ import annotations

from slack_bolt import Ack, App, Respond

from bot.blocks import enabled_text
from bot.pitr import AwsError
from bot.restores import table_name_problem
from bot.services import Services
from commands.common import InputError, after_ack, reports_errors, split_args, warn

USAGE = "Usage: `/pitr-enable TABLE [DAYS]` — DAYS is the recovery period, 1 to 35 (default 35)."


def parse_enable(text: str) -> tuple[str, int | None]:
    args = split_args(text)
    if not 1 <= len(args) <= 2:
        raise InputError(USAGE)
    table = args[0]
    problem = table_name_problem(table)
    if problem:
        raise InputError(problem)
    days = None
    if len(args) == 2:
        if not (args[1].isascii() and args[1].isdigit()) or not 1 <= int(args[1]) <= 35:
            raise InputError(f"DAYS must be a whole number from 1 to 35. {USAGE}")
        days = int(args[1])
    return table, days


def register(app: App, services: Services) -> None:
    @app.command("/pitr-enable")
    @reports_errors
    def enable_command(ack: Ack, command: dict, respond: Respond) -> None:
        ack()
        try:
            table, days = parse_enable(command.get("text") or "")
        except InputError as exc:
            warn(respond, str(exc))
            return
        user, channel = command["user_id"], command["channel_id"]
        after_ack(services, respond, lambda: enable(table, days, user, channel, respond))

    def enable(table: str, days: int | None, user: str, channel: str, respond: Respond) -> None:
        workflow = services.workflow
        decision = services.policy.may_request(user, channel, table, workflow.members)
        if not decision.allowed:
            workflow.audit("enable_refused", None, user, channel, table, decision.reason)
            warn(respond, decision.reason)
            return
        try:
            if services.pitr.table(table) is None:
                warn(respond, f"Table `{table}` does not exist in {services.pitr.region}.")
                return
            pitr = services.pitr.enable_pitr(table, days)
        except AwsError as exc:
            warn(respond, exc.message)
            return
        workflow.audit("pitr_enabled", None, user, channel, table, f"{pitr.recovery_days} days")
        respond(response_type="in_channel", text=enabled_text(pitr) + f" (by <@{user}>)")
