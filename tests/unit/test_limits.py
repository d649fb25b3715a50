"""AWS runs at most 50 restores at once per account: more wait APPROVED ("queued: N ahead")
and start as slots free; LimitExceededException from AWS queues a restore instead of failing it.
The engine on a real SqliteStore with the fake gateway of test_workflow (and moto for the AWS
error), and a fake clock."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from test_store_contract import store_of
from test_workflow import GROUPS, Clock, FakeGateway

from bot.batches.model import limit_backoff
from bot.blocks import approval_card, queued_text, to_dicts
from bot.pitr import AwsError, PitrService
from bot.policy import Policy
from bot.restores import RestoreRequest, State
from bot.store.sqlite import SqliteStore
from bot.workflow import NewRequest, Workflow

PROD = {"prod": {"role_arn": "arn:aws:iam::111111111111:role/pitr-bot"}}


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(str(tmp_path / "pitr.db"))
    yield s
    s.close()


def flow_on(store: SqliteStore, aws: object, clock: Clock) -> Workflow:
    policy = Policy.model_validate({"accounts": PROD})
    return Workflow(store, aws, policy, members=GROUPS.get, clock=clock, poll_seconds=10)  # type: ignore[arg-type]


def approved(flow: Workflow, clock: Clock, source: str, target: str) -> str:
    outcome = flow.request(NewRequest(source, target, "latest", "U1", "C1"))
    assert outcome.ok, outcome.message
    clock.advance(seconds=1)
    assert flow.approve(outcome.request.id, "U2").ok
    return outcome.request.id


def states(store: SqliteStore, ids: list[str]) -> Counter:
    return Counter(store.get(i).state for i in ids)


def finish_all(store, aws: FakeGateway, clock: Clock, ids: list[str], flows: list) -> None:
    """The trackers' ticks (the replicas' at once), restores finishing as AWS reports them:
    never more than 50 running, all finish, each started exactly once."""
    for _ in range(10):
        for name in [n for n in aws.tables if n.startswith("Orders-r")]:
            aws.set_status(name, "ACTIVE")
        clock.advance(seconds=10)
        ticks = [threading.Thread(target=flow.track) for flow in flows]
        for t in ticks:
            t.start()
        for t in ticks:
            t.join()
        assert states(store, ids)[State.RESTORING] <= 50
        if states(store, ids) == {State.ACTIVE: len(ids)}:
            break
    assert states(store, ids) == {State.ACTIVE: len(ids)}
    assert len(aws.restores) == len(ids)


def test_55_restores_in_one_account_50_start_5_queue_and_all_finish(store):
    clock = Clock()
    aws = FakeGateway(clock)
    aws.add_table("Orders")
    flow = flow_on(store, aws, clock)
    ids = [approved(flow, clock, "Orders", f"Orders-r{i:02d}") for i in range(55)]

    assert states(store, ids) == {State.RESTORING: 50, State.APPROVED: 5}
    assert len(aws.restores) == 50
    queued = [store.get(i) for i in ids[50:]]
    assert [q.queued_ahead for q in queued] == [0, 1, 2, 3, 4]  # oldest approval first
    # Each queued one tells its thread and its card.
    owed = Counter((o.restore_id, o.kind) for o in store.outbox_due(clock.now, limit=500))
    assert all(owed[(q.id, "queued")] == 1 for q in queued)
    _, card = approval_card(queued[3], clock.now)
    assert "queued: 3 ahead" in str(to_dicts(card))

    finish_all(store, aws, clock, ids, [flow])


def test_the_limit_is_per_account(store):
    clock = Clock()
    aws = FakeGateway(clock)
    aws.add_table("Orders")
    aws.add_table("prod:Orders")
    flow = flow_on(store, aws, clock)
    for i in range(51):
        approved(flow, clock, "Orders", f"Orders-r{i:02d}")
    other = approved(flow, clock, "prod:Orders", "Orders-copy")
    assert store.get(other).state == State.RESTORING  # prod's slots are its own


def test_restores_approved_at_once_with_free_slots_start_without_reading_the_queue(store):
    """A start reads the queue's order (every request in flight) only when its account's
    approved restores do not all fit in its free slots: 50 approved at once into 50 free slots
    start on one tick without it (before, each start read every request in flight: N starts
    times N documents, the cost that grew with 500 restores in flight)."""
    clock = Clock()
    aws = FakeGateway(clock)
    aws.add_table("Orders")
    flow = flow_on(store, aws, clock)
    ids = approved_requests(store, clock, 50)
    asked: list[set] = []
    find = store.find

    def watched(states=None, source=None, limit=100):
        asked.append(set(states or ()))
        return find(states, source, limit)

    store.find = watched  # type: ignore[method-assign]
    flow.track()

    assert states(store, ids) == {State.RESTORING: 50}
    assert len(aws.restores) == 50
    assert [s for s in asked if State.RESTORING in s] == []  # the queue was never read
    assert all(store.get(i).queued_ahead is None for i in ids)


def test_limit_backoff_doubles_from_the_poll_interval_up_to_five_minutes():
    assert [limit_backoff(n, 10) for n in (1, 2, 3, 4, 5, 6, 20)] == [
        10,
        20,
        40,
        80,
        160,
        300,
        300,
    ]
    assert limit_backoff(1, 0.05) == 1  # a test's fast poll still waits a second
    assert limit_backoff(0, 10) == 10


def test_limit_exceeded_twice_is_retried_with_backoff_then_starts(store, aws_env):
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="Orders",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.update_continuous_backups(
            TableName="Orders",
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
        calls = []

        def aws_limit(**_: object) -> None:
            calls.append(1)
            if len(calls) <= 2:  # AWS at its limit twice, then a slot is free
                error = {"Code": "LimitExceededException", "Message": "Too many restores"}
                raise ClientError({"Error": error}, "RestoreTableToPointInTime")

        client.meta.events.register("before-call.dynamodb.RestoreTableToPointInTime", aws_limit)
        clock = Clock()
        flow = flow_on(store, PitrService(client), clock)
        rid = approved(flow, clock, "Orders", "Orders-copy")

        req = store.get(rid)
        assert req.state == State.APPROVED, req.error  # queued, not FAILED
        assert req.table_arn is None and len(calls) == 1
        assert req.next_check_at == clock.now + timedelta(seconds=10)  # one poll interval
        retry_at = req.next_check_at.strftime("%H:%M")
        assert f"AWS limit reached, retrying at {retry_at} UTC" in queued_text(req)
        owed = [o.kind for o in store.outbox_due(clock.now, limit=50) if o.restore_id == rid]
        assert "queued" in owed  # the thread is told

        clock.advance(seconds=5)
        flow.track()
        # Another replica (or this one restarted) keeps to the stored retry time too.
        flow_on(store, PitrService(client), clock).track()
        assert len(calls) == 1

        clock.advance(seconds=5)
        flow.track()  # due: asks again, AWS still at its limit, waits twice as long
        assert len(calls) == 2
        req = store.get(rid)
        assert req.state == State.APPROVED and req.limit_retries == 2
        assert req.next_check_at == clock.now + timedelta(seconds=20)

        clock.advance(seconds=10)
        flow.track()
        assert len(calls) == 2  # still waiting

        clock.advance(seconds=10)
        flow.track()
        started = store.get(rid)
        assert len(calls) == 3
        assert started.state == State.RESTORING and started.table_arn
        assert started.limit_retries == 0
        assert "Orders-copy" in client.list_tables()["TableNames"]


def test_a_queued_restore_is_audited_once(store):
    clock = Clock()
    aws = FakeGateway(clock)
    aws.add_table("Orders")
    aws.restore_error = AwsError("LimitExceededException", "limit", retryable=True)
    flow = flow_on(store, aws, clock)
    rid = approved(flow, clock, "Orders", "Orders-copy")
    for _ in range(3):
        clock.advance(seconds=10)
        flow.track()
    events = [e.event for e in store.audit_events(limit=50) if e.restore_id == rid]
    assert events.count("restore_queued") == 1
    assert "restore_failed" not in events


@pytest.fixture(params=["sqlite", "dynamodb"])
def shared_store(request, tmp_path: Path, aws_env):
    """One store two replicas share: a SQLite file, or a DynamoDB table on moto."""
    with store_of(request.param, tmp_path) as s:
        yield s


def approved_requests(store, clock: Clock, count: int) -> list[str]:
    ids = []
    for i in range(count):
        req = RestoreRequest(
            source="Orders",
            target=f"Orders-r{i:02d}",
            requester="U1",
            channel="C1",
            restore_at=None,
            created_at=clock.now,
            expires_at=clock.now + timedelta(hours=1),
            state=State.APPROVED,
            approvals=("U2",),
            decided_by="U2",
            decided_at=clock.now + timedelta(seconds=i),
        )
        store.add(req)
        ids.append(req.id)
    return ids


def test_two_replicas_never_run_more_than_50_restores_in_one_account(shared_store):
    clock = Clock()
    aws = FakeGateway(clock)
    aws.add_table("Orders")
    ids = approved_requests(shared_store, clock, 60)
    one = Workflow(
        shared_store, aws, Policy(), GROUPS.get, clock=clock, poll_seconds=10, owner="replica-1"
    )
    two = Workflow(
        shared_store, aws, Policy(), GROUPS.get, clock=clock, poll_seconds=10, owner="replica-2"
    )
    # Replica two counted the running restores before replica one's claims landed: it
    # believes every slot is free. Only the store's slot record can stop it now.
    two.tracking._queue_ahead = lambda req: None
    one.track()
    assert states(shared_store, ids)[State.RESTORING] == 50
    two.track()
    assert states(shared_store, ids) == {State.RESTORING: 50, State.APPROVED: 10}
    assert len(aws.restores) == 50
    refused = [shared_store.get(i) for i in ids if shared_store.get(i).state == State.APPROVED]
    assert all(r.queued_ahead is not None for r in refused)  # told they wait

    # Both replicas racing, as restores finish and free slots: never more than 50. (On moto
    # this takes a minute; the DynamoDB store's race for slots is in test_store_contract.)
    if isinstance(shared_store, SqliteStore):
        finish_all(shared_store, aws, clock, ids, [one, two])
