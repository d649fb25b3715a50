"""Workflow Builder custom step "Restore a DynamoDB table to a point in time" (`restore_table`).

A workflow run sends `function_executed` with the step's inputs; the bot asks for the restore
exactly as `/pitr-restore` does (same checks, same approval card in the given channel) and
stores the run's `function_execution_id` with the request. The step is completed when the
request ends, from the outbox (`workflow_step_done`, owed in the same write as the final
transition): `functions.completeSuccess` with the outputs once the table is ACTIVE,
`functions.completeError` when it was denied, expired, cancelled or failed. So a restart
neither loses nor repeats the completion.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, Fail
from slack_sdk.errors import SlackApiError

from bot.engine.context import STEP_DONE
from bot.restores import RestoreRequest, State
from bot.services import Services
from bot.workflow import NewRequest
from commands.common import ref_problem

log = logging.getLogger(__name__)

CALLBACK_ID = "restore_table"
# The run was already completed or has gone: nothing left to tell it.
GONE = {"execution_not_in_running_state", "function_execution_not_found"}
MAX_INPUT = 500


def _text(inputs: dict[str, Any], name: str) -> str:
    value = inputs.get(name)
    return str(value).strip()[:MAX_INPUT] if value is not None else ""


def outputs_of(req: RestoreRequest) -> dict[str, str]:
    return {
        "restore_id": req.id,
        "new_table": req.target,
        "final_status": req.state.value,
        "restored_instant": req.restore_at.isoformat() if req.restore_at else "latest",
        "approved_by": ",".join(req.approvals),
    }


def failure_of(req: RestoreRequest) -> str:
    if req.state == State.DENIED:
        return f"The restore of {req.source} was denied by {req.decided_by or 'an approver'}."
    if req.state == State.EXPIRED:
        return f"Nobody approved the restore of {req.source} in time; nothing was restored."
    return f"The restore of {req.source} ended {req.state.value}: {req.error or 'no details'}"


def register(app: App, services: Services) -> None:
    def complete_step(req: RestoreRequest) -> None:
        """The outbox's sender: end the workflow step with the request (once)."""
        if not req.function_execution_id or not req.final:
            return
        try:
            if req.state == State.ACTIVE:
                services.client.functions_completeSuccess(
                    function_execution_id=req.function_execution_id, outputs=outputs_of(req)
                )
            else:
                services.client.functions_completeError(
                    function_execution_id=req.function_execution_id, error=failure_of(req)
                )
        except SlackApiError as exc:
            if str(exc.response.get("error")) not in GONE:
                raise  # retried by the announcer
            log.warning("restore %s: the workflow step had already ended", req.id)

    services.announcer.senders[STEP_DONE] = complete_step

    def restore_step(body: dict, event: dict, inputs: dict, fail: Fail) -> None:
        execution = str(event.get("function_execution_id") or body.get("function_execution_id"))
        source, target = _text(inputs, "source_table"), _text(inputs, "new_table")
        channel, requester = _text(inputs, "channel"), _text(inputs, "requested_by")
        problem = (
            ref_problem(source, "Source table")
            or ref_problem(target, "New table name")
            or (None if channel.startswith(("C", "G")) else "The channel input is missing.")
        )
        if problem:
            fail(problem)
            return
        outcome = services.workflow.request(
            NewRequest(
                source=source,
                target=target,
                when=_text(inputs, "instant") or "latest",
                requester=requester or "workflow",
                channel=channel,
                reason=_text(inputs, "reason"),
                function_execution_id=execution,
            )
        )
        if not outcome.ok:
            fail(outcome.message)
            return
        services.announcer.kick()  # the card goes out now; the step ends with the restore

    app.function(CALLBACK_ID)(restore_step)
