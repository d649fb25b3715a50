"""bot.items.recovery against moto: a copy back interrupted by a restart is resumed at start,
finishes with the right counts and writes no item twice; a lease another replica holds is
respected."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from bot.items.jobfile import COPY_BACK, JobFile
from bot.items.jobs import ItemJob, JobState
from bot.items.recovery import ItemRecovery
from bot.items.values import key_text, to_json
from bot.policy import Policy
from bot.store.sqlite import SqliteStore

LIVE, RESTORED = "orders", "orders-copy"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def item(i: int) -> dict:
    return {"pk": {"S": f"o-{i:02d}"}, "v": {"N": str(i)}}


class Counting:
    """The DynamoDB client, counting the item writes that succeeded."""

    def __init__(self, client):
        self._client = client
        self.puts = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def put_item(self, **kwargs):
        resp = self._client.put_item(**kwargs)
        self.puts += 1
        return resp


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        for name in (LIVE, RESTORED):
            ddb.create_table(
                TableName=name,
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        for i in range(50):
            ddb.put_item(TableName=RESTORED, Item=item(i))
            if i >= 10:  # 0..9 lost from live
                ddb.put_item(TableName=LIVE, Item=item(i))
        yield ddb


def recovery(store, client, tmp_path, owner: str) -> ItemRecovery:
    return ItemRecovery(
        store,
        client,
        Policy(copy_back=True),
        lambda group: set(),
        lambda: NOW,
        tmp_path,
        owner,
        read_units_per_second=None,
        write_units_per_second=None,
    )


def wait_state(store, job_id: str, state: JobState) -> ItemJob:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = store.job_get(job_id)
        if job.state == state:
            return job
        time.sleep(0.02)
    raise AssertionError(f"never {state}: {store.job_get(job_id)}")


def approved_copy_back(store, client, tmp_path) -> ItemJob:
    """Compared, copy back of the 10 missing asked and approved; the process then died."""
    job = ItemJob(
        restore_id="r1",
        live_table=LIVE,
        restored_table=RESTORED,
        channel="C1",
        thread_ts="1.0",
        requested_by="U1",
        created_at=NOW,
        job_path=str(tmp_path / "j1.sqlite"),
        id="j1",
    )
    store.job_add(job)
    first = recovery(store, client, tmp_path, "dead")
    first.run_compare(job.id)
    assert store.job_get(job.id).missing == 10
    assert first.request_copy(job.id, "U1", include_changed=False).ok
    asked = store.job_get(job.id)
    copying = asked.advance(
        JobState.COPYING,
        NOW,
        copy_decided_by="U2",
        lease_owner="dead",
        lease_until=NOW - timedelta(seconds=1),  # the dead replica's lease is over
    )
    assert store.job_save(asked, copying)
    # Before dying it had written 4 items and recorded them, and written a 5th unrecorded.
    files = JobFile(job.job_path)
    files.plan_copy_back()
    for i in range(5):
        files.attempt(COPY_BACK, key_text(item(i), ("pk",)))  # sent, then written
        client.put_item(TableName=LIVE, Item=item(i))
        if i < 4:
            files.record(COPY_BACK, key_text(item(i), ("pk",)), "written", previous=None)
    files.close()
    return store.job_get(job.id)


def test_an_interrupted_copy_back_is_resumed_at_start_with_right_counts(client, tmp_path):
    store = SqliteStore(str(tmp_path / "state.db"))
    job = approved_copy_back(store, client, tmp_path)
    counting = Counting(client)
    after_restart = recovery(store, counting, tmp_path, "new")
    assert after_restart.resume() == 1
    done = wait_state(store, job.id, JobState.COPIED)
    assert done.copy_counts == {
        "planned": 10,
        "written": 10,
        "conflict": 0,
        "failed": 0,
        "already": 0,
    }
    assert counting.puts == 5  # items 5..9 only: nothing written twice
    for i in range(10):
        got = client.get_item(TableName=LIVE, Key={"pk": item(i)["pk"]})["Item"]
        assert to_json(got) == to_json(item(i))
    events = [e.event for e in store.audit_events()]
    assert "copy_back_done" in events


def test_a_job_another_replica_is_running_is_left_to_it(client, tmp_path):
    store = SqliteStore(str(tmp_path / "state.db"))
    job = approved_copy_back(store, client, tmp_path)
    held = replace(job, lease_owner="other", lease_until=NOW + timedelta(minutes=5))
    assert store.job_save(job, held)
    counting = Counting(client)
    other = recovery(store, counting, tmp_path, "new")
    assert other.resume() == 0
    other.run_copy(job.id)
    assert store.job_get(job.id).state == JobState.COPYING
    assert counting.puts == 0


def test_stop_checkpoints_a_copy_back_and_gives_the_lease_back(client, tmp_path):
    """Shutdown (SIGTERM) while a copy back is due: it stops at its checkpoint, keeps its state,
    gives the lease back, and another process resumes it at once, writing nothing twice. (The
    same mid-copy, with a real process: tests/e2e/test_copy_back_process.py.)"""
    store = SqliteStore(str(tmp_path / "state.db"))
    job = approved_copy_back(store, client, tmp_path)
    counting = Counting(client)
    engine = recovery(store, counting, tmp_path, "old")
    engine.stopping.set()  # the signal came as the job was taken
    engine.run_copy(job.id)
    engine.stop()

    stopped = store.job_get(job.id)
    assert stopped.state == JobState.COPYING
    assert (stopped.lease_owner, stopped.lease_until) == (None, None)
    assert counting.puts == 0
    files = JobFile(job.job_path)
    assert files.write_counts(COPY_BACK).pending == 6  # items 4..9 left (4 written, unrecorded)
    files.close()

    after = recovery(store, counting, tmp_path, "new")
    assert after.resume() == 1  # at once: no lease to wait for
    done = wait_state(store, job.id, JobState.COPIED)
    assert done.copy_counts == {
        "planned": 10,
        "written": 10,
        "conflict": 0,
        "failed": 0,
        "already": 0,
    }
    assert counting.puts == 5  # items 5..9, each once


def test_renew_leases_keeps_the_lease_of_a_job_this_process_runs(client, tmp_path):
    store = SqliteStore(str(tmp_path / "state.db"))
    job = approved_copy_back(store, client, tmp_path)
    engine = recovery(store, client, tmp_path, "me")
    claimed = engine._claim(job.id, JobState.COPYING)
    assert claimed is not None and claimed.lease_until == NOW + engine.lease
    later = NOW + timedelta(minutes=4)
    engine.clock = lambda: later
    engine.renew_leases()
    assert store.job_get(job.id).lease_until == later + engine.lease
    other = recovery(store, client, tmp_path, "other")
    other.clock = lambda: later + timedelta(minutes=2)  # past the first lease, not the renewed
    assert other.resume() == 0


def test_after_stop_a_late_tick_leaves_the_job_for_the_next_process(client, tmp_path):
    store = SqliteStore(str(tmp_path / "state.db"))
    job = approved_copy_back(store, client, tmp_path)
    engine = recovery(store, client, tmp_path, "me")
    engine.stop()
    assert engine.resume() == 0  # no error: the job threads are gone
    assert store.job_get(job.id).state == JobState.COPYING
