"""/pitr-drill TABLE: run a restore drill now; and the drills' schedule, sweep and report.

No approval by default: a drill only creates and deletes the bot's own table. Allowed to
whoever may request restores of the table, for tables listed under the policy's `drills`; an
entry with `require_approval: true` posts an approval card first (bot/drills/approval.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from slack_bolt import Ack, App, Respond

from bot.blocks import esc, to_dicts
from bot.drills import approval
from bot.drills.approval import CARD
from bot.drills.aws import DrillService
from bot.drills.card import APPROVE_DRILL_ACTION, DENY_DRILL_ACTION, drill_card
from bot.drills.engine import DrillEngine
from bot.drills.limits import DrillLimits
from bot.drills.model import DrillState, report_line
from bot.services import Services
from commands.common import (
    InputError,
    after_ack,
    ref_problem,
    reports_errors,
    split_args,
    warn,
)

log = logging.getLogger(__name__)

USAGE = (
    "Usage: `/pitr-drill TABLE` — a table listed under `drills` in the policy; in another "
    "account or region written `prod:orders`, `orders@eu-west-1` or `prod:orders@eu-west-1`."
)


def parse_drill(text: str) -> str:
    """The one table argument, as typed (a name or a table reference)."""
    args = split_args(text)
    if len(args) != 1:
        raise InputError(USAGE)
    problem = ref_problem(args[0], "Table")
    if problem:
        raise InputError(problem)
    return args[0]


def build_engine(services: Services) -> DrillEngine:
    engine = DrillEngine(
        store=services.store,
        aws=DrillService.from_pitr(services.pitr),
        policy=services.policy,
        members=services.workflow.members,
        clock=services.clock,
        poll_seconds=services.settings.poll_seconds,
        owner=services.workflow.owner,
    )
    settings = services.settings
    engine.limits = DrillLimits(
        settings.max_drills_per_user, settings.max_drills, settings.drill_reserved_slots
    )
    engine.on_change = services.announcer.kick
    engine.on_event = lambda event: services.metrics.events.labels(event).inc()
    return engine


def register(app: App, services: Services) -> None:
    engine = build_engine(services)

    def send_report(drill_id: str) -> None:
        drill = services.store.drill_get(drill_id)
        if drill is None or not drill.final:
            return
        services.client.chat_postMessage(channel=drill.channel, text=report_line(drill))

    services.announcer.item_senders["drill_report"] = send_report

    def send_card(drill_id: str) -> None:
        """Post the approval card, or update it to the drill's state (outbox item CARD)."""
        drill = services.store.drill_get(drill_id)
        if drill is None:
            return
        text, blocks = drill_card(drill)
        if drill.card_ts:
            services.client.chat_update(
                channel=drill.channel, ts=drill.card_ts, text=text, blocks=to_dicts(blocks)
            )
            return
        ts = services.client.chat_postMessage(
            channel=drill.channel,
            text=text,
            blocks=to_dicts(blocks),
            unfurl_links=False,
            unfurl_media=False,
        )["ts"]
        while drill is not None and not drill.card_ts:  # a click may have won the first write
            if services.store.drill_save(drill, replace(drill, card_ts=ts)):
                break
            drill = services.store.drill_get(drill_id)
        if drill is not None and drill.state != DrillState.AWAITING_APPROVAL:
            send_card(drill_id)  # decided before its ts was kept: show the decision

    services.announcer.item_senders[CARD] = send_card

    def start() -> None:
        # The tracker's scheduler is this replica's local clock; the store decides.
        scheduler = services.tracker.scheduler
        scheduler.add_job(
            engine.tick,
            "interval",
            seconds=services.settings.poll_seconds,
            id="drills",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.add_job(engine.sweep, id="drill-sweep")  # once, at start, off the main thread
        scheduler.add_job(engine.tick, id="drill-resume")  # resume drills in flight at once

    services.on_start.append(start)
    services.started.append(engine.swept)

    @app.command("/pitr-drill")
    @reports_errors
    def drill_command(ack: Ack, command: dict, respond: Respond) -> None:
        ack()
        try:
            table = parse_drill(command.get("text") or "")
        except InputError as exc:
            warn(respond, str(exc))
            return
        user, channel = command["user_id"], command["channel_id"]
        after_ack(services, respond, lambda: run_drill(table, user, channel, respond))

    def run_drill(text: str, user: str, channel: str, respond: Respond) -> None:
        # The same reading as the other commands: `prod:orders@eu-west-1` as stored, and
        # only in an account and region the policy allows (a refusal writes nothing).
        table, why = services.workflow.table_ref(text)
        if table is None:
            warn(respond, why)
            return
        outcome = engine.start_now(table, user, channel)
        if not outcome.ok or outcome.drill is None:
            log.info("drill of %s refused for %s: %s", table, user, outcome.message)
            warn(respond, outcome.message)
            return
        drill = outcome.drill
        if drill.state == DrillState.AWAITING_APPROVAL:
            respond(
                response_type="ephemeral",
                replace_original=False,
                text=f":test_tube: Approval card for a restore drill of `{esc(table)}` posted in "
                f"<#{drill.channel}>. Someone else has to click *Approve*.",
            )
            services.announcer.kick()
            return
        respond(
            response_type="ephemeral",
            replace_original=False,
            text=f":test_tube: {esc(outcome.message)} Restoring into `{esc(drill.target)}`; "
            f"the result will be posted in <#{drill.channel}>.",
        )
        engine.run(drill.id)

    def decision(approve: bool):  # noqa: ANN202 - a Bolt listener factory
        def on_click(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
            ack()
            drill_id, user = str(action.get("value", ""))[:64], body["user"]["id"]

            def decide() -> None:
                drill, why = approval.decide(engine, drill_id, user, approve)
                if drill is None:
                    warn(respond, why)
                    return
                services.announcer.kick()
                if drill.state == DrillState.STARTED:
                    engine.run(drill.id)

            after_ack(services, respond, decide)

        return on_click

    app.action(APPROVE_DRILL_ACTION)(reports_errors(decision(approve=True)))
    app.action(DENY_DRILL_ACTION)(reports_errors(decision(approve=False)))
