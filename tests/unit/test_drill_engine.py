"""The drill engine on moto: it deletes only its own table, and steps are claimed once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws
from support.stores import NoLoneAudits

from bot.drills.aws import DrillService
from bot.drills.engine import DrillEngine
from bot.drills.model import DRILL_TAG, DrillState
from bot.policy import Policy
from bot.store.sqlite import SqliteStore

SOURCE = "orders"


@pytest.fixture
def ddb(aws_env) -> Iterator:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=SOURCE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(3):
            client.put_item(TableName=SOURCE, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
        yield client


def engine_for(ddb, tmp_path, owner: str = "a", target_pattern: str = "*", **kw) -> DrillEngine:
    policy = Policy(
        drills=[{"tables": [SOURCE], "every": "0 0 1 1 *", "channel": "C9"}],
        target_pattern=target_pattern,
    )
    store = SqliteStore(str(tmp_path / "state.db"))
    return DrillEngine(store, DrillService(ddb), policy, lambda group: set(), owner=owner, **kw)


def step_until(engine: DrillEngine, drill_id: str, state: DrillState) -> None:
    for _ in range(10):
        if engine.store.drill_get(drill_id).state == state:
            return
        engine.step(drill_id)
    raise AssertionError(engine.store.drill_get(drill_id))


def test_a_drill_passes_and_deletes_its_table(ddb, tmp_path):
    engine = engine_for(ddb, tmp_path)
    drill = engine.start_now(SOURCE, "U1", "C1").drill
    step_until(engine, drill.id, DrillState.PASSED)
    done = engine.store.drill_get(drill.id)
    assert done.passed and done.cleanup == "drill table deleted"
    assert done.target not in ddb.list_tables()["TableNames"]


def test_a_drill_table_is_named_within_the_policys_target_pattern(ddb, tmp_path):
    engine = engine_for(ddb, tmp_path, target_pattern="restored-*")
    drill = engine.start_now(SOURCE, "U1", "C1").drill
    assert drill.target.startswith("restored-orders-drill-")
    step_until(engine, drill.id, DrillState.PASSED)
    assert drill.target not in ddb.list_tables()["TableNames"]


def test_cleanup_leaves_a_table_that_is_not_the_one_the_drill_made(ddb, tmp_path):
    engine = engine_for(ddb, tmp_path)
    drill = engine.start_now(SOURCE, "U1", "C1").drill
    step_until(engine, drill.id, DrillState.CLEANING)
    # Someone replaced the drill table by another of the same name, even with the same tag.
    ddb.delete_table(TableName=drill.target)
    other = ddb.create_table(
        TableName=drill.target,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]
    ddb.tag_resource(ResourceArn=other["TableArn"], Tags=[{"Key": DRILL_TAG, "Value": drill.id}])

    step_until(engine, drill.id, DrillState.FAILED)
    done = engine.store.drill_get(drill.id)
    assert "NOT deleted" in done.cleanup
    assert drill.target in ddb.list_tables()["TableNames"]
    still = ddb.describe_table(TableName=drill.target)["Table"]
    assert still["CreationDateTime"] == other["CreationDateTime"]  # the other one, untouched


def test_a_live_drill_on_another_replica_is_not_stepped(ddb, tmp_path):
    first = engine_for(ddb, tmp_path, owner="a")
    second = engine_for(ddb, tmp_path, owner="b")
    drill = first.start_now(SOURCE, "U1", "C1").drill
    first.step(drill.id)  # a claims it: RESTORING, leased by a
    leased = first.store.drill_get(drill.id)
    assert leased.state == DrillState.RESTORING and leased.lease_owner == "a"
    second.step(drill.id)
    assert second.store.drill_get(drill.id) == leased  # b did nothing
    assert second.start_now(SOURCE, "U2", "C1").ok is False  # and won't start a second one


def test_two_drill_commands_at_once_make_one_drill(ddb, tmp_path):
    now = datetime.now(UTC).replace(second=30)  # both in the same minute, whatever the clock
    first = engine_for(ddb, tmp_path, owner="a", clock=lambda: now)
    second = engine_for(ddb, tmp_path, owner="b", clock=lambda: now)
    assert second.refusal(SOURCE, "U2", "C1") is None
    second.refusal = lambda *args: None  # as if it checked before the first one wrote (a race)
    outcomes = [first.start_now(SOURCE, "U1", "C1"), second.start_now(SOURCE, "U2", "C1")]
    assert [o.ok for o in outcomes] == [True, False]
    assert "this minute already" in outcomes[1].message
    assert len(first.store.drill_find(source=SOURCE)) == 1


def test_every_drill_transition_writes_its_audit_entry_with_it(ddb, tmp_path):
    engine = engine_for(ddb, tmp_path)
    spy = NoLoneAudits(engine.store)
    engine.store = spy  # type: ignore[assignment]
    drill = engine.start_now(SOURCE, "U1", "C1").drill
    step_until(engine, drill.id, DrillState.PASSED)
    assert spy.lone == []
    events = [e.event for e in spy.audit_events()]
    assert events == [
        "drill_requested",
        "drill_started",
        "drill_restored",
        "drill_verified",
        "drill_passed",
    ]
