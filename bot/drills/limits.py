"""Limits on drills (issue 20): caps per person and in all, and the account's restore slots.

AWS runs at most 50 restores at once per account, drills included. A drill starts only while
the restores (running or approved and waiting) and drills of its account leave
`reserved_slots` of those 50 free, so drills never push an approved incident restore into
LimitExceededException. A refusal writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.batches.model import MAX_RESTORES_PER_ACCOUNT
from bot.drills.model import LIVE
from bot.period_change import RESTORE
from bot.restores import State
from bot.tableref import account_of


@dataclass(frozen=True)
class DrillLimits:
    per_user: int = 2  # drills running at once, started by one person (/pitr-drill)
    total: int = 5  # drills running at once, in all
    reserved_slots: int = 10  # of the account's 50 concurrent restores, kept for restores


def drill_limit_problem(
    store: Any, limits: DrillLimits, table: str, user: str | None = None
) -> str | None:
    """Why a drill of `table` (asked by `user`, None: the schedule) may not start now."""
    live = store.drill_find(states=LIVE, limit=1000)
    mine = [d for d in live if user is not None and d.requested_by == user]
    if user is not None and len(mine) >= limits.per_user:
        return (
            f"You already have {len(mine)} drills running (at most {limits.per_user}, "
            "PITR_BOT_MAX_DRILLS_PER_USER); try again when one has finished."
        )
    if len(live) >= limits.total:
        return (
            f"{len(live)} drills are running (at most {limits.total}, PITR_BOT_MAX_DRILLS); "
            "try again when one has finished."
        )
    account = account_of(table)
    restores = [
        r
        for r in store.find(states=[State.APPROVED, State.RESTORING], limit=5000)
        if r.kind == RESTORE and account_of(r.source) == account
    ]
    in_use = len(restores) + sum(1 for d in live if account_of(d.source) == account)
    if in_use >= MAX_RESTORES_PER_ACCOUNT - limits.reserved_slots:
        return (
            f"Restore slots are short in this account: {in_use} restores and drills are running "
            f"or waiting, of the {MAX_RESTORES_PER_ACCOUNT} AWS runs at once, and "
            f"{limits.reserved_slots} are kept for approved restores "
            "(PITR_BOT_DRILL_RESERVED_SLOTS). Try the drill later."
        )
    return None
