"""/pitr-enable TABLE [DAYS]: turn point-in-time recovery on, or change its recovery period.

Turning it on or raising the period only adds protection: one step. Lowering the period loses
restore history, so it goes through an approval card like a restore (bot/period_change.py).
"""

from __future__ import annotations

from slack_bolt import Ack, App, Respond

from bot.blocks import code, enabled_text, unchanged_text
from bot.period_change import DEFAULT_DAYS, Change, classify
from bot.pitr import AwsError, PitrInfo
from bot.restores import State
from bot.services import Services
from commands.common import (
    InputError,
    after_ack,
    ref_problem,
    reports_errors,
    split_args,
    warn,
)

USAGE = "Usage: `/pitr-enable TABLE [DAYS]` — DAYS is the recovery period, 1 to 35 (default 35)."


def parse_enable(text: str) -> tuple[str, int | None]:
    args = split_args(text)
    if not 1 <= len(args) <= 2:
        raise InputError(USAGE)
    table = args[0]
    problem = ref_problem(table, "Table name")  # `orders`, `prod:orders@eu-west-1`, an ARN
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
        table, why_not = workflow.table_ref(table)  # as stored: account and region checked
        if table is None:
            warn(respond, why_not)
            return
        decision = services.policy.may_request(user, channel, table, workflow.members)
        if not decision.allowed:
            workflow.audit("enable_refused", None, user, channel, table, decision.reason)
            warn(respond, decision.reason)
            return
        try:
            if services.pitr.table(table) is None:
                warn(respond, f"Table `{table}` does not exist in {services.pitr.region}.")
                return
            current = services.pitr.pitr(table)
            change = classify(current.enabled, current.recovery_days, days)
            if change == Change.SAME:
                respond(response_type="ephemeral", text=unchanged_text(current))
                return
            if change == Change.SHRINK:
                ask_approval(table, days or DEFAULT_DAYS, current, user, channel, respond)
                return
            if change == Change.RAISE:
                # Explicit: omitting the period must never leave it where it was silently.
                days = days or DEFAULT_DAYS
            pitr = services.pitr.enable_pitr(table, days)
        except AwsError as exc:
            warn(respond, exc.message)
            return
        previous = (current.recovery_days or DEFAULT_DAYS) if change == Change.RAISE else None
        event = "pitr_period_raised" if previous is not None else "pitr_enabled"
        workflow.audit(event, None, user, channel, table, f"{pitr.recovery_days} days")
        respond(response_type="in_channel", text=enabled_text(pitr, previous) + f" (by <@{user}>)")

    def ask_approval(
        table: str, days: int, current: PitrInfo, user: str, channel: str, respond: Respond
    ) -> None:
        """Lowering the period loses restore history: an approval card, as for a restore."""
        outcome = services.workflow.request_period_change(table, days, current, user, channel)
        if not outcome.ok:
            warn(respond, outcome.message)
            return
        services.announcer.flush()  # post the card now, so a failure can be told right here
        req = services.store.get(outcome.request.id) if outcome.request else None
        if req is not None and req.state == State.CANCELLED:
            warn(respond, req.error or "The approval card could not be posted.")
            return
        respond(
            response_type="ephemeral",
            text=f"Lowering the recovery period of {code(table)} to {days} days loses restore "
            "history, so it needs approval: card posted. Someone else has to click *Approve*.",
        )
