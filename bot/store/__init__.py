"""Where requests, announcements and the audit trail live: the single source of truth.

Every write of a request is a compare-and-set on its `version`: `save(old, new)` succeeds only
if nobody else saved since `old` was read. That is what makes a double click, a Slack retry
or a second replica harmless. A transition's announcements (`announce`) and audit entries
(`audit`) are written in the same write: a crash keeps all of them or none, and a reader who
sees the new state also sees its audit entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from bot.drills.model import Drill, DrillState
from bot.items.jobs import ItemJob, JobState
from bot.restores import RestoreRequest, State
from bot.store.records import AuditEvent, Change, OutboxItem, StoreMissing

__all__ = ["AuditEvent", "Change", "OutboxItem", "Store", "open_store"]


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
        still `old.version`; None, and nothing written, if someone won.

        A restore entering RESTORING takes one of its account's 50 slots in the same write
        (leaving RESTORING frees it, see bot/batches/model.py slot_move): with every slot taken the
        write is refused like a lost compare-and-set, whichever replica tries."""
        ...

    def save_all(
        self, changes: Sequence[Change], audit: Sequence[AuditEvent] = ()
    ) -> list[RestoreRequest] | None:
        """Several compare-and-sets in one atomic write (a batch's leader and members): every
        `new` is stored, with its announcements and `audit`, or none is (None: someone won).
        At most one of them may take or free a restore slot."""
        ...

    def find(
        self,
        states: Iterable[State] | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[RestoreRequest]: ...

    # -- restore drills (bot/drills/model.py): the same compare-and-set on `version` ----------
    def drill_add(
        self, drill: Drill, announce: Sequence[str] = (), audit: Sequence[AuditEvent] = ()
    ) -> bool:
        """Insert `drill` unless its id exists (a slot already claimed): False then."""
        ...

    def drill_get(self, drill_id: str) -> Drill | None: ...

    def drill_save(
        self,
        old: Drill,
        new: Drill,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> Drill | None:
        """Write `new` if the stored version is still `old.version`; None if someone won.
        Outbox items for `announce` carry the drill's id (its `restore_id`)."""
        ...

    def drill_find(
        self,
        states: Iterable[DrillState] | None = None,
        source: str | None = None,
        limit: int = 100,
    ) -> list[Drill]:
        """Drills, newest first. History for an ETA: `drill_find([PASSED], source=TABLE)`
        and each drill's `restore_duration`."""
        ...

    # -- item jobs (bot/items/jobs.py): compare / copy back / undo, same compare-and-set ---
    def job_add(
        self, job: ItemJob, announce: Sequence[str] = (), audit: Sequence[AuditEvent] = ()
    ) -> bool:
        """Insert `job` unless its id exists: False then."""
        ...

    def job_get(self, job_id: str) -> ItemJob | None: ...

    def job_save(
        self,
        old: ItemJob,
        new: ItemJob,
        announce: Sequence[str] = (),
        audit: Sequence[AuditEvent] = (),
    ) -> ItemJob | None:
        """Write `new` if the stored version is still `old.version`; None if someone won.
        Outbox items for `announce` carry the job's id (their `restore_id`)."""
        ...

    def job_find(self, states: Iterable[JobState] | None = None, limit: int = 100) -> list[ItemJob]:
        """Item jobs, newest first."""
        ...

    def due(
        self, now: datetime, owner: str, limit: int = 1000
    ) -> tuple[list[RestoreRequest], datetime | None]:
        """Up to `limit` in-flight requests `owner` should check now, and when the next one
        not returned falls due (None: nothing else in flight). See check_due_at."""
        ...

    def account_load(self, account: str) -> tuple[int, int]:
        """(restore slots taken, requests APPROVED) of `account` ("" for the bot's own), read
        without parsing a request document: a start needs to read the queue's order only when
        the approved ones do not all fit in the free slots."""
        ...

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

    def audit_pages(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 1000,
    ) -> Iterator[list[AuditEvent]]:
        """Every entry with since <= at < until, oldest first, one page (at most `page_size`)
        at a time: an export of years of entries holds one page in memory, never the trail."""
        ...

    def first_use(self, key: str, until: datetime) -> bool:
        """Remember `key` until `until`: True the first time, False while it is remembered.

        One conditional write, so replicas sharing the store agree on which request was first
        (used to drop replayed Slack requests: key = timestamp + signature).
        """
        ...

    def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...

    def close(self) -> None: ...


def open_store(url: str, create: bool = True) -> Store:
    """The store at `url`; with create=False (read-only commands) a missing one is an error."""
    if url.startswith("sqlite:///"):
        from bot.store.sqlite import SqliteStore

        path = url.removeprefix("sqlite:///")
        if not create and path != ":memory:" and not Path(path).is_file():
            raise StoreMissing(
                f"no state database at {Path(path).resolve()} (PITR_BOT_STATE={url}, "
                f"relative to {Path.cwd()}); run this where the bot keeps its state, "
                "or set PITR_BOT_STATE"
            )
        return SqliteStore(path)
    if url.startswith("dynamodb://"):
        from bot.store.dynamodb import DynamoStore

        return DynamoStore(url.removeprefix("dynamodb://"), create=create)
    raise ValueError(f"unsupported PITR_BOT_STATE {url!r}: use sqlite:///PATH or dynamodb://TABLE")
