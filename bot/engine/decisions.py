"""Deciding: approve, deny (or withdraw), and expire a request nobody decided in time.

The last approval hands the request to tracking (`start`), which makes the AWS call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot.batches.engine import is_member
from bot.engine.context import CAS_ATTEMPTS, Context, Outcome
from bot.logs import restore_context
from bot.period_change import PERIOD_CHANGE
from bot.policy import Decision
from bot.restores import RestoreRequest, State
from bot.store import AuditEvent

log = logging.getLogger(__name__)


class Decisions:
    def __init__(self, ctx: Context, start: Callable[[str], None]):
        self.ctx = ctx
        self.start = start  # tracking's start: APPROVED -> RESTORING and the AWS call
        self.batches: Any = None  # bot.batches.engine.Batches, set by the Workflow facade
        self._read_requests_at: datetime | None = None  # expire_due's next read of the requests

    def approve(self, restore_id: str, user: str) -> Outcome:
        with restore_context(restore_id):
            outcome = self._decide(restore_id, user, approve=True)
            if outcome.ok and outcome.request and outcome.request.batch_id:
                self.batches.follow(outcome.request)  # every table starts, or none
            elif outcome.ok and outcome.request and outcome.request.state == State.APPROVED:
                self.start(restore_id)
            return outcome

    def deny(self, restore_id: str, user: str) -> Outcome:
        with restore_context(restore_id):
            outcome = self._decide(restore_id, user, approve=False)
            if outcome.ok and outcome.request and outcome.request.batch_id:
                self.batches.follow(outcome.request)
            return outcome

    def _decide(self, restore_id: str, user: str, approve: bool) -> Outcome:
        for _ in range(CAS_ATTEMPTS):
            req = self.ctx.store.get(restore_id)
            if req is None:
                return Outcome(False, "This request no longer exists.")
            now = self.ctx.clock()
            if req.state != State.REQUESTED:
                return Outcome(False, _already(req))
            if now >= req.expires_at:
                self.expire(req)
                return Outcome(False, "This request has expired; nothing was restored.")
            check = self.ctx.policy.may_approve if approve else self.ctx.policy.may_deny
            decision = check(user, req.requester, req.source, self.ctx.members)
            if decision.allowed and req.batch_id:
                why_not = self.batches.may_decide(req, user, approve)
                decision = Decision.no(why_not) if why_not else decision
            if not decision.allowed:
                event = "approval_refused" if approve else "denial_refused"
                self.ctx.audit(event, req, user, detail=decision.reason)
                return Outcome(False, decision.reason)
            if not approve:
                new = req.advance(State.DENIED, now, decided_by=user, decided_at=now)
                withdrawn = "withdrawn by the requester" if new.withdrawn else ""
                if self._write(
                    req,
                    new,
                    announce=["card_update", "notify_requester"],
                    audit=[self.ctx.audit_entry("denied", req, user, detail=withdrawn)],
                ):
                    log.info(
                        "restore %s %s by %s", req.id, "withdrawn" if withdrawn else "denied", user
                    )
                    self.ctx.on_change()
                    return Outcome(True, "", new)
                continue
            if user in req.approvals:
                return Outcome(
                    False,
                    f"You already approved this; waiting for {req.approvals_missing} more.",
                )
            new = req.with_approval(user)
            if new.approvals_missing == 0:
                new = new.advance(State.APPROVED, now, decided_by=user, decided_at=now)
            else:
                new = replace(new, updated_at=now)
            entry = self.ctx.audit_entry(
                "approved", req, user, detail=f"{len(new.approvals)} of {new.required_approvals}"
            )
            if self._write(req, new, announce=["card_update"], audit=[entry]):
                log.info("restore %s approved by %s (%s)", req.id, user, new.state.value)
                self.ctx.on_change()
                return Outcome(True, "", new)
        return Outcome(False, "Too many people clicked at once; please try again.")

    def _write(
        self,
        old: RestoreRequest,
        new: RestoreRequest,
        announce: Sequence[str],
        audit: Sequence[AuditEvent],
    ) -> RestoreRequest | None:
        """Save a decision; a batch leader's decision is one write with all its members'."""
        if old.batch_id != old.id or self.batches is None:
            return self.ctx.save(old, new, announce, audit)
        changes, entries = self.batches.with_members(old, new, announce, audit)
        saved = self.ctx.save_all(changes, entries)
        return saved[0] if saved else None

    def expire(self, req: RestoreRequest) -> bool:
        new = req.advance(State.EXPIRED, self.ctx.clock())
        with restore_context(req.id):
            announce = ["card_update", "notify_requester"]
            if self._write(req, new, announce, audit=[self.ctx.audit_entry("expired", req, None)]):
                log.info("restore %s expired undecided", req.id)
                self.ctx.on_change()
                if req.batch_id == req.id:
                    self.batches.follow(new)
                return True
        return False

    def expire_due(self) -> int:
        """Expire the requests past their time. Reading every open request is not done at every
        tick (many a second with hundreds of restores in flight): only at the soonest expiry
        the last read saw, and at least every poll interval for requests made since. The same
        read hands the batch tables waiting on a leader to catch_up."""
        now = self.ctx.clock()
        expired = 0
        if self._read_requests_at is not None and now < self._read_requests_at:
            return 0
        soonest = now + timedelta(seconds=self.ctx.poll_seconds)
        members: list[RestoreRequest] = []
        for req in self.ctx.store.find(states=[State.REQUESTED], limit=1000):
            if is_member(req):
                members.append(req)  # a batch table follows its leader (catch_up)
                continue
            if now < req.expires_at:
                soonest = min(soonest, req.expires_at)
            elif self.expire(req):
                expired += 1
            else:
                soonest = now  # decided meanwhile, or a lost write: look again next tick
        self._read_requests_at = soonest
        if self.batches is not None:
            self.batches.catch_up(members)
        return expired


def _already(req: RestoreRequest) -> str:
    who = f" by <@{req.decided_by}>" if req.decided_by else ""
    if req.kind == PERIOD_CHANGE:
        return f"This change of the recovery period was already decided{who} ({req.state.value})."
    return {
        State.APPROVED: f"This restore was already approved{who}.",
        State.RESTORING: f"This restore was already approved{who} and is running.",
        State.ACTIVE: "This restore is already done.",
        State.DENIED: (
            "This request was already withdrawn by the person who asked; nothing was restored."
            if req.withdrawn
            else f"This request was already denied{who}; nothing was restored."
        ),
        State.EXPIRED: "This request expired; nothing was restored. Ask again if needed.",
        State.CANCELLED: "This request was cancelled; nothing was restored.",
        State.FAILED: "This restore already ran and failed; see the thread.",
    }.get(req.state, f"This request is {req.state.value}.")
