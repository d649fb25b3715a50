"""Drills that wait for approval (the policy's `require_approval` on a `drills:` entry).

A drill so configured is created AWAITING_APPROVAL with a card in its channel; Approve (by an
approver of the table as for a restore, never the person who asked) moves it to STARTED and
the engine runs it; Deny, or no decision within the table's `request_ttl_minutes`, ends it
CANCELLED with nothing started. Each decision is a compare-and-set on the drill with its audit
entry and the card update (outbox) in the same write: a double click or a second replica loses
the race and starts nothing.
"""

from __future__ import annotations

from typing import Any

from bot.drills.model import Drill, DrillState

CARD = "drill_card"  # outbox kind: post the card, or update it to the drill's state


def card_of(drill: Drill) -> list[str]:
    """The outbox items a new drill owes: its approval card, if it waits for one."""
    return [CARD] if drill.state == DrillState.AWAITING_APPROVAL else []


def decide(engine: Any, drill_id: str, user: str, approve: bool) -> tuple[Drill | None, str]:
    """A click on the card by `user` (`engine`: the DrillEngine). Returns the drill as saved
    and "" when the decision was recorded, or None and why not (nothing written)."""
    drill = engine.store.drill_get(drill_id)
    if drill is None:
        return None, "This drill is unknown."
    if drill.state != DrillState.AWAITING_APPROVAL:
        return None, f"This drill was already decided ({drill.state.value.lower()})."
    if expire_if_due(engine, drill):
        return None, "This drill's approval request has expired; nothing was started."
    requester = drill.requested_by or ""
    if approve and user == drill.requested_by:
        return None, "You asked for this drill, so someone else has to approve it (four-eyes)."
    check = engine.policy.may_approve if approve else engine.policy.may_deny
    decision = check(user, requester, drill.source, engine.members)
    if not decision.allowed:
        return None, decision.reason
    now = engine.clock()
    if approve:
        new = drill.advance(DrillState.STARTED, now, decided_by=user)
        entry = engine.entry("drill_approved", drill, user, drill.target)
    else:
        new = drill.advance(
            DrillState.CANCELLED, now, decided_by=user, finished_at=now, problem="denied"
        )
        entry = engine.entry("drill_denied", drill, user, drill.target)
    saved = engine.store.drill_save(drill, new, announce=[CARD], audit=[entry])
    if saved is None:
        return None, "Someone else decided this drill at the same moment."
    engine.on_event(entry.event)
    return saved, ""


def expire_if_due(engine: Any, drill: Drill) -> bool:
    """End `drill` CANCELLED if its approval request has expired; True if it has."""
    now = engine.clock()
    if drill.expires_at is None or now < drill.expires_at:
        return False
    new = drill.advance(DrillState.CANCELLED, now, finished_at=now, problem="not approved in time")
    entry = engine.entry("drill_expired", drill, None, drill.target)
    if engine.store.drill_save(drill, new, announce=[CARD], audit=[entry]):
        engine.on_event("drill_expired")
    return True
