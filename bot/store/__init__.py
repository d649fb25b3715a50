"""Where requests, announcements and the audit trail live: the single source of truth.

Every write of a request is a compare-and-set on its `version`: `save(old, new)` succeeds only
if nobody else saved since `old` was read. That is what makes a double click, a Slack retry
or a second replica harmless. A transition's announcements (`announce`) and audit entries
(`audit`) are written in the same write: a crash keeps all of them or none, and a reader who
sees the new state also sees its audit entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.restores import RestoreRequest, State


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


class Store(Protocol):
    def add(
        self,
        req: RestoreRequest,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> None: ...

    def get(self, restore_id: str) -> RestoreRequest | None: ...

    def save(
        self,
        old: RestoreRequest,
        new: RestoreRequest,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> RestoreRequest | None:
        """Write `new` (with its announcements and audit entries) if the stored version is
        still `old.version`; None, and nothing written, if someone won."""
        ...

    def find(
        self,
        states: Iterable[State] | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[RestoreRequest]: ...

    def outbox_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]: ...

    def outbox_claim(self, item_id: int | str, owner: str, until: datetime) -> bool:
        """Take an item for sending; False if another sender holds it (replicas)."""
        ...

    def outbox_done(self, item_id: int | str) -> None: ...

    def outbox_retry(self, item_id: int | str, next_at: datetime, error: str) -> None: ...

    def audit(self, event: AuditEvent) -> None:
        """An entry with no transition (a refusal, a skipped reminder)."""
        ...

    def audit_events(
        self, since: datetime | None = None, table: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]: ...

    def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...

    def close(self) -> None: ...


def open_store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        from bot.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith("dynamodb://"):
        from bot.store.dynamodb import DynamoStore

        return DynamoStore(url.removeprefix("dynamodb://"))
    raise ValueError(f"unsupported PITR_BOT_STATE {url!r}: use sqlite:///PATH or dynamodb://TABLE")
