"""AWS runs at most 50 restores at once per account: more wait APPROVED ("queued: N ahead")
and start as slots free; LimitExceededException from AWS queues a restore instead of failing it.
The engine on a real SqliteStore with the fake gateway of test_workflow (and moto for the AWS
error), and a fake clock."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from test_workflow import GROUPS, Clock, FakeGateway

from bot.blocks import approval_card, to_dicts
from bot.pitr import AwsError, PitrService
from bot.policy import Policy
from bot.restores import State
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

    for _ in range(10):  # the tracker's ticks, restores finishing as AWS reports them
        for name in [n for n in aws.tables if n.startswith("Orders-r")]:
            aws.set_status(name, "ACTIVE")
        clock.advance(seconds=10)
        flow.track()
        assert states(store, ids)[State.RESTORING] <= 50
        if states(store, ids) == {State.ACTIVE: 55}:
            break
    assert states(store, ids) == {State.ACTIVE: 55}
    assert len(aws.restores) == 55  # each started exactly once


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


def test_limit_exceeded_from_aws_queues_the_restore_instead_of_failing_it(store, monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
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
        limit = {"on": True, "calls": 0}

        def aws_limit(**_: object) -> None:
            limit["calls"] += 1
            if limit["on"]:
                error = {"Code": "LimitExceededException", "Message": "Too many restores"}
                raise ClientError({"Error": error}, "RestoreTableToPointInTime")

        client.meta.events.register("before-call.dynamodb.RestoreTableToPointInTime", aws_limit)
        clock = Clock()
        flow = flow_on(store, PitrService(client), clock)
        rid = approved(flow, clock, "Orders", "Orders-copy")

        req = store.get(rid)
        assert req.state == State.APPROVED, req.error  # not FAILED
        assert req.queued_ahead == 0 and "50 restores at once" in (req.error or "")
        assert req.table_arn is None and limit["calls"] >= 1

        clock.advance(seconds=10)
        flow.track()  # AWS still at its limit: still queued, still not failed
        assert store.get(rid).state == State.APPROVED

        limit["on"] = False
        clock.advance(seconds=10)
        flow.track()
        started = store.get(rid)
        assert started.state == State.RESTORING and started.table_arn
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
