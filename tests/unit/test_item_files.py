"""Job files (PITR_BOT_WORK_DIR) do not pile up: a settled job's files are deleted once the
retention has passed (Undo copy back is refused after that, saying why), a job that runs or
waits for a decision keeps them, and files no job owns are swept at start-up."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.items.jobs import ItemJob, JobState
from bot.items.recovery import ItemRecovery
from bot.policy import Policy
from bot.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=7)


class NoAws:
    """A DynamoDB client that must not be used."""

    def __getattr__(self, name):
        raise AssertionError(f"unexpected AWS call: {name}")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(str(tmp_path / "state.db"))
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def work(tmp_path) -> Path:
    path = tmp_path / "pitr-bot-jobs"
    path.mkdir()
    return path


def engine(store, work: Path, clock: Clock) -> ItemRecovery:
    return ItemRecovery(
        store,
        NoAws(),
        Policy(copy_back=True),
        lambda group: set(),
        clock,
        work,
        "me",
        retention=RETENTION,
    )


def files_for(work: Path, job_id: str) -> list[Path]:
    paths = [work / f"{job_id}{suffix}" for suffix in (".sqlite", ".sqlite-wal", ".sqlite-shm")]
    paths.append(work / f"{job_id}.jsonl")
    for path in paths:
        path.write_text("table data", encoding="utf-8")
    return paths


def add_job(store, work: Path, state: JobState, last_step: datetime) -> tuple[ItemJob, list]:
    job = ItemJob(
        restore_id="r1",
        live_table="orders",
        restored_table="orders-copy",
        channel="C1",
        thread_ts="1.0",
        requested_by="U1",
        created_at=last_step,
        job_path="",
        state=state,
        updated_at=last_step,
        copy_counts={"planned": 3, "written": 3, "conflict": 0, "failed": 0},
    )
    job = replace(job, job_path=str(work / f"{job.id}.sqlite"))
    assert store.job_add(job)
    return job, files_for(work, job.id)


def test_a_finished_job_s_files_go_after_the_retention_and_undo_then_says_why(store, work, clock):
    job, paths = add_job(store, work, JobState.COPIED, NOW - RETENTION - timedelta(hours=1))
    items = engine(store, work, clock)

    assert items.remove_expired() == 1

    assert not any(p.exists() for p in paths)
    kept = store.job_get(job.id)
    assert kept.files_removed_at == NOW and kept.state == JobState.COPIED
    assert "job_files_removed" in [e.event for e in store.audit_events()]
    audit_before = len(store.audit_events())
    refused = items.request_undo(job.id, "U1")
    assert not refused.ok
    assert "no longer possible" in refused.message
    assert "PITR_BOT_ITEMS_RETENTION_DAYS" in refused.message
    # A refusal leaves no trace: same record, no audit entry, no file created again.
    assert store.job_get(job.id) == kept
    assert len(store.audit_events()) == audit_before
    assert not any(p.exists() for p in paths)
    assert items.remove_expired() == 0  # once


def test_within_the_retention_the_files_stay_and_undo_can_be_asked(store, work, clock):
    job, paths = add_job(store, work, JobState.COPIED, NOW - RETENTION + timedelta(hours=1))
    items = engine(store, work, clock)

    assert items.remove_expired() == 0
    assert all(p.exists() for p in paths)
    assert items.request_undo(job.id, "U1").ok

    clock.now = NOW + timedelta(days=30)  # waiting for a decision: kept however long
    assert items.remove_expired() == 0
    assert all(p.exists() for p in paths)


@pytest.mark.parametrize("state", [JobState.COPYING, JobState.COPY_REQUESTED, JobState.COMPARING])
def test_a_job_that_runs_or_waits_keeps_its_files(store, work, clock, state):
    _, paths = add_job(store, work, state, NOW - timedelta(days=90))
    assert engine(store, work, clock).remove_expired() == 0
    assert all(p.exists() for p in paths)


def test_a_compared_job_past_the_retention_is_cleaned_and_copy_back_refused(store, work, clock):
    job, paths = add_job(store, work, JobState.COMPARED, NOW - timedelta(days=8))
    job = store.job_get(job.id)
    items = engine(store, work, clock)
    assert items.remove_expired() == 1
    assert not any(p.exists() for p in paths)
    refused = items.request_copy(job.id, "U1", include_changed=False)
    assert not refused.ok and "Compare again" in refused.message
    assert store.job_get(job.id).state == JobState.COMPARED


def test_start_up_sweep_removes_files_of_jobs_that_no_longer_exist(store, work, clock):
    job, kept = add_job(store, work, JobState.COPIED, NOW)
    orphans = files_for(work, "j0123456789ab")  # no such job in the store
    other = work / "README.txt"  # not a job file: never touched
    other.write_text("notes", encoding="utf-8")

    assert engine(store, work, clock).sweep_orphans() == 4

    assert not any(p.exists() for p in orphans)
    assert all(p.exists() for p in kept)
    assert other.exists()


def test_sweep_with_no_work_dir_yet_does_nothing(store, tmp_path, clock):
    items = engine(store, tmp_path / "not-yet", clock)
    assert items.sweep_orphans() == 0
    assert not (tmp_path / "not-yet").exists()
