"""After ACTIVE: compare a restored table with its source, and record each fix on the request.

`Aftercare` records the comparison and every fix on the request with compare-and-set, so a
double click or a second replica never copies twice. The AWS reads and writes are
`bot.aftercare.aws.AftercareService`'s; what differs and which fixes are offered,
`bot.aftercare.rules`'.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.aftercare.aws import AftercareService
from bot.aftercare.rules import FIXES, LABELS, Aspect, already_fixed, offered
from bot.pitr import AwsError
from bot.policy import Decision
from bot.restores import RestoreRequest, State
from bot.store import AuditEvent
from bot.table_identity import identity_problem

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 20
SOURCE_FRESH = 30.0  # seconds a source's settings are reused across comparisons
CLAIM_STALE = timedelta(minutes=5)  # a claim older than this (a crash mid-fix) may be retaken


@dataclass(frozen=True)
class FixOutcome:
    ok: bool
    message: str = ""
    request: RestoreRequest | None = None


class Aftercare:
    """Compare and fix; every record a compare-and-set on the request."""

    def __init__(self, workflow: Any, aws: AftercareService):
        self.workflow = workflow  # store, policy, members, clock, audit, on_change
        self.aws = aws

    @property
    def store(self) -> Any:
        return self.workflow.store

    def prepare(self, req: RestoreRequest) -> RestoreRequest:
        """Once per restore: mark the table, compare it, apply `after_restore`. Idempotent."""
        if req.aftercare is not None:
            return req
        notes: list[str] = []
        # Not tagged yet, so the marker is not compared; the rest must be the table at ACTIVE.
        problem = check_identity(self.aws, req, check_marker=False)
        if problem:
            notes.append(problem)
        else:
            try:
                self.aws.mark(req.target, req.id)
            except AwsError as exc:
                notes.append(f"Could not tag the new table as the bot's: {exc.message}")
        try:
            aspects = self.aws.compare(req.source, req.target)
        except AwsError as exc:
            aspects = [Aspect(n, "?", "?", None, note=exc.message) for n in LABELS]
        care: dict[str, Any] = {
            "aspects": [asdict(a) for a in aspects],
            "fixed": {},
            "claims": {},
            "errors": {},
            "notes": notes,
            "auto": [],
        }
        auto = self.workflow.policy.after_restore_for(req.source)
        differing = {a.name for a in aspects if a.differs}
        for aspect in auto:
            if aspect not in differing or problem:
                continue
            try:
                done = self.aws.fix(aspect, req.source, req.target)
            except AwsError as exc:
                care["errors"][aspect] = exc.message
                continue
            care["fixed"][aspect] = {
                "by": None,
                "at": self.workflow.clock().isoformat(),
                "what": done,
            }
            care["auto"].append(aspect)
        for _ in range(CAS_ATTEMPTS):
            fresh = self.store.get(req.id)
            if fresh is None:
                return req
            if fresh.aftercare is not None:
                return fresh  # another replica got there first
            differences = ", ".join(sorted(differing)) or "none"
            entries = [
                self._entry("aftercare_compared", fresh, None, f"differences: {differences}")
            ]
            for aspect in care["auto"]:
                what = care["fixed"][aspect]["what"]
                entries.append(
                    self._entry("aftercare_fixed", fresh, None, f"{aspect} (policy): {what}")
                )
            saved = self.workflow.save(fresh, replace(fresh, aftercare=care), audit=entries)
            if saved is not None:
                return saved
        return req

    def may_fix(self, req: RestoreRequest, user: str) -> Decision:
        if user == req.requester:
            return Decision.yes()
        policy = self.workflow.policy
        return policy.may_approve(user, req.requester, req.source, self.workflow.members)

    def fix(self, restore_id: str, group: str, user: str) -> FixOutcome:
        if group not in FIXES:
            return FixOutcome(False, "Unknown fix.")
        refused = self._refuse_other_table(restore_id, user)
        if refused is not None:
            return refused
        claimed = self._claim(restore_id, group, user)
        if isinstance(claimed, FixOutcome):
            return claimed
        req = claimed
        done: dict[str, str] = {}
        error = ""
        differing = {a["name"] for a in (req.aftercare or {}).get("aspects", []) if a["differs"]}
        for aspect in FIXES[group]:
            if aspect not in differing or aspect in (req.aftercare or {}).get("fixed", {}):
                continue
            try:
                done[aspect] = self.aws.fix(aspect, req.source, req.target)
            except AwsError as exc:
                error = exc.message
                break
        return self._record(restore_id, group, user, done, error)

    def _refuse_other_table(self, restore_id: str, user: str) -> FixOutcome | None:
        """Before any write: refuse if the table is no longer the one restored (name reuse)."""
        req = self.store.get(restore_id)
        if req is None or req.aftercare is None or req.state != State.ACTIVE:
            return FixOutcome(False, "There is nothing to fix for this restore.")
        if not self.may_fix(req, user).allowed:
            return None  # _claim refuses it with the reason (and audits it)
        problem = check_identity(self.aws, req)
        if problem:
            log.warning("restore %s: fix refused: %s", req.id, problem)
            return FixOutcome(False, problem)
        return None

    def _claim(self, restore_id: str, group: str, user: str) -> RestoreRequest | FixOutcome:
        for _ in range(CAS_ATTEMPTS):
            req = self.store.get(restore_id)
            if req is None or req.aftercare is None or req.state != State.ACTIVE:
                return FixOutcome(False, "There is nothing to fix for this restore.")
            if req.delete_state in {"APPROVED", "DELETED"}:
                return FixOutcome(False, f"`{req.target}` has been deleted.")
            now = self.workflow.clock()
            care = copy.deepcopy(req.aftercare)
            claim = care.get("claims", {}).get(group)
            if claim and now - datetime.fromisoformat(claim["at"]) < CLAIM_STALE:
                return FixOutcome(False, "Someone clicked this a moment ago; it is being done.")
            if claim is None and group not in offered(req):
                return FixOutcome(False, already_fixed(req, group))
            decision = self.may_fix(req, user)
            if not decision.allowed:
                self._audit("aftercare_fix_refused", req, user, f"{group}: {decision.reason}")
                return FixOutcome(False, decision.reason)
            care.setdefault("claims", {})[group] = {"by": user, "at": now.isoformat()}
            saved = self.store.save(req, replace(req, aftercare=care, updated_at=now))
            if saved is not None:
                return saved
        return FixOutcome(False, "Too many people clicked at once; please try again.")

    def _record(
        self, restore_id: str, group: str, user: str, done: dict[str, str], error: str
    ) -> FixOutcome:
        for _ in range(CAS_ATTEMPTS):
            req = self.store.get(restore_id)
            if req is None or req.aftercare is None:
                return FixOutcome(False, "This restore no longer exists.")
            now = self.workflow.clock()
            care = copy.deepcopy(req.aftercare)
            care.setdefault("claims", {}).pop(group, None)
            for aspect, what in done.items():
                care.setdefault("fixed", {})[aspect] = {
                    "by": user,
                    "at": now.isoformat(),
                    "what": what,
                }
            errors = care.setdefault("errors", {})
            if error:
                errors[group] = error
            else:
                errors.pop(group, None)
            announce = ["aftercare_update"]
            if done or error:
                announce.append(f"aftercare_fixed:{group}")
            if error:
                entry = self._entry("aftercare_fix_failed", req, user, f"{group}: {error}")
            else:
                detail = "; ".join(f"{a}: {w}" for a, w in done.items()) or "nothing to do"
                entry = self._entry("aftercare_fixed", req, user, f"{group}: {detail}")
            new = replace(req, aftercare=care, updated_at=now)
            saved = self.workflow.save(req, new, announce, audit=[entry])
            if saved is None:
                continue
            self.workflow.on_change()
            return FixOutcome(not error, error, saved)
        return FixOutcome(False, "Too many people clicked at once; please try again.")

    def _audit(self, event: str, req: RestoreRequest, actor: str | None, detail: str) -> None:
        """An entry with no change to the request (a refusal)."""
        self.workflow.audit(event, req, actor, detail=f"{req.target}: {detail}")

    def _entry(self, event: str, req: RestoreRequest, actor: str | None, detail: str) -> AuditEvent:
        """An entry written with the change it records (Workflow.save)."""
        return self.workflow.audit_entry(event, req, actor, detail=f"{req.target}: {detail}")


def check_identity(
    aws: AftercareService, req: RestoreRequest, check_marker: bool = True
) -> str | None:
    """Why `req.target` may not be changed (not the table this restore made), or None."""
    try:
        current = aws.identity(req.target)
    except AwsError as exc:
        return (
            f"I could not check that `{req.target}` is still the restored table "
            f"({exc.message}), so nothing was changed."
        )
    return identity_problem(req.target, req.identity, current, check_marker)
