"""Workflow Builder custom step "Compare items since an instant" (`compare_items`).

A workflow run sends `function_executed` with the step's inputs (table, instant, channel,
optional keys and who asked); the bot starts the export path of `/pitr-diff LIVE_TABLE WHEN`
(bot/items/export_flow.py, same checks, same thread in the given channel) and stores the run's
`function_execution_id` on the item job. The step is completed when the comparison ends, from
the outbox (`items_step_done`, owed in the same write as the job's final transition):
`functions.completeSuccess` with the deleted / changed / added counts and the job id, or
`functions.completeError` with the reason. A refusal fails the step at once, nothing stored.
So a restart neither loses nor repeats the completion.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from slack_bolt import App, Fail
from slack_sdk.errors import SlackApiError

from bot.items.engine import ItemsError
from bot.items.export_flow import ExportRecovery
from bot.items.jobs import ItemJob, JobState
from bot.services import Services
from bot.when import parse_when
from commands.common import ref_problem
from commands.export_diff import MAX_KEYS
from commands.workflow_step import GONE, _text

log = logging.getLogger(__name__)

CALLBACK_ID = "compare_items"
STEP_DONE = "items_step_done"  # the outbox kind bot/items/recovery.py owes when it ends


def outputs_of(job: ItemJob) -> dict[str, Any]:
    return {"deleted": job.missing, "changed": job.changed, "added": job.added, "job_id": job.id}


def failure_of(job: ItemJob) -> str:
    return f"The comparison of {job.live_table} failed: {job.note or 'no details'}"


def keys_of(text: str) -> list[str] | None:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    return keys or None


def instant_of(text: str, now: datetime) -> datetime:
    """The step's instant (UTC; a workflow has no person's time zone). ValueError: why not."""
    try:
        instant = parse_when(text, None, now)
    except ValueError as exc:
        raise ValueError(f"I couldn't read the instant `{text[:60]}`: {exc}") from exc
    if instant is None:
        raise ValueError('The instant input is missing, e.g. "25 minutes ago".')
    return instant


def register(app: App, services: Services, engine: ExportRecovery) -> None:
    def complete_step(job_id: str) -> None:
        """The outbox's sender: end the workflow step with the comparison (once)."""
        job = services.store.job_get(job_id)
        if job is None or not job.function_execution_id:
            return
        execution = job.function_execution_id
        try:
            if job.state == JobState.FAILED:
                services.client.functions_completeError(
                    function_execution_id=execution, error=failure_of(job)
                )
            else:
                services.client.functions_completeSuccess(
                    function_execution_id=execution, outputs=outputs_of(job)
                )
        except SlackApiError as exc:
            if str(exc.response.get("error")) not in GONE:
                raise  # retried by the announcer
            log.warning("item job %s: the workflow step had already ended", job_id)

    services.announcer.item_senders[STEP_DONE] = complete_step

    def compare_step(body: dict, event: dict, inputs: dict, fail: Fail) -> None:
        execution = str(event.get("function_execution_id") or body.get("function_execution_id"))
        table, channel = _text(inputs, "table"), _text(inputs, "channel")
        keys = keys_of(_text(inputs, "keys"))
        try:
            instant = instant_of(_text(inputs, "instant"), services.clock())
        except ValueError as exc:
            instant, problem = None, str(exc)
        else:
            problem = ref_problem(table, "Table") or (
                None if channel.startswith(("C", "G")) else "The channel input is missing."
            )
        if keys and len(keys) > MAX_KEYS:
            problem = problem or f"At most {MAX_KEYS} keys; compare the whole table instead."
        if problem or instant is None:
            fail(problem or "The instant input is missing.")
            return
        requester = _text(inputs, "requested_by") or "workflow"
        try:
            outcome = engine.start_export(
                table,
                instant,
                requester,
                channel,
                keys,
                function_execution_id=execution,
            )
        except ItemsError as exc:
            fail(str(exc))
            return
        if not outcome.ok:
            fail(outcome.message)
            return
        services.announcer.kick()  # the thread starts now; the step ends with the comparison

    app.function(CALLBACK_ID)(compare_step)
