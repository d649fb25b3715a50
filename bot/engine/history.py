"""The ETA of a restore from the store's history: finished restores and passed drills.

Read twice in a restore's life: for the card (nothing has started yet) and again when the
restore starts, because a request can wait hours for approval or a free slot while other
restores of the table finish. The estimate read at the start is the one the progress reply,
/pitr-status, the App Home and the polling schedule all use (bot/eta.py renders it against
the start time at every render).
"""

from __future__ import annotations

from bot import eta as etas
from bot.drills.model import DrillState
from bot.engine.context import Context
from bot.period_change import RESTORE
from bot.restores import State


def estimate_for(
    ctx: Context, source: str, size_bytes: int | None = None, items: int | None = None
) -> etas.Eta | None:
    """The expected duration of a restore of `source`, from the store's finished restores."""
    own = ctx.store.find(states=[State.ACTIVE], source=source, limit=etas.HISTORY)
    # Other tables' restores only stand in when this table has none of its own: reading
    # (and parsing) up to 200 finished restores at every start made starting N restores cost
    # N x 200 document reads (issue 22's profile of 500 restores in flight).
    others = [] if own else ctx.store.find(states=[State.ACTIVE], limit=200)
    history = [
        etas.Sample(
            r.source,
            (r.finished_at - r.restore_called_at).total_seconds(),
            r.source_bytes,
            r.source_items,
        )
        for r in [*own, *(r for r in others if r.source != source)]
        if r.finished_at is not None and r.restore_called_at is not None and r.kind == RESTORE
    ]
    # Drills are restores too: their durations are this table's history as well.
    passed = ctx.store.drill_find([DrillState.PASSED], source=source, limit=etas.HISTORY)
    for drill in passed:
        took = drill.restore_duration
        if took is not None:
            history.append(etas.Sample(source, took.total_seconds(), None, drill.source_items))
    return etas.estimate(source, history, size_bytes, items, ctx.min_restore_minutes)
