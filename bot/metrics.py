"""Prometheus metrics for /metrics: requests, decisions, restores by state, lag, errors.

Each Services has its own registry (several apps can live in one test process); counts that
only the store knows (restores by state, tracking lag) are read from it at scrape time, so
every replica reports the same truth.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.drills.model import FINAL as DRILL_FINAL
from bot.drills.model import DrillState
from bot.restores import State
from bot.store import Store

TRACKED = (State.REQUESTED, State.APPROVED, State.RESTORING)


class Metrics:
    def __init__(self, store: Store, clock: Callable[[], datetime]):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pitr_bot_requests",
            "Slack requests received, by command or button",
            ["kind"],
            registry=self.registry,
        )
        self.events = Counter(
            "pitr_bot_events",
            "Audit events: requests, approvals, refusals, denials, expiries, restores",
            ["event"],
            registry=self.registry,
        )
        self.slack_errors = Counter(
            "pitr_bot_slack_errors", "Slack Web API failures", ["error"], registry=self.registry
        )
        self.aws_errors = Counter(
            "pitr_bot_aws_errors", "AWS API errors", ["code"], registry=self.registry
        )
        # Everything read from the store, restores and drills alike, goes through one cache.
        self.store_gauges = _StoreCollector(store, clock)
        self.registry.register(self.store_gauges)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    """Gauges read from the store, kept for STORE_SECONDS: a scrape storm is not a query storm."""

    STORE_SECONDS = 2.0

    def __init__(self, store: Store, clock: Callable[[], datetime]):
        self.store = store
        self.clock = clock
        self._cached: list[Metric] = []
        self._cached_at = float("-inf")
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self.clock().timestamp()  # the bot's clock: a test's fake clock ages it too
            if not 0 <= now - self._cached_at <= self.STORE_SECONDS:
                self._cached = list(self._read())
                self._cached_at = now
            yield from self._cached

    def _read(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily(
            "pitr_bot_restores", "Requests not yet finished, by state", labels=["state"]
        )
        lag = GaugeMetricFamily(
            "pitr_bot_tracking_lag_seconds",
            "Longest time a restore in flight is overdue for its next check",
        )
        now = self.clock()
        worst = 0.0
        for state in TRACKED:
            found = self.store.find(states=[state], limit=1000)
            by_state.add_metric([state.value], len(found))
            if state == State.RESTORING:
                for req in found:
                    # Checks are spaced by the ETA (up to PITR_BOT_POLL_MAX_SECONDS apart):
                    # lag is how late the next one is, not how long ago the last one was.
                    due = req.next_check_at or req.updated_at
                    if due is not None:
                        worst = max(worst, (now - due).total_seconds())
        lag.add_metric([], worst)
        yield by_state
        yield lag
        yield from self._drills()

    def _drills(self) -> Iterator[Metric]:
        """Per table: the last finished drill's restore time and the last successful drill's
        time, for an alert such as "no successful drill in 30 days"."""
        duration = GaugeMetricFamily(
            "pitr_bot_drill_duration_seconds",
            "Restore time (call to ACTIVE) of the last finished drill of a table",
            labels=["table"],
        )
        success = GaugeMetricFamily(
            "pitr_bot_drill_last_success_timestamp_seconds",
            "Unix time of the last successful restore drill of a table",
            labels=["table"],
        )
        seen_last: set[str] = set()
        seen_ok: set[str] = set()
        for drill in self.store.drill_find(states=DRILL_FINAL, limit=1000):  # newest first
            took = drill.restore_duration
            if drill.source not in seen_last and took is not None:
                seen_last.add(drill.source)
                duration.add_metric([drill.source], took.total_seconds())
            if drill.state == DrillState.PASSED and drill.source not in seen_ok:
                seen_ok.add(drill.source)
                when = drill.finished_at or drill.created_at
                success.add_metric([drill.source], when.timestamp())
        yield duration
        yield success
