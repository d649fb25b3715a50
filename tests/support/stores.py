"""Store doubles shared by the unit tests."""

from __future__ import annotations

from typing import Any


class NoLoneAudits:
    """A store that notes audit entries written apart from the transition they record
    (`lone`): every transition's entries must go in the same write as the transition."""

    def __init__(self, store: Any):
        self._store = store
        self.lone: list[str] = []

    def audit(self, event: Any) -> None:
        self.lone.append(event.event)
        self._store.audit(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
