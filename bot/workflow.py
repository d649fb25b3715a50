"""The engine: request, decide, start, track. Knows nothing of what a person types.

Every step reads the request, decides on a pure transition and writes it back with
compare-and-set. A lost race is reloaded and re-decided, never forced. Slack messages a step
owes are queued in the same write (the outbox) and sent by the Announcer.

`Workflow` is the one face callers see; the work is done by parts that share one context
(bot/engine/): requests.py (preflight, request, period change), decisions.py (approve, deny,
expire), tracking.py (start, adopt, poll, leases, fail), context.py (store, gateway, policy,
clock, hooks, save and audit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot import eta as etas
from bot.batches.engine import Batches, is_batch
from bot.engine.break_glass import BreakGlass
from bot.engine.context import Context, Outcome
from bot.engine.decisions import Decisions
from bot.engine.requests import NewRequest, Requests, _Checked
from bot.engine.tracking import Tracking
from bot.pitr import PitrInfo, PitrService
from bot.policy import Members, Policy
from bot.restores import RestoreRequest
from bot.store import AuditEvent, Store

__all__ = ["NewRequest", "Outcome", "Workflow"]


def _shared(name: str) -> property:
    """An attribute of the shared context, read and set through the facade (e.g. the
    announcer sets `workflow.on_change` after the parts are built; they all see it)."""
    return property(
        lambda self: getattr(self.ctx, name),
        lambda self, value: setattr(self.ctx, name, value),
    )


class Workflow:
    store = _shared("store")
    pitr = _shared("pitr")
    policy = _shared("policy")
    members = _shared("members")
    clock = _shared("clock")
    poll_seconds = _shared("poll_seconds")
    limits = _shared("limits")
    min_restore_minutes = _shared("min_restore_minutes")
    next_due = _shared("next_due")
    owner = _shared("owner")
    on_change = _shared("on_change")
    on_event = _shared("on_event")

    def __init__(
        self, store: Store, pitr: PitrService, policy: Policy, members: Members, **options: Any
    ):
        # options: clock, poll_seconds, owner, limits, min_restore_minutes (see Context).
        self.ctx = Context(store, pitr, policy, members, **options)
        self.requests = Requests(self.ctx)
        self.tracking = Tracking(self.ctx)
        self.decisions = Decisions(self.ctx, start=self.tracking.start)
        # Several tables to one instant: the members follow their leader (bot/batches/engine.py).
        self.batches = Batches(self)
        self.decisions.batches = self.tracking.batches = self.batches
        self.break_glass = BreakGlass(self.ctx, start=self.tracking.start)

    # -- request (bot/engine/requests.py) ---------------------------------------------------
    def request(self, new: NewRequest) -> Outcome:
        if is_batch(new.source):
            batch = self.batches.request(new)
            if isinstance(batch, RestoreRequest):
                return Outcome(True, "", batch)
            if isinstance(batch, Outcome):
                return batch
            return Outcome(False, batch[1], field=batch[0])
        return self.requests.request(new)

    def request_period_change(
        self, table: str, days: int, pitr: PitrInfo, requester: str, channel: str
    ) -> Outcome:
        return self.requests.request_period_change(table, days, pitr, requester, channel)

    def check(self, new: NewRequest) -> _Checked | Outcome:
        return self.requests.check(new)

    def eta(
        self, source: str, size_bytes: int | None = None, items: int | None = None
    ) -> etas.Eta | None:
        return self.requests.eta(source, size_bytes, items)

    # -- decisions (bot/engine/decisions.py) ------------------------------------------------
    def approve(self, restore_id: str, user: str) -> Outcome:
        return self.decisions.approve(restore_id, user)

    def deny(self, restore_id: str, user: str) -> Outcome:
        return self.decisions.deny(restore_id, user)

    def expire(self, req: RestoreRequest) -> bool:
        return self.decisions.expire(req)

    def expire_due(self) -> int:
        return self.decisions.expire_due()

    # -- starting and tracking (bot/engine/tracking.py) -------------------------------------
    def start(self, restore_id: str) -> None:
        self.tracking.start(restore_id)

    def track(self) -> int:
        """One tracker tick: expire, start what was approved, poll the restores that are due."""
        self.decisions.expire_due()
        return self.tracking.track()

    def poll(self, restore_id: str) -> int:
        return self.tracking.poll(restore_id)

    def fail(self, req: RestoreRequest, error: str) -> None:
        self.tracking.fail(req, error)

    def release_leases(self) -> int:
        return self.tracking.release_leases()

    # -- reads and writes (bot/engine/context.py) -------------------------------------------
    def table_ref(self, text: str) -> tuple[str | None, str]:
        """A table a person typed, as stored (`prod:orders@eu-west-1`), or (None, why not)."""
        return self.requests.table_ref(text)

    def in_flight_from(self, source: str) -> list[RestoreRequest]:
        return self.ctx.in_flight_from(source)

    def did_you_mean(self, table: str, user: str, channel: str | None) -> str:
        return self.ctx.did_you_mean(table, user, channel)

    def save(
        self,
        old: RestoreRequest,
        new: RestoreRequest,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> RestoreRequest | None:
        return self.ctx.save(old, new, announce, audit)

    def audit(
        self,
        event: str,
        req: RestoreRequest | None,
        actor: str | None,
        channel: str | None = None,
        table: str | None = None,
        detail: str = "",
    ) -> None:
        self.ctx.audit(event, req, actor, channel, table, detail)

    def audit_entry(
        self,
        event: str,
        req: RestoreRequest | None,
        actor: str | None,
        channel: str | None = None,
        table: str | None = None,
        detail: str = "",
    ) -> AuditEvent:
        return self.ctx.audit_entry(event, req, actor, channel, table, detail)
