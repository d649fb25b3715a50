"""Several tables restored to one instant with one approval: the batch side of the engine.

A batch is a group of ordinary RestoreRequests sharing `batch_id`, the id of its *leader* (the
first table). The leader owns the card and the approvals; each member keeps its own state
machine, compare-and-set, lease, audit and outbox, so tracking, queueing and failures work per
table exactly as for one table. The members follow their leader's decision: when the leader is
approved, denied or expires, every member makes the same transition in the *same* store write as
the leader (`with_members`, Store.save_all: every record keeps its compare-and-set), so a crash
never leaves a half-approved batch. The tracker still makes any member left REQUESTED by an
older version follow its leader at the next read of the open requests (`catch_up`).

One thread per batch: the leader's progress reply lists every table, and when the last member
is final, the leader is marked `batch_done` (compare-and-set: once) with the summary queued.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from bot.batches.model import common_window, outside_reason
from bot.logs import restore_context
from bot.restores import InvalidTransition, RestoreRequest, State, new_id
from bot.store import AuditEvent, Change
from bot.tableref import RefError, parse_sources, targets_for
from bot.when import WhenError, format_instant, parse_when

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Table:
    source: str
    target: str
    checked: object  # workflow._Checked


# A batch's records are written within milliseconds of each other; a member with no leader
# after this long was left by a crash, not caught mid-write.
ORPHAN_GRACE = timedelta(minutes=1)


def is_batch(text: str) -> bool:
    """Several sources, comma-separated."""
    return "," in text


def members_of(store: Any, leader_id: str) -> list[RestoreRequest]:
    """Every request of a batch, the leader first, then in the order asked (the leader keeps
    their ids: no scan, however large the store)."""
    leader = store.get(leader_id)
    if leader is None:
        return []
    found = [store.get(i) for i in leader.batch_members or (leader.id,)]
    return [r for r in found if r is not None]


class Batches:
    def __init__(self, workflow: Any):  # bot.workflow.Workflow (which imports this module)
        self.flow = workflow

    # -- request ----------------------------------------------------------------------------
    def request(self, new: Any) -> RestoreRequest | tuple[str, str] | Any:
        """Check every table, find the common window, then create the leader and members.

        -> the leader; or (field, why not); or the refusing table's own Outcome."""
        flow = self.flow
        try:
            sources = parse_sources(new.source, flow.ctx.known_accounts(new.source))
        except RefError as exc:
            return self._refuse(new, "source", str(exc))
        try:
            targets = targets_for(sources, new.target)
        except RefError as exc:
            return self._refuse(new, "target", str(exc))
        now = flow.clock()
        try:
            instant = parse_when(new.when, new.requester_tz, now)
        except WhenError as exc:
            return self._refuse(new, "when", str(exc))
        tables: list[_Table] = []
        for source, target in zip(sources, targets, strict=True):
            # Each table passes the single-table checks (policy, PITR, target free); the
            # instant is checked below against the window all tables share.
            single = replace(new, source=str(source), target=str(target), when="latest")
            checked = flow.check(single)
            if hasattr(checked, "ok"):  # an Outcome: this table was refused, and why
                return checked
            tables.append(_Table(checked.source_ref, checked.target_ref, checked))
        targets_seen = [t.target for t in tables]
        if len(set(targets_seen)) != len(targets_seen):
            return self._refuse(new, "target", "Two tables would be restored to the same name.")
        windows = {t.source: t.checked.window for t in tables}  # type: ignore[attr-defined]
        common = common_window(windows)
        if common.window is None:
            return self._refuse(new, "when", common.reason)
        if instant is None:
            instant = common.window.latest  # `latest` for all: resolved once, used for all
        else:
            reason = outside_reason(instant, windows)
            if reason:
                return self._refuse(new, "when", reason)
        rule_of = [flow.policy.for_table(t.source) for t in tables]
        leader: RestoreRequest | None = None
        for index, table in enumerate(tables):
            req = flow.requests.build(
                new,
                table.checked,
                instant,
                # The strictest rule among the tables decides for all of them.
                min(r.request_ttl_minutes for r in rule_of),
                max(r.required_approvals for r in rule_of),
                batch_index=index,
            )
            if leader is None:
                ids = (req.id, *(new_id() for _ in tables[1:]))
                leader = req = replace(req, batch_id=req.id, batch_members=ids)
            else:
                req = replace(req, batch_id=leader.id, id=leader.batch_members[index])
            tables[index] = replace(table, checked=req)
        assert leader is not None
        # Members first: the card (queued with the leader) lists them all when it is posted.
        # Each record is written with its audit entry, in one write.
        when = format_instant(instant, "UTC")
        for table in [*tables[1:], tables[0]]:
            req = table.checked
            detail = f"{req.target} at {when} (batch {leader.id})"  # type: ignore[attr-defined]
            entry = flow.audit_entry("requested", req, new.requester, detail=detail)
            owed = flow.ctx.owed(None, req, ["card"] if req is leader else [])
            flow.store.add(req, announce=owed, audit=[entry])
            flow.on_event(entry.event)
        log.info("batch %s requested: %d tables at %s", leader.id, len(tables), when)
        flow.on_change()
        return leader

    def _refuse(self, new: Any, field: str, message: str) -> tuple[str, str]:
        self.flow.audit("request_refused", None, new.requester, new.channel, new.source, message)
        return field, message

    # -- decisions: the members follow their leader ------------------------------------------
    def may_decide(self, leader: RestoreRequest, user: str, approve: bool) -> str | None:
        """Why `user` may not decide for every table of the batch, or None."""
        policy, flow = self.flow.policy, self.flow
        check = policy.may_approve if approve else policy.may_deny
        for member in members_of(flow.store, leader.id):
            decision = check(user, leader.requester, member.source, flow.members)
            if not decision.allowed:
                return f"{decision.reason} (`{member.source}`)"
        return None

    def follow(self, leader: RestoreRequest) -> None:
        """Make every member still REQUESTED take its leader's decision; start the approved."""
        if leader.state == State.REQUESTED:
            return
        for member in members_of(self.flow.store, leader.id):
            if member.id != leader.id and member.state == State.REQUESTED:
                self._follow_one(leader, member)
        if leader.state == State.APPROVED or leader.state in {State.RESTORING, State.ACTIVE}:
            for member in members_of(self.flow.store, leader.id):
                if member.state == State.APPROVED:
                    self.flow.start(member.id)

    def with_members(
        self,
        old: RestoreRequest,
        new: RestoreRequest,
        announce: Sequence[str],
        audit: Sequence[AuditEvent],
    ) -> tuple[list[Change], list[AuditEvent]]:
        """The leader's decision (`old` -> `new`) and every waiting member's same decision,
        with their audit entries: what Store.save_all writes in one transaction."""
        changes, entries = [Change(old, new, announce)], list(audit)
        if new.state == State.REQUESTED:
            return changes, entries  # an approval of several: nothing decided yet
        for member in members_of(self.flow.store, old.id):
            if member.id == old.id or member.state != State.REQUESTED:
                continue
            followed = self._followed(new, member)
            if followed is not None:
                changes.append(Change(member, followed[0]))
                entries.append(followed[1])
        return changes, entries

    def _followed(
        self, leader: RestoreRequest, member: RestoreRequest
    ) -> tuple[RestoreRequest, AuditEvent] | None:
        """`member` taking its leader's decision, with its audit entry; None if it can't."""
        decided = State.APPROVED if leader.state in _APPROVED_ONWARDS else leader.state
        if decided not in {State.APPROVED, State.DENIED, State.EXPIRED, State.CANCELLED}:
            return None
        try:
            new = member.advance(
                decided,
                self.flow.clock(),
                decided_by=leader.decided_by,
                decided_at=leader.decided_at,
                approvals=leader.approvals,
            )
        except InvalidTransition:
            return None
        event = {State.APPROVED: "approved"}.get(decided, decided.value.lower())
        entry = self.flow.audit_entry(event, member, leader.decided_by, detail=f"batch {leader.id}")
        return new, entry

    def _follow_one(self, leader: RestoreRequest, member: RestoreRequest) -> None:
        with restore_context(member.id):
            followed = self._followed(leader, member)
            if followed is not None:
                self.flow.save(member, followed[0], audit=[followed[1]])

    def catch_up(self, members: list[RestoreRequest]) -> None:
        """Members (REQUESTED batch tables, read by expire_due at least every poll interval)
        left behind by a crash follow their leader now."""
        leaders: dict[str, RestoreRequest | None] = {}
        for member in members:
            if member.batch_id not in leaders:
                leaders[member.batch_id] = self.flow.store.get(member.batch_id)
            leader = leaders[member.batch_id]
            if leader is None:
                # Members are written just before their leader: only a member left alone for
                # a while is an orphan of a crash (no leader, no card: nobody can approve it).
                if self.flow.clock() - member.created_at >= ORPHAN_GRACE:
                    self.flow.expire(member)
            elif leader.state != State.REQUESTED:
                self.follow(leader)

    # -- the end: one summary when the last table is final -----------------------------------
    def member_final(self, member: RestoreRequest) -> None:
        if not member.batch_id:
            return
        for _ in range(20):
            leader = self.flow.store.get(member.batch_id)
            if leader is None or leader.batch_done:
                return
            members = members_of(self.flow.store, leader.id)
            if not all(m.final for m in members):
                return
            ok = sum(m.state == State.ACTIVE for m in members)
            entry = self.flow.audit_entry(
                "batch_finished", leader, None, detail=f"{ok} of {len(members)} ACTIVE"
            )
            done = replace(leader, batch_done=True)
            if self.flow.save(leader, done, ["batch_done"], audit=[entry]):
                self.flow.on_change()
                return


_APPROVED_ONWARDS = {State.APPROVED, State.RESTORING, State.ACTIVE, State.FAILED}


def is_member(req: RestoreRequest) -> bool:
    """A batch table other than the leader: it has no card or thread of its own."""
    return bool(req.batch_id) and req.batch_id != req.id


def leader_expiry_applies(req: RestoreRequest) -> bool:
    """Members expire with their leader, not on their own clock."""
    return not is_member(req)
