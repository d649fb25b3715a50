"""Where requests, announcements and the audit trail live: the single source of truth.

Every write of a request is a compare-and-set on its `version`: `save(old, new)` succeeds only
if nobody else saved since `old` was read. That is what makes a double click, a Slack retry
or a second replica harmless.
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
    def add(self, req: RestoreRequest, announce: Sequence[str] = ()) -> None: ...

    def get(self, restore_id: str) -> RestoreRequest | None: ...

    def save(
        self, old: RestoreRequest, new: RestoreRequest, announce: Sequence[str] = ()
    ) -> RestoreRequest | None:
        """Write `new` if the stored version is still `old.version`; None if someone won."""
        ...

    def find(
        self,
        states: Iterable[State] | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[RestoreRequest]: ...

    def due(
        self, now: datetime, owner: str, limit: int = 1000
    ) -> tuple[list[RestoreRequest], datetime | None]:
        """Up to `limit` in-flight requests `owner` should check now, and when the next one
        not returned falls due (None: nothing else in flight). See check_due_at."""
        ...

    def outbox_due(self, now: datetime, limit: int = 50) -> list[OutboxItem]: ...

    def outbox_claim(self, item_id: int | str, owner: str, until: datetime) -> bool:
        """Take an item for sending; False if another sender holds it (replicas)."""
        ...

    def outbox_done(self, item_id: int | str) -> None: ...

    def outbox_retry(self, item_id: int | str, next_at: datetime, error: str) -> None: ...

    def audit(self, event: AuditEvent) -> None: ...

    def audit_events(
        self, since: datetime | None = None, table: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]: ...

    def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...

    def close(self) -> None: ...


def check_due_at(
    next_check_at: datetime | None,
    lease_owner: str | None,
    lease_until: datetime | None,
    owner: str,
) -> datetime | None:
    """When `owner` should next look at an in-flight request (None: now).

    A request leased by another replica is not ours to check before its lease runs out.
    """
    at = next_check_at
    if lease_owner not in (None, owner) and lease_until is not None:
        at = lease_until if at is None else max(at, lease_until)
    return at


def split_due(
    rows: Iterable[tuple[str, datetime | None]], now: datetime, limit: int
) -> tuple[list[str], datetime | None]:
    """(id, due at) rows -> up to `limit` ids due now, most overdue first, and when the
    first of the rest falls due (`now` if one is already due, None if there is none)."""
    ordered = sorted(rows, key=lambda row: (row[1] is not None, row[1] or now))
    due = [rid for rid, at in ordered[:limit] if at is None or at <= now]
    rest = ordered[len(due) :]
    return due, (rest[0][1] or now) if rest else None


def open_store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        from bot.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith("dynamodb://"):
        from bot.store.dynamodb import DynamoStore

        return DynamoStore(url.removeprefix("dynamodb://"))
    raise ValueError(f"unsupported PITR_BOT_STATE {url!r}: use sqlite:///PATH or dynamodb://TABLE")
