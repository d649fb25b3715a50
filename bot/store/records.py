"""What the store keeps besides requests: owed announcements and audit events.

Apart from the Store protocol (bot/store/__init__.py) so that the stores can import them
without importing the package that opens them (no import cycle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.restores import RestoreRequest


@dataclass(frozen=True)
class OutboxItem:
    """An announcement owed to Slack for a transition; sent at least once, in order."""

    id: int | str
    restore_id: str
    kind: str
    created_at: datetime
    attempts: int = 0
    next_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Change:
    """One compare-and-set of a request within a write of several (Store.save_all)."""

    old: RestoreRequest
    new: RestoreRequest
    announce: Sequence[str] = ()


class RequestExists(ValueError):
    """A request id that is already stored (ids are random: a bug, never a user's doing)."""


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    event: str
    restore_id: str | None
    actor: str | None
    channel: str | None
    table: str | None
    detail: str = ""

    def to_json(self) -> dict[str, str | None]:
        return {
            "at": self.at.isoformat(),
            "event": self.event,
            "restore_id": self.restore_id,
            "actor": self.actor,
            "channel": self.channel,
            "table": self.table,
            "detail": self.detail,
        }


class StoreMissing(Exception):
    """A read-only command found no store where it looked; the message says where."""
