"""Stopping the tracker while APScheduler is handing a one-shot job to its executor.

APScheduler 3 marks itself STOPPED before it takes its job-store lock; a one-shot ("date") job
being handed over at that moment is then looked for among the not-yet-started jobs, not found,
and the scheduler thread dies with JobLookupError: a traceback on the terminal at every unlucky
SIGTERM (seen in the suite as "No job by the id of track was found").
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from apscheduler.schedulers.base import STATE_RUNNING

from bot.tracker import Tracker


class _Flow:
    next_due = None

    def track(self) -> None:
        pass


class _Announcer:
    def kick(self) -> None:
        pass


def test_stop_while_a_job_is_being_handed_over_leaves_no_traceback(monkeypatch) -> None:
    crashes: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashes.append(args.exc_value))

    tracker = Tracker(_Flow(), _Announcer(), poll_seconds=60)  # type: ignore[arg-type]
    tracker.scheduler.start()
    scheduler_thread = tracker.scheduler._thread
    executor = tracker.scheduler._lookup_executor("default")
    handing_over = threading.Event()
    let_go = threading.Event()
    original = executor.submit_job

    def slow_submit(job, run_times):
        if job.id == "reminder":
            handing_over.set()
            let_go.wait(30)
        return original(job, run_times)

    monkeypatch.setattr(executor, "submit_job", slow_submit)
    tracker.scheduler.add_job(lambda: None, "date", run_date=datetime.now(UTC), id="reminder")
    assert handing_over.wait(30)

    stopper = threading.Thread(target=tracker.stop)
    stopper.start()
    # stop() has begun (the scheduler no longer takes new rounds) while the job is in hand.
    for _ in range(1000):
        if tracker.scheduler.state != STATE_RUNNING or not stopper.is_alive():
            break
        stopper.join(0.01)
    let_go.set()
    stopper.join(30)
    scheduler_thread.join(30)

    assert not stopper.is_alive()
    assert crashes == []
    assert not tracker.scheduler.running
