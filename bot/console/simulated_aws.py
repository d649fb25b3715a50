"""botocore event hooks that make an in-process moto client behave like real DynamoDB.

moto restores tables instantly and its PITR window never moves; these hooks
rewrite parsed responses on a concrete client so polling/validation code paths
get exercised without a proxy.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["CreatingSimulation", "Hook", "simulate_creating", "widen_window"]

_ids = itertools.count(1)


class Hook:
    """Handle for handlers registered on one client; call unregister() to remove them."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._registered: list[tuple[str, Callable[..., None], str]] = []

    def _register(self, event: str, handler: Callable[..., None]) -> None:
        uid = f"pitr-sim-hook-{next(_ids)}"
        self._client.meta.events.register(event, handler, unique_id=uid)
        self._registered.append((event, handler, uid))

    def unregister(self) -> None:
        """Remove every handler this hook registered (idempotent)."""
        for event, handler, uid in self._registered:
            self._client.meta.events.unregister(event, handler, unique_id=uid)
        self._registered.clear()


class CreatingSimulation(Hook):
    """State of simulate_creating(): restored targets and DescribeTable call count."""

    def __init__(self, client: Any, seconds: float, clock: Callable[[], float]) -> None:
        super().__init__(client)
        self.seconds = seconds
        self.clock = clock
        self.describe_calls = 0
        self.restored_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def is_creating(self, table: str) -> bool:
        """Whether `table` is still inside its simulated CREATING window."""
        with self._lock:
            started = self.restored_at.get(table)
        return started is not None and self.clock() < started + self.seconds

    def _after_restore(self, http_response: Any, parsed: dict[str, Any], **kwargs: Any) -> None:
        desc = parsed.get("TableDescription")
        if not isinstance(desc, dict) or "TableName" not in desc:
            return  # error response; after-call fires for those too
        with self._lock:
            self.restored_at[desc["TableName"]] = self.clock()
        desc["TableStatus"] = "CREATING"

    def _after_describe(self, http_response: Any, parsed: dict[str, Any], **kwargs: Any) -> None:
        with self._lock:
            self.describe_calls += 1
        table = parsed.get("Table")
        if isinstance(table, dict) and self.is_creating(str(table.get("TableName"))):
            table["TableStatus"] = "CREATING"


def simulate_creating(
    client: Any, seconds: float, clock: Callable[[], float] = time.monotonic
) -> CreatingSimulation:
    """Make tables restored through `client` report CREATING for `seconds` (per `clock`).

    Pass a fake clock to drive the window deterministically.
    """
    sim = CreatingSimulation(client, seconds, clock)
    sim._register("after-call.dynamodb.RestoreTableToPointInTime", sim._after_restore)
    sim._register("after-call.dynamodb.DescribeTable", sim._after_describe)
    return sim


def widen_window(client: Any, latest_lag: timedelta = timedelta(minutes=5)) -> Hook:
    """Rewrite DescribeContinuousBackups to AWS's moving window: now-N days .. now-lag.

    N is RecoveryPeriodInDays (default 35). A table whose PITR is turned on through `client`
    after this hook is registered starts its window then, as on AWS (nothing before that moment
    can be restored); tables enabled before it have had PITR for longer than any window.
    Values are aware UTC datetimes, as botocore returns.
    """
    hook = Hook(client)
    enabled_at: dict[str, datetime] = {}
    remember_params(hook)

    def handler(http_response: Any, parsed: dict[str, Any], **kwargs: Any) -> None:
        desc = parsed.get("ContinuousBackupsDescription", {}).get("PointInTimeRecoveryDescription")
        if not isinstance(desc, dict) or desc.get("PointInTimeRecoveryStatus") != "ENABLED":
            return
        days = float(desc.get("RecoveryPeriodInDays") or 35)
        now = datetime.now(UTC)
        earliest = now - timedelta(days=days)
        since = enabled_at.get(_table(kwargs))
        if since is not None and since > earliest:
            earliest = since
        desc["EarliestRestorableDateTime"] = earliest
        desc["LatestRestorableDateTime"] = max(earliest, now - latest_lag)

    def enabled(http_response: Any, parsed: dict[str, Any], **kwargs: Any) -> None:
        desc = parsed.get("ContinuousBackupsDescription", {}).get("PointInTimeRecoveryDescription")
        table = _table(kwargs)
        if not isinstance(desc, dict) or desc.get("PointInTimeRecoveryStatus") != "ENABLED":
            enabled_at.pop(table, None)  # turned off: turned on again later, it starts anew
            return
        if not (kwargs.get("context") or {}).get(WAS_ON):  # only a change of period otherwise
            enabled_at[table] = datetime.now(UTC)

    def before_update(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        try:
            desc = client.describe_continuous_backups(TableName=params.get("TableName", ""))
        except Exception:  # noqa: BLE001 - no such table: the update itself will say so
            return
        pitr = desc["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
        context[WAS_ON] = pitr.get("PointInTimeRecoveryStatus") == "ENABLED"

    hook._register("before-parameter-build.dynamodb.UpdateContinuousBackups", before_update)
    hook._register("after-call.dynamodb.DescribeContinuousBackups", handler)
    hook._register("after-call.dynamodb.UpdateContinuousBackups", enabled)
    return hook


WAS_ON = "pitr_sim_was_on"  # PITR was on before this UpdateContinuousBackups
PARAMS = "pitr_sim_params"  # where remember_params() leaves a call's parameters


def remember_params(hook: Hook) -> None:
    """Keep each DynamoDB call's parameters in its request context, for after-call hooks."""

    def keep(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context[PARAMS] = dict(params)

    hook._register("before-parameter-build.dynamodb", keep)


def _table(kwargs: dict[str, Any]) -> str:
    params = (kwargs.get("context") or {}).get(PARAMS, {})
    return str(params.get("TableName") or params.get("SourceTableName") or "")
