"""bot/items/limits.py: caps per person and in all, and free disk, on a real SqliteStore.
A refused job is never inserted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.items.jobs import ItemJob
from bot.items.limits import MB, ItemLimits, JobGate
from bot.store.sqlite import SqliteStore

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(str(tmp_path / "pitr.db"))
    yield s
    s.close()


def job(table: str, user: str, restore: str | None = None) -> ItemJob:
    return ItemJob(
        restore_id=restore or f"r-{table}",
        live_table=table,
        restored_table=f"{table}-restored",
        channel="C1",
        thread_ts="1.1",
        requested_by=user,
        created_at=NOW,
        job_path="",
    )


def admit(gate: JobGate, store: SqliteStore, new: ItemJob) -> str | None:
    return gate.admit(new, lambda: store.job_add(new))


def test_caps_per_person_and_in_all_refuse_past_the_limit_and_insert_nothing(store, tmp_path):
    gate = JobGate(store, tmp_path, ItemLimits(per_user=2, total=3, min_free_bytes=0))
    assert admit(gate, store, job("a", "U1")) is None
    assert admit(gate, store, job("b", "U1")) is None
    refused = admit(gate, store, job("c", "U1"))
    assert "You already have 2 comparisons running" in refused
    assert "PITR_BOT_MAX_ITEM_JOBS_PER_USER" in refused
    assert admit(gate, store, job("c", "U2")) is None
    refused = admit(gate, store, job("d", "U3"))
    assert "3 comparisons are running" in refused and "PITR_BOT_MAX_ITEM_JOBS" in refused
    assert sorted(j.live_table for j in store.job_find()) == ["a", "b", "c"]


def test_one_comparison_per_table_or_restore(store, tmp_path):
    gate = JobGate(store, tmp_path, ItemLimits(per_user=5, total=5, min_free_bytes=0))
    assert admit(gate, store, job("orders", "U1", "r1")) is None
    # Another restore of the same live table, by someone else: refused too.
    refused = admit(gate, store, job("orders", "U2", "r2"))
    assert "A comparison of `orders` is already running (started by U1" in refused
    assert len(store.job_find()) == 1


def test_too_little_free_disk_refuses_with_the_numbers(store, tmp_path):
    limits = ItemLimits(per_user=5, total=5, min_free_bytes=1024 * MB)
    gate = JobGate(store, tmp_path / "jobs", limits, free=lambda path: 300 * MB)
    refused = admit(gate, store, job("orders", "U1"))
    assert "Only 300 MB are free" in refused and "at least 1024 MB" in refused
    assert "PITR_BOT_MIN_FREE_DISK_MB" in refused
    assert store.job_find() == []
