"""AftercareService on moto: what a restore leaves out is seen, and each fix makes it match.

Also the engine (claims and fixes recorded with compare-and-set) and the reminder / deletion
steps, on an in-memory SQLite store with a fake scheduler.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from bot.aftercare.aws import AftercareService
from bot.aftercare.rules import MARKER_TAG, DeletionRefused, offered
from bot.aftercare.steps import Aftercare
from bot.policy import Policy
from bot.reminders import Reminders
from bot.restores import RestoreRequest, State
from bot.store import AuditEvent
from bot.store.sqlite import SqliteStore

REGION = "us-east-1"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


pytestmark = pytest.mark.usefixtures("aws_env")  # tests/unit/conftest.py


def create(ddb, name: str, provisioned: bool = True) -> str:
    kwargs = {}
    if provisioned:
        kwargs = {
            "BillingMode": "PROVISIONED",
            "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "by-pk",
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                    "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
                }
            ],
        }
    else:
        kwargs = {"BillingMode": "PAY_PER_REQUEST"}
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        **kwargs,
    )
    return ddb.describe_table(TableName=name)["Table"]["TableArn"]


def configure_source(ddb, scaling, name: str) -> None:
    arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    ddb.update_continuous_backups(
        TableName=name,
        PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True,
            "RecoveryPeriodInDays": 14,
        },
    )
    ddb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    ddb.tag_resource(
        ResourceArn=arn, Tags=[{"Key": "team", "Value": "orders"}, {"Key": "env", "Value": "prod"}]
    )
    ddb.update_table(
        TableName=name,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for resource, kind in ((f"table/{name}", "table"), (f"table/{name}/index/by-pk", "index")):
        dimension = f"dynamodb:{kind}:ReadCapacityUnits"
        scaling.register_scalable_target(
            ServiceNamespace="dynamodb",
            ResourceId=resource,
            ScalableDimension=dimension,
            MinCapacity=5,
            MaxCapacity=200,
        )
        scaling.put_scaling_policy(
            PolicyName=f"read-{kind}",
            ServiceNamespace="dynamodb",
            ResourceId=resource,
            ScalableDimension=dimension,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 70.0,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "DynamoDBReadCapacityUtilization"
                },
            },
        )


@pytest.fixture
def aws():
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        scaling = boto3.client("application-autoscaling", region_name=REGION)
        create(ddb, "Orders")
        # A real restore (moto), so the table has the RestoreSummary its identity needs.
        ddb.restore_table_to_point_in_time(
            SourceTableName="Orders",
            TargetTableName="Orders-restored",
            UseLatestRestorableTime=True,
        )
        configure_source(ddb, scaling, "Orders")
        yield ddb, scaling, AftercareService(ddb)


def by_name(aspects):
    return {a.name: a for a in aspects}


def test_compare_sees_every_difference_and_none_on_identical_settings(aws):
    ddb, _, service = aws
    aspects = by_name(service.compare("Orders", "Orders-restored"))
    for name in ("pitr", "ttl", "tags", "streams", "autoscaling"):
        assert aspects[name].differs is True, aspects[name]
    assert aspects["deletion_protection"].differs is False
    assert aspects["ttl"].source == "on (attribute `expires`)"
    assert aspects["ttl"].target == "off"
    assert "team=orders" in aspects["tags"].source
    assert aspects["autoscaling"].source == "2 scalable target(s), 2 polic(ies)"
    # moto has no contributor insights API: reported as "could not check", not as equal.
    assert aspects["contributor_insights"].differs is None
    assert aspects["contributor_insights"].note

    same = by_name(service.compare("Orders", "Orders"))
    assert not [a.name for a in same.values() if a.differs]


def test_each_fix_makes_the_target_match(aws):
    ddb, scaling, service = aws
    for aspect in ("pitr", "ttl", "tags", "streams", "autoscaling"):
        before = by_name(service.compare("Orders", "Orders-restored"))[aspect]
        assert before.differs, aspect
        what = service.fix(aspect, "Orders", "Orders-restored")
        assert what, aspect
        after = by_name(service.compare("Orders", "Orders-restored"))[aspect]
        assert after.differs is False, (aspect, after)

    # And with the direct clients, not only through the bot's own reading:
    pitr = ddb.describe_continuous_backups(TableName="Orders-restored")
    desc = pitr["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert desc["PointInTimeRecoveryStatus"] == "ENABLED"
    ttl = ddb.describe_time_to_live(TableName="Orders-restored")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    arn = ddb.describe_table(TableName="Orders-restored")["Table"]["TableArn"]
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    assert tags == {"team": "orders", "env": "prod"}
    stream = ddb.describe_table(TableName="Orders-restored")["Table"]["StreamSpecification"]
    assert stream == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    targets = scaling.describe_scalable_targets(ServiceNamespace="dynamodb")["ScalableTargets"]
    assert {t["ResourceId"] for t in targets} >= {
        "table/Orders-restored",
        "table/Orders-restored/index/by-pk",
    }
    policies = scaling.describe_scaling_policies(ServiceNamespace="dynamodb")["ScalingPolicies"]
    copied = {(p["ResourceId"], p["PolicyName"]) for p in policies}
    assert copied >= {
        ("table/Orders-restored", "read-table"),
        ("table/Orders-restored/index/by-pk", "read-index"),
    }


def test_marker_tag_is_ignored_when_comparing_tags(aws):
    ddb, _, service = aws
    service.fix("tags", "Orders", "Orders-restored")
    service.mark("Orders-restored", "abc123")
    arn = ddb.describe_table(TableName="Orders-restored")["Table"]["TableArn"]
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    assert tags[MARKER_TAG] == "abc123"
    assert by_name(service.compare("Orders", "Orders-restored"))["tags"].differs is False


def test_ttl_attribute_change_is_copied(aws):
    ddb, _, service = aws
    ddb.update_time_to_live(
        TableName="Orders-restored",
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "other"},
    )
    assert by_name(service.compare("Orders", "Orders-restored"))["ttl"].differs
    service.fix("ttl", "Orders", "Orders-restored")
    ttl = ddb.describe_time_to_live(TableName="Orders-restored")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires"


# -- the engine -----------------------------------------------------------------------------
class FakeScheduler:
    def __init__(self):
        self.jobs: dict[str, dict] = {}

    def add_job(self, func, trigger=None, id=None, **kwargs):  # noqa: A002 - APScheduler's name
        self.jobs[id] = {"func": func, "trigger": trigger, **kwargs}

    def get_job(self, job_id):
        return self.jobs.get(job_id)


def workflow(store, policy: Policy, clock):
    audits: list[tuple[str, str | None, str]] = []
    wf = SimpleNamespace(
        store=store,
        policy=policy,
        members=lambda group: set(),
        clock=clock,
        on_change=lambda: None,
        on_event=lambda event: None,
        audits=audits,
    )
    wf.audit = lambda event, req, actor, channel=None, table=None, detail="": audits.append(
        (event, actor, detail)
    )
    wf.audit_entry = lambda event, req, actor, channel=None, table=None, detail="": AuditEvent(
        clock(), event, req.id, actor, req.channel, req.source, detail
    )

    def save(old, new, announce=(), audit=()):
        # The real Workflow.save: one store write; the test keeps the entries it carried.
        saved = store.save(old, new, announce=announce, audit=audit)
        if saved is not None:
            audits.extend((e.event, e.actor, e.detail) for e in audit)
        return saved

    wf.save = save
    return wf


def active_request(store, service: AftercareService) -> RestoreRequest:
    req = RestoreRequest(
        source="Orders",
        target="Orders-restored",
        requester="U1",
        channel="C1",
        restore_at=None,
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        state=State.ACTIVE,
        finished_at=NOW,
        card_ts="1.1",
    )
    # As the workflow records it at ACTIVE: the table then, and the marker it will carry.
    req = replace(req, identity={**service.identity("Orders-restored"), "marker": req.id})
    store.add(req)
    return req


def test_engine_records_fixes_with_compare_and_set_and_never_twice(aws):
    ddb, _, service = aws
    store = SqliteStore(":memory:")
    wf = workflow(store, Policy(approvers=["U2"]), lambda: NOW)
    engine = Aftercare(wf, service)
    req = engine.prepare(active_request(store, service))
    assert set(offered(req)) == {"pitr", "ttl_tags", "streams", "autoscaling"}
    assert engine.prepare(req) == req  # idempotent

    refused = engine.fix(req.id, "ttl_tags", "U3")
    assert not refused.ok and "approvers" in refused.message
    ttl = ddb.describe_time_to_live(TableName="Orders-restored")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "DISABLED"

    done = engine.fix(req.id, "ttl_tags", "U1")  # the requester may click too
    assert done.ok, done.message
    assert set(done.request.aftercare["fixed"]) == {"ttl", "tags"}
    assert "ttl_tags" not in offered(done.request)
    again = engine.fix(req.id, "ttl_tags", "U2")
    assert not again.ok and "already done" in again.message
    assert [e for e, _, _ in wf.audits].count("aftercare_fixed") == 1
    assert "aftercare_fix_refused" in [e for e, _, _ in wf.audits]


def test_after_restore_policy_fixes_at_once(aws):
    ddb, _, service = aws
    store = SqliteStore(":memory:")
    wf = workflow(store, Policy(after_restore=["ttl", "tags", "pitr"]), lambda: NOW)
    req = Aftercare(wf, service).prepare(active_request(store, service))
    assert set(req.aftercare["auto"]) == {"ttl", "tags", "pitr"}
    assert set(offered(req)) == {"streams", "autoscaling"}
    ttl = ddb.describe_time_to_live(TableName="Orders-restored")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"


def test_reminder_is_claimed_once_and_deletion_needs_a_second_person(aws):
    ddb, _, service = aws
    store = SqliteStore(":memory:")
    now = [NOW]
    wf = workflow(store, Policy(remind_after_days=0.5), lambda: now[0])
    scheduler = FakeScheduler()
    reminders = Reminders(wf, service, scheduler)
    req = Aftercare(wf, service).prepare(active_request(store, service))
    assert reminders.resume() == 1
    job = scheduler.jobs[f"remind-{req.id}"]
    assert job["run_date"] == NOW + timedelta(hours=12)
    assert not reminders.fire(req.id)  # not due yet
    now[0] = NOW + timedelta(hours=12)
    assert reminders.fire(req.id)
    assert not reminders.fire(req.id)  # a second replica's job: already claimed
    assert reminders.resume() == 0

    assert reminders.request_delete(req.id, "U1").ok
    own = reminders.decide(req.id, "U1", approve=True)
    assert not own.ok and "someone else" in own.message
    ddb.update_table(TableName="Orders-restored", DeletionProtectionEnabled=True)
    refused = reminders.decide(req.id, "U2", approve=True)
    assert refused.ok
    stored = store.get(req.id)
    assert stored.delete_state == "REFUSED" and "Deletion protection is on" in stored.delete_note
    ddb.describe_table(TableName="Orders-restored")  # still there

    ddb.update_table(TableName="Orders-restored", DeletionProtectionEnabled=False)
    assert reminders.request_delete(req.id, "U1").ok
    assert reminders.decide(req.id, "U2", approve=True).ok
    assert not reminders.decide(req.id, "U3", approve=True).ok  # double click: nothing
    assert store.get(req.id).delete_state == "DELETED"
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.describe_table(TableName="Orders-restored")
    assert [e for e, _, _ in wf.audits].count("table_deleted") == 1


def test_delete_refuses_a_table_without_restore_summary(aws):
    # An ordinary table with the restored one's name: never deleted (it failed open before).
    ddb, _, service = aws
    ddb.delete_table(TableName="Orders-restored")
    create(ddb, "Orders-restored")
    with pytest.raises(DeletionRefused, match="not a restore of"):
        service.delete_restored("Orders-restored", "Orders")
    ddb.describe_table(TableName="Orders-restored")  # still there


def test_identity_reads_what_the_check_needs(aws):
    _, _, service = aws
    found = service.identity("Orders-restored")
    assert found["arn"].endswith(":table/Orders-restored")
    assert found["source_arn"].endswith(":table/Orders") and found["restored_at"]
    assert found["marker"] is None
    service.mark("Orders-restored", "abc123")
    assert service.identity("Orders-restored")["marker"] == "abc123"
    assert service.identity("Missing-table") is None


def test_restores_of_one_source_finishing_together_read_its_settings_once(aws):
    ddb, _, service = aws
    create(ddb, "Orders-restored-2")
    read = []
    real_read = service.read
    service.read = lambda table, desc=None: read.append(table) or real_read(table, desc)
    first = by_name(service.compare("Orders", "Orders-restored"))
    second = by_name(service.compare("Orders", "Orders-restored-2"))
    assert read == ["Orders", "Orders-restored", "Orders-restored-2"]
    assert first["ttl"].source == second["ttl"].source == "on (attribute `expires`)"
