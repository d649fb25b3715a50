"""Prometheus metrics for /metrics: requests, decisions, restores by state, lag, errors.

Each Services has its own registry (several apps can live in one test process); counts that
only the store knows (restores by state, tracking lag) are read from it at scrape time, so
every replica reports the same truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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
        self.registry.register(_StoreCollector(store, clock))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    def __init__(self, store: Store, clock: Callable[[], datetime]):
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
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
