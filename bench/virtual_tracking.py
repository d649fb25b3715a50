"""Notice lag and DescribeTable calls on a virtual clock: the bot's real scheduling code and
boto3's real waiter, replayed over the same restores in uncompressed time.

Why a virtual clock: notice lag and call counts are properties of *when* each side looks,
and a loaded machine delays the looking. Compressing time multiplies those delays by the
compression; a 40-minute real run per measurement is not affordable. Here nothing waits:

- The bot: the shipped Workflow (bot/workflow.py: start, the store's due logic, polling by
  bot/polling.py, ETA from the store's history) over a real SQLite store, woken exactly when
  the real Tracker.wake_at (bot/tracker.py) says, with `clock` a VirtualClock. AWS is
  VirtualAws: a restore is CREATING for its drawn duration, then ACTIVE. The bot's notice is
  the poll that sees ACTIVE (its `finished_at`): announcing costs no virtual time here.
- The waiter: botocore's own Waiter object built from botocore's own DynamoDB waiter model
  ("TableExists": Delay and MaxAttempts are read from it, not written here), its time.sleep
  replaced by the virtual clock's. Like a script that must see the end of a 20–40-minute
  restore, it calls wait() again after each WaiterError (MaxAttempts x Delay is 8 minutes).

Both sides start restore k at the same virtual instant and see the same duration.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import botocore.session
import botocore.waiter
from benchlib import REPO  # noqa: F401 - puts the repository on sys.path

from bot.pitr import TableInfo
from bot.policy import Policy
from bot.polling import PollLimits
from bot.restores import RestoreRequest, State
from bot.store.sqlite import SqliteStore
from bot.tracker import Tracker
from bot.workflow import Workflow

EPOCH = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/"


def waiter_config() -> Any:
    """boto3's `table_exists` waiter, as botocore ships it."""
    model = botocore.session.get_session().get_waiter_model("dynamodb")
    return model.get_waiter("TableExists")


class VirtualClock:
    def __init__(self, start: datetime = EPOCH):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> datetime:
        return EPOCH + timedelta(seconds=seconds)

    def seconds(self, when: datetime | None = None) -> float:
        return ((when or self.now) - EPOCH).total_seconds()


@dataclass
class VirtualAws:
    """The two gateway calls tracking makes (bot/pitr.py): restore and DescribeTable."""

    clock: VirtualClock
    durations: dict[str, float]  # target -> seconds CREATING
    started: dict[str, float] = field(default_factory=dict)  # target -> virtual seconds
    describes: dict[str, int] = field(default_factory=dict)
    seen_active: set[str] = field(default_factory=set)  # a DescribeTable answered ACTIVE
    source_of: dict[str, str] = field(default_factory=dict)
    region: str = "us-east-1"

    def restore(self, source: str, target: str, at: Any, overrides: Any = None, **_: Any):
        self.started[target] = self.clock.seconds()
        return self._info(source, target, "CREATING")

    def table(self, name: str) -> TableInfo | None:
        self.describes[name] = self.describes.get(name, 0) + 1
        if name not in self.started:
            return None
        ends = self.started[name] + self.durations[name]
        status = "ACTIVE" if self.clock.seconds() >= ends else "CREATING"
        if status == "ACTIVE":
            self.seen_active.add(name)
        return self._info(self.source_of[name], name, status)

    def _info(self, source: str, target: str, status: str) -> TableInfo:
        self.source_of[target] = source
        return TableInfo(
            name=target,
            status=status,
            arn=ARN + target,
            item_count=5,
            size_bytes=1024,
            restored_from=ARN + source,
            created_at=self.clock.at(self.started[target]),
        )


@dataclass
class Outcome:
    """Per restore: its duration, when the contender noticed it, its DescribeTable calls."""

    duration: float
    lag: float
    calls: int


class VirtualBot:
    """The shipped Workflow and Tracker.wake_at on a virtual clock, one store for a run."""

    def __init__(self, limits: PollLimits):
        self._tmp = tempfile.TemporaryDirectory(prefix="pitr-virtual-")
        self.store = SqliteStore(str(Path(self._tmp.name) / "state.db"))
        # The run measures the bot's CPU and its schedule, not the disk: no fsync per commit
        # (on a busy shared disk the 500-restore run otherwise waits on it for hours).
        self.store._db.execute("PRAGMA synchronous=OFF")
        self.clock = VirtualClock()
        self.aws = VirtualAws(self.clock, {})
        self.flow = Workflow(
            self.store,
            self.aws,  # type: ignore[arg-type]
            Policy(),
            members=lambda _group: set(),
            clock=self.clock,
            poll_seconds=limits.poll_seconds,
            owner="virtual",
            limits=limits,
        )
        # Only its wake_at is used: when the real tracker would set its next alarm.
        self.tracker = Tracker(self.flow, announcer=None, poll_seconds=limits.poll_seconds)  # type: ignore[arg-type]

    def run(
        self, jobs: list[tuple[str, str, float]], sizes: dict[str, int] | None = None
    ) -> dict[str, Outcome]:
        """Approve every (source, target, duration) now; tick until all are ACTIVE."""
        now = self.clock()
        ids: dict[str, str] = {}
        for source, target, seconds in jobs:
            self.aws.durations[target] = seconds
            req = RestoreRequest(
                source=source,
                target=target,
                requester="U1",
                channel="C1",
                restore_at=None,
                created_at=now,
                updated_at=now,
                expires_at=now + timedelta(days=1),
                state=State.APPROVED,
                decided_at=now,
                decided_by="U2",
                approvals=("U2",),
                source_items=5,
                source_bytes=(sizes or {}).get(source, 1024),
            )
            self.store.add(req)
            ids[target] = req.id
        before = dict(self.aws.describes)
        left = dict(ids)
        while left:
            self.flow.track()
            # (The run's own bookkeeping reads no store: its CPU is the bot's, --profile.)
            for target in left.keys() & self.aws.seen_active:
                del left[target]
            if left:
                self.clock.now = self.tracker.wake_at(self.clock(), self.flow.next_due)
        out = {}
        for target, restore_id in ids.items():
            req = self.store.get(restore_id)
            if req.state != State.ACTIVE:
                raise RuntimeError(f"{target}: {req.state.value} ({req.error})")
            ended = self.aws.started[target] + self.aws.durations[target]
            calls = self.aws.describes.get(target, 0) - before.get(target, 0)
            lag = self.clock.seconds(req.finished_at) - ended
            out[target] = Outcome(self.aws.durations[target], lag, calls)
        return out

    def run_polls_inline(self) -> None:
        """Poll in the calling thread (for cProfile, which sees one thread): same work."""
        self.flow.tracking._poll_pool = _Inline()  # type: ignore[assignment]

    def close(self) -> None:
        self.flow.tracking._poll_pool.shutdown(wait=True)
        self.store.close()
        self._tmp.cleanup()


class _Inline:
    def map(self, fn: Any, items: Any) -> Any:
        return map(fn, items)

    def shutdown(self, wait: bool = True) -> None:
        pass


def waiter_run(duration: float, rearm: bool = True) -> Outcome:
    """botocore's TableExists waiter on one restore that is CREATING for `duration` seconds,
    from the restore call (virtual 0) until wait() returns."""
    config = waiter_config()
    t = [0.0]
    calls = [0]

    def describe_table(**_: Any) -> dict[str, Any]:
        calls[0] += 1
        status = "ACTIVE" if t[0] >= duration else "CREATING"
        return {"Table": {"TableName": "t", "TableStatus": status}}

    def sleep(seconds: float) -> None:
        t[0] += seconds

    waiter = botocore.waiter.Waiter("TableExists", config, describe_table)
    with mock.patch.object(botocore.waiter, "time", SimpleNamespace(sleep=sleep)):
        while True:
            try:
                waiter.wait(TableName="t")
                break
            except botocore.waiter.WaiterError:
                if not rearm:
                    raise
    return Outcome(duration, t[0] - duration, calls[0])
