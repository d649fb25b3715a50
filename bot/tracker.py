"""The tracker: a local APScheduler clock that drives the workflow.

APScheduler is only a clock here (its job stores must not be shared between processes); the
store holds the truth, so a restarted process simply picks up where the store says things are.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler

from bot.announcer import Announcer
from bot.workflow import Workflow

log = logging.getLogger(__name__)


class Tracker:
    def __init__(self, workflow: Workflow, announcer: Announcer, poll_seconds: float):
        self.workflow = workflow
        self.announcer = announcer
        self.poll_seconds = poll_seconds
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.scheduler.add_job(
            self.tick,
            "interval",
            seconds=poll_seconds,
            id="track",
            max_instances=1,  # a slow tick is never run twice at once
            coalesce=True,  # missed ticks (e.g. after a pause) run once, not in a burst
            misfire_grace_time=None,
        )

    def start(self) -> None:
        self.scheduler.start()
        self.scheduler.add_job(self.tick, id="resume")  # resume in-flight restores at once

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def tick(self) -> None:
        try:
            self.workflow.track()
        except Exception:  # noqa: BLE001 - one bad tick must not stop tracking
            log.exception("tracker tick failed; next tick in %ss", self.poll_seconds)
        finally:
            self.announcer.kick()
