"""Break-glass: the requester approves their own restore, then another approver reviews it.

Only where the policy's rule for the table sets `break_glass: true`, only for a restore (a
restore only *creates* a table; never a copy back, undo, deletion or shorter recovery period,
which go through their own approvals and stay four-eyes), and only with a reason of at least
MIN_REASON characters typed in a confirmation dialog. The approval is one compare-and-set with
its audit entry (marked `break-glass:`) and what it owes Slack: the card's update, the
channel's notice with the review card, and a direct message to every approver of the table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from bot.engine.context import CAS_ATTEMPTS, Context, Outcome
from bot.logs import restore_context
from bot.restores import RestoreRequest, State

log = logging.getLogger(__name__)

MIN_REASON = 20
MAX_REASON = 500
# The outbox kinds a break-glass approval and its review owe (senders: commands/break_glass.py).
NOTICE, DMS, REVIEWED = "break_glass", "break_glass_dms", "break_glass_reviewed"
REMIND = "break_glass_remind"
# An unreviewed break-glass approval is brought up again in its review card's thread.
REMIND_EVERY = timedelta(hours=4)


class BreakGlass:
    def __init__(self, ctx: Context, start: Callable[[str], None]):
        self.ctx = ctx
        self.start = start

    def offer(self, restore_id: str, user: str) -> Outcome:
        """May `user` break glass on this request (open the dialog)? Refusal: why not."""
        req = self.ctx.store.get(restore_id)
        if req is None:
            return Outcome(False, "This request no longer exists.")
        why = self._why_not(req, user)
        return Outcome(False, why) if why else Outcome(True, "", req)

    def _why_not(self, req: RestoreRequest, user: str) -> str | None:
        if user != req.requester:
            return "Only the person who asked can break glass on their own restore."
        if req.kind != "restore" or req.batch_id:
            return "Break-glass covers a single restore only; someone else has to approve this."
        if not self.ctx.policy.break_glass_for(req.source):
            return (
                "You asked for this restore, so someone else has to approve it (four-eyes "
                "rule); break-glass is not allowed for this table."
            )
        if req.state != State.REQUESTED:
            return f"This request is {req.state.value}; there is nothing to approve."
        if self.ctx.clock() >= req.expires_at:
            return "This request has expired; nothing was restored."
        return None

    def approve(self, restore_id: str, user: str, reason: str) -> Outcome:
        reason = " ".join(reason.split())[:MAX_REASON]
        if len(reason) < MIN_REASON:
            return Outcome(
                False, f"Please give a reason of at least {MIN_REASON} characters.", field="reason"
            )
        with restore_context(restore_id):
            for _ in range(CAS_ATTEMPTS):
                req = self.ctx.store.get(restore_id)
                if req is None:
                    return Outcome(False, "This request no longer exists.")
                why = self._why_not(req, user)
                if why:
                    self.ctx.audit("approval_refused", req, user, detail=why)
                    return Outcome(False, why)
                now = self.ctx.clock()
                new = req.with_approval(user).advance(
                    State.APPROVED, now, decided_by=user, decided_at=now, break_glass_reason=reason
                )
                entry = self.ctx.audit_entry("approved", req, user, detail=f"break-glass: {reason}")
                if self.ctx.save(req, new, ["card_update", NOTICE, DMS], audit=[entry]):
                    log.warning("restore %s: break-glass self-approval by %s", req.id, user)
                    self.ctx.on_change()
                    self.start(restore_id)
                    return Outcome(True, "", new)
        return Outcome(False, "Too many people clicked at once; please try again.")

    def review(self, restore_id: str, user: str) -> Outcome:
        """Another approver of the table marks a break-glass approval as reviewed."""
        for _ in range(CAS_ATTEMPTS):
            req = self.ctx.store.get(restore_id)
            if req is None or not req.break_glass_reason:
                return Outcome(False, "There is no break-glass approval to review here.")
            if req.reviewed_by:
                return Outcome(False, f"Already reviewed by <@{req.reviewed_by}>.")
            if user == req.requester:
                return Outcome(False, "Someone else than the requester has to review this.")
            policy, members = self.ctx.policy, self.ctx.members
            decision = policy.may_approve(user, req.requester, req.source, members)
            if not decision.allowed:
                return Outcome(False, decision.reason)
            now = self.ctx.clock()
            new = replace(req, reviewed_by=user, updated_at=now)
            entry = self.ctx.audit_entry("break_glass_reviewed", req, user)
            if self.ctx.save(req, new, [REVIEWED], audit=[entry]):
                self.ctx.on_change()
                return Outcome(True, "", new)
        return Outcome(False, "Too many people clicked at once; please try again.")

    def remind(self, now: datetime | None = None) -> int:
        """Owe a reminder for every break-glass approval unreviewed for REMIND_EVERY since
        it was approved or last reminded; a compare-and-set each, so replicas and restarts
        send each reminder once."""
        now = now or self.ctx.clock()
        owed = 0
        for req in self.unreviewed():
            since = req.review_reminded_at or req.decided_at or req.created_at
            if now - since < REMIND_EVERY:
                continue
            new = replace(req, review_reminded_at=now)
            if self.ctx.save(req, new, [REMIND]):
                owed += 1
        if owed:
            self.ctx.on_change()
        return owed

    def unreviewed(self) -> list[RestoreRequest]:
        """Break-glass approvals still waiting for their review (reminders, App Home)."""
        found = self.ctx.store.find(limit=1000)
        return [r for r in found if r.break_glass_reason and not r.reviewed_by]
