"""RestoreRequest <-> JSON-friendly dict, shared by every store backend."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from bot.batches.model import SlotMove, slot_move
from bot.restores import RestoreRequest, State, Window, utcnow
from bot.store.records import Change

_DATETIMES = {f.name for f in dataclasses.fields(RestoreRequest) if "datetime" in str(f.type)}


# Computed once: dataclasses.fields() at every encode/decode was a fifth of the tracking CPU
# in the profile of issue 22 (hundreds of restores in flight, a document read and written
# per poll).
_FIELDS = tuple(f.name for f in dataclasses.fields(RestoreRequest))
_KNOWN = frozenset(_FIELDS)
TUPLES = {"approvals", "source_indexes", "batch_members"}


def to_record(req: RestoreRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(req, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Window):
            value = {"earliest": value.earliest.isoformat(), "latest": value.latest.isoformat()}
        elif isinstance(value, State):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def from_record(data: dict[str, Any]) -> RestoreRequest:
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _KNOWN:
            continue  # written by a newer version; ignore rather than crash
        if key in _DATETIMES and isinstance(value, str):
            value = datetime.fromisoformat(value)
        elif key == "window" and value:
            value = Window(
                datetime.fromisoformat(value["earliest"]), datetime.fromisoformat(value["latest"])
            )
        elif key == "state":
            value = State(value)
        elif key in TUPLES and value is not None:
            value = tuple(value)
        kwargs[key] = value
    return RestoreRequest(**kwargs)


def prepare(changes: Any) -> tuple[list[RestoreRequest], SlotMove | None]:
    """What a store writes for `changes` (Store.save_all), in either backend: each `new` with
    its next version, and the one restore slot the write takes or frees (if any)."""
    stored = [
        dataclasses.replace(
            c.new, version=c.old.version + 1, updated_at=c.new.updated_at or utcnow()
        )
        for c in changes
    ]
    moves = [m for c in changes if (m := slot_move(c.old, c.new)) is not None]
    if len(moves) > 1:
        raise ValueError("one write may take or free at most one restore slot")
    return stored, (moves[0] if moves else None)


class SavesThroughSaveAll:
    """Store.save as a write of one change: both stores have one compare-and-set path."""

    def save_all(self, changes: Any, audit: Any = ()) -> list[RestoreRequest] | None:
        raise NotImplementedError

    def save(
        self, old: RestoreRequest, new: RestoreRequest, announce: Any = (), audit: Any = ()
    ) -> RestoreRequest | None:
        saved = self.save_all([Change(old, new, announce)], audit)
        return saved[0] if saved else None
