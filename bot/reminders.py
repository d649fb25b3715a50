"""The cleanup reminder, and deleting a restored table only after a second person approves.

`remind_after_days` (policy) after a restore is ACTIVE the bot replies in its thread with the
table's size and a **Delete table** button. Reminders are APScheduler date jobs on the tracker's
scheduler; the store is the truth, so every start re-creates them from it (`resume`), and a
firing reminder is claimed with compare-and-set (`reminded_at`) so two replicas never both send
it. Deleting goes REQUESTED -> APPROVED -> DELETED (or DENIED / REFUSED / FAILED), each step a
compare-and-set on the request, so a double click can never delete twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from bot.aftercare.aws import AftercareService
from bot.aftercare.rules import DeletionRefused
from bot.aftercare.steps import check_identity
from bot.logs import restore_context
from bot.pitr import AwsError
from bot.restores import RestoreRequest, State

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 20
# A deletion may be asked for (again) from these states.
ASKABLE = {None, "DENIED", "REFUSED", "FAILED"}
RESYNC_MINUTES = 10  # rescan the store for reminders another replica scheduled


@dataclass(frozen=True)
class DeleteOutcome:
    ok: bool
    message: str = ""
    request: RestoreRequest | None = None


class Reminders:
    def __init__(self, workflow: Any, aws: AftercareService, scheduler: Any):
        self.workflow = workflow  # store, policy, members, clock, audit, on_change
        self.aws = aws
        self.scheduler = scheduler

    @property
    def store(self) -> Any:
        return self.workflow.store

    # -- scheduling -------------------------------------------------------------------------
    def due_at(self, req: RestoreRequest) -> Any:
        days = self.workflow.policy.remind_after_days_for(req.source)
        return (req.finished_at or req.updated_at or req.created_at) + timedelta(days=days)

    def schedule(self, req: RestoreRequest) -> bool:
        """A date job for `req`'s reminder (replacing any earlier one); False if none is owed."""
        if req.state != State.ACTIVE or req.reminded_at is not None or req.delete_state:
            return False
        if req.aftercare is None:
            return False  # finished before this feature existed, or not yet compared
        run_at = max(self.due_at(req), self.workflow.clock())
        self.scheduler.add_job(
            self.fire,
            "date",
            run_date=run_at,
            args=[req.id],
            id=f"remind-{req.id}",
            replace_existing=True,
            misfire_grace_time=None,  # late is better than never (e.g. a paused process)
        )
        return True

    def resume(self) -> int:
        """At start: re-create every reminder owed, finish deletions a crash interrupted."""
        scheduled = 0
        for req in self.store.find(states=[State.ACTIVE], limit=1000):
            if self.schedule(req):
                scheduled += 1
            elif req.delete_state == "APPROVED":
                self.scheduler.add_job(self._delete, args=[req.id], id=f"delete-{req.id}")
        log.info("reminders: %d scheduled from the store", scheduled)
        return scheduled

    def start(self) -> None:
        self.resume()
        self.scheduler.add_job(
            self._resync,
            "interval",
            minutes=RESYNC_MINUTES,
            id="reminders-resync",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )

    def _resync(self) -> None:
        try:
            for req in self.store.find(states=[State.ACTIVE], limit=1000):
                if self.scheduler.get_job(f"remind-{req.id}") is None:
                    self.schedule(req)
        except Exception:  # noqa: BLE001 - a failed rescan is retried at the next one
            log.exception("reminders: rescan failed")

    def fire(self, restore_id: str) -> bool:
        """The reminder is due: claim it (compare-and-set) and queue the thread reply."""
        with restore_context(restore_id):
            for _ in range(CAS_ATTEMPTS):
                req = self.store.get(restore_id)
                if req is None or req.reminded_at is not None or req.state != State.ACTIVE:
                    return False
                if req.delete_state:
                    return False
                now = self.workflow.clock()
                if now < self.due_at(req):
                    self.schedule(req)  # the policy changed; not yet
                    return False
                new = replace(req, reminded_at=now, updated_at=now)
                entry = self.workflow.audit_entry("reminder_due", req, None, detail=req.target)
                if self.workflow.save(req, new, ["reminder"], audit=[entry]) is not None:
                    self.workflow.on_change()
                    return True
            return False

    def table_facts(self, req: RestoreRequest) -> tuple[bool | None, dict[str, Any]]:
        """(exists, description); exists None when AWS could not tell."""
        try:
            info = self.aws.table(req.target)
        except AwsError as exc:
            return None, {"error": exc.message}
        if info is None:
            return False, {}
        return True, {
            "items": info.item_count,
            "bytes": info.size_bytes,
            "protected": info.deletion_protection,
        }

    # -- deleting, with four eyes -----------------------------------------------------------
    def request_delete(self, restore_id: str, user: str) -> DeleteOutcome:
        for _ in range(CAS_ATTEMPTS):
            req = self.store.get(restore_id)
            if req is None or req.state != State.ACTIVE:
                return DeleteOutcome(False, "This restore no longer exists.")
            if req.delete_state not in ASKABLE:
                return DeleteOutcome(False, _already(req))
            policy, members = self.workflow.policy, self.workflow.members
            decision = policy.may_request(user, req.channel, req.source, members)
            if not decision.allowed:
                self.workflow.audit("delete_request_refused", req, user, detail=decision.reason)
                return DeleteOutcome(False, decision.reason)
            problem = check_identity(self.aws, req)
            if problem:  # a reused name: refuse before anything is written
                log.warning("restore %s: deletion refused: %s", req.id, problem)
                return DeleteOutcome(False, problem)
            now = self.workflow.clock()
            new = replace(
                req,
                delete_state="REQUESTED",
                delete_requested_by=user,
                delete_decided_by=None,
                delete_note=None,
                updated_at=now,
            )
            entry = self.workflow.audit_entry("delete_requested", req, user, detail=req.target)
            saved = self.workflow.save(req, new, ["reminder_update"], audit=[entry])
            if saved is not None:
                self.workflow.on_change()
                return DeleteOutcome(True, "", saved)
        return DeleteOutcome(False, "Too many people clicked at once; please try again.")

    def decide(self, restore_id: str, user: str, approve: bool) -> DeleteOutcome:
        with restore_context(restore_id):
            outcome = self._decide(restore_id, user, approve)
            if outcome.ok and approve:
                self._delete(restore_id)
            return outcome

    def _decide(self, restore_id: str, user: str, approve: bool) -> DeleteOutcome:
        for _ in range(CAS_ATTEMPTS):
            req = self.store.get(restore_id)
            if req is None or req.state != State.ACTIVE:
                return DeleteOutcome(False, "This restore no longer exists.")
            if req.delete_state != "REQUESTED" or not req.delete_requested_by:
                return DeleteOutcome(False, _already(req))
            policy, members = self.workflow.policy, self.workflow.members
            check = policy.may_approve if approve else policy.may_deny
            decision = check(user, req.delete_requested_by, req.source, members)
            if not decision.allowed:
                reason = decision.reason.replace("this restore", "this deletion")
                event = "delete_approval_refused" if approve else "delete_denial_refused"
                self.workflow.audit(event, req, user, detail=reason)
                return DeleteOutcome(False, reason)
            state = "APPROVED" if approve else "DENIED"
            announce = ["reminder_update"] if approve else ["reminder_update", "delete_result"]
            new = replace(
                req, delete_state=state, delete_decided_by=user, updated_at=self.workflow.clock()
            )
            event = "delete_approved" if approve else "delete_denied"
            entry = self.workflow.audit_entry(event, req, user, detail=req.target)
            saved = self.workflow.save(req, new, announce, audit=[entry])
            if saved is not None:
                self.workflow.on_change()
                return DeleteOutcome(True, "", saved)
        return DeleteOutcome(False, "Too many people clicked at once; please try again.")

    def _delete(self, restore_id: str) -> None:
        """The one DeleteTable call, by whoever won APPROVED; the result recorded after."""
        req = self.store.get(restore_id)
        if req is None or req.delete_state != "APPROVED":
            return
        try:
            # Checked again: the name may have been reused between the request and approval.
            problem = check_identity(self.aws, req)
            if problem:
                raise DeletionRefused(problem)
            what = self.aws.delete_restored(req.target, req.source)
            state, note, event = "DELETED", what, "table_deleted"
        except DeletionRefused as exc:
            state, note, event = "REFUSED", str(exc), "delete_refused"
        except AwsError as exc:
            state, note, event = "FAILED", exc.message, "delete_failed"
        for _ in range(CAS_ATTEMPTS):
            fresh = self.store.get(restore_id)
            if fresh is None or fresh.delete_state != "APPROVED":
                return
            now = self.workflow.clock()
            new = replace(fresh, delete_state=state, delete_note=note, updated_at=now)
            entry = self.workflow.audit_entry(event, fresh, fresh.delete_decided_by, detail=note)
            if self.workflow.save(fresh, new, ["reminder_update", "delete_result"], audit=[entry]):
                log.info("restore %s: deletion of %s %s", req.id, req.target, state)
                self.workflow.on_change()
                return


def _already(req: RestoreRequest) -> str:
    return {
        "REQUESTED": "Deleting this table is already waiting for approval.",
        "APPROVED": "Deleting this table was already approved.",
        "DELETED": "This table was already deleted.",
        "DENIED": "Deleting this table was denied.",
    }.get(req.delete_state or "", "Nothing to decide here.")
