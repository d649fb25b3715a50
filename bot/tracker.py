"""The tracker: a local APScheduler clock that drives the workflow.

APScheduler is only a clock here (its job stores must not be shared between processes); the
store holds the truth, so a restarted process simply picks up where the store says things are.
Each restore has its own next check time in the store (bot/polling.py); after every tick the
tracker sets its one alarm for the earliest of them, and at the latest PITR_BOT_POLL_SECONDS
away, so expiries and work left by another replica are still seen at the usual pace.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from bot.announcer import Announcer
from bot.restores import utcnow
from bot.workflow import Workflow

log = logging.getLogger(__name__)

# Never closer than this between two ticks (nor than a quarter of the densest interval): a
# restore that stays due (its poll is still running in another thread) must not turn the
# alarm into a busy loop.
MIN_GAP = 0.2
# A tick running this long (or 30 polls, if longer) is stuck: every AWS and store call has a
# timeout, so only a defect gets here, and until the tick ends this process tracks nothing.
# /healthz then says so (the platform restarts the process; the store holds the truth) and
# the log shows where the tick waits.
STALL_SECONDS = 600.0


class Tracker:
    def __init__(self, workflow: Workflow, announcer: Announcer, poll_seconds: float):
        self.workflow = workflow
        self.announcer = announcer
        self.poll_seconds = poll_seconds
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self._lock = threading.Lock()
        self._stopping = False
        self.stall_seconds = max(STALL_SECONDS, 30 * poll_seconds)
        self._tick_since: float | None = None  # when the running tick began
        self._tick_thread: int | None = None

    def start(self) -> None:
        # Leases in the store name this id: the log says which process holds a restore.
        log.info("tracking as replica %s", self.workflow.owner)
        self.scheduler.start()
        self._set_alarm(utcnow())  # resume in-flight restores at once

    def stop(self) -> None:
        with self._lock:
            if not self.scheduler.running:
                return
            self._stopping = True  # a tick finishing now sets no new alarm
        # APScheduler 3 marks itself STOPPED before taking its job-store lock, so a one-shot job
        # being handed over at that moment is "not found" and kills its thread with a traceback.
        # Pausing first stops new rounds; removing the jobs waits out the round in progress
        # (they are only alarms: the store holds the truth and start() sets them again).
        self.scheduler.pause()
        self.scheduler.remove_all_jobs()
        self.scheduler.shutdown(wait=True)

    def tick(self) -> None:
        self._tick_thread = threading.get_ident()
        self._tick_since = time.monotonic()
        try:
            self.workflow.track()
        except Exception:  # noqa: BLE001 - one bad tick must not stop tracking
            log.exception("tracker tick failed; next tick in %ss", self.poll_seconds)
            self.workflow.next_due = None
        finally:
            self._tick_since = None
            self.announcer.kick()
            self._set_alarm(self.wake_at(utcnow(), self.workflow.next_due))

    def stalled_for(self) -> float | None:
        """Seconds the running tick has taken, if past `stall_seconds`; else None."""
        since = self._tick_since
        if since is None:
            return None
        running = time.monotonic() - since
        return running if running >= self.stall_seconds else None

    def where_stalled(self) -> str:
        """The stuck tick's stack, innermost call last (for the log)."""
        frame = sys._current_frames().get(self._tick_thread or -1)
        return "".join(traceback.format_stack(frame)) if frame is not None else "(tick ended)"

    def wake_at(self, now: datetime, next_due: datetime | None) -> datetime:
        """The earliest due restore, but no later than one ordinary poll from now."""
        latest = now + timedelta(seconds=self.poll_seconds)
        wake = latest if next_due is None else min(next_due, latest)
        limits = self.workflow.limits
        gap = min(MIN_GAP, limits.min_seconds / 4, limits.poll_seconds / 4)
        return max(wake, now + timedelta(seconds=gap))

    def _set_alarm(self, when: datetime) -> None:
        with self._lock:
            if self._stopping or not self.scheduler.running:
                return
            self.scheduler.add_job(
                self.tick,
                "date",
                run_date=when,
                id="track",
                replace_existing=True,
                misfire_grace_time=None,  # late (a paused process) still runs, once
            )
