"""Classify the difference between a restored copy and the live table, key by key (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.items.values import Item, same_value


class Kind(StrEnum):
    MISSING = "missing"  # in the restored copy, gone from live
    CHANGED = "changed"  # same key, different attributes
    ADDED = "added"  # only in live
    UNCHANGED = "unchanged"


def classify(restored: Item | None, live: Item | None) -> Kind:
    if restored is None and live is None:
        raise ValueError("an item must exist on at least one side")
    if live is None:
        return Kind.MISSING
    if restored is None:
        return Kind.ADDED
    names = restored.keys() | live.keys()
    if all(same_value(restored.get(n), live.get(n)) for n in names):
        return Kind.UNCHANGED
    return Kind.CHANGED


@dataclass(frozen=True)
class AttributeDiff:
    """Which attributes differ, by name (restored copy compared with live)."""

    only_restored: tuple[str, ...] = ()  # live lost them
    only_live: tuple[str, ...] = ()  # live gained them
    changed: tuple[str, ...] = ()  # both have them, with different values

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.only_restored + self.only_live + self.changed))

    def summary(self, limit: int = 5) -> str:
        """Short plain words for an example line, e.g. `status, total changed; note removed`."""
        parts = []
        for label, names in (
            ("changed", self.changed),
            ("removed in live", self.only_restored),
            ("added in live", self.only_live),
        ):
            if names:
                shown = ", ".join(names[:limit])
                more = f" and {len(names) - limit} more" if len(names) > limit else ""
                parts.append(f"{shown}{more} {label}")
        return "; ".join(parts) or "no difference"


def attribute_diff(restored: Item | None, live: Item | None) -> AttributeDiff:
    restored, live = restored or {}, live or {}
    return AttributeDiff(
        only_restored=tuple(sorted(restored.keys() - live.keys())),
        only_live=tuple(sorted(live.keys() - restored.keys())),
        changed=tuple(
            sorted(n for n in restored.keys() & live.keys() if not same_value(restored[n], live[n]))
        ),
    )
