"""PitrService against moto (behaviour) and botocore's Stubber (every error AWS can say)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber
from moto import mock_aws

from bot.pitr import AwsError, PitrService, TableInfo

REGION = "us-east-1"


pytestmark = pytest.mark.usefixtures("aws_env")  # tests/unit/conftest.py


@pytest.fixture
def aws():
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        yield client, PitrService(client)


def create(client, name: str, items: int = 0, pitr: bool = False) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(items):
        client.put_item(TableName=name, Item={"pk": {"S": f"item-{i}"}})
    if pitr:
        client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )


# -- moto --------------------------------------------------------------------------------------
def test_region(aws) -> None:
    _, service = aws
    assert service.region == REGION


def test_missing_table_is_none(aws) -> None:
    _, service = aws
    assert service.table("NoSuchTable") is None


def test_existing_table(aws) -> None:
    client, service = aws
    create(client, "Orders", items=3)
    info = service.table("Orders")
    assert isinstance(info, TableInfo)
    assert info.name == "Orders"
    assert info.status == "ACTIVE"
    assert info.arn and info.arn.endswith(":table/Orders")
    assert info.billing_mode == "PAY_PER_REQUEST"
    assert info.indexes == ()


def test_pitr_disabled(aws) -> None:
    client, service = aws
    create(client, "Orders")
    pitr = service.pitr("Orders")
    assert pitr.status == "DISABLED"
    assert not pitr.enabled
    assert pitr.window is None


def test_pitr_enabled_has_an_aware_window(aws) -> None:
    client, service = aws
    create(client, "Orders", pitr=True)
    pitr = service.pitr("Orders")
    assert pitr.enabled
    assert pitr.table == "Orders"
    assert pitr.window is not None
    assert pitr.window.earliest.tzinfo is not None
    assert pitr.window.earliest <= pitr.window.latest
    assert pitr.window.latest <= datetime.now(UTC) + timedelta(minutes=1)


def test_pitr_on_missing_table_is_a_friendly_error(aws) -> None:
    _, service = aws
    with pytest.raises(AwsError) as err:
        service.pitr("NoSuchTable")
    assert "NoSuchTable" in err.value.message
    assert "does not exist" in err.value.message
    assert not err.value.retryable


def test_enable_pitr_with_days(aws) -> None:
    client, service = aws
    create(client, "Orders")
    pitr = service.enable_pitr("Orders", days=7)
    assert pitr.enabled
    assert pitr.recovery_days == 7
    desc = client.describe_continuous_backups(TableName="Orders")
    spec = desc["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert spec["PointInTimeRecoveryStatus"] == "ENABLED"
    assert spec["RecoveryPeriodInDays"] == 7
    assert service.pitr("Orders").recovery_days == 7


def test_enable_pitr_default_period(aws) -> None:
    client, service = aws
    create(client, "Orders")
    assert service.enable_pitr("Orders").enabled


def test_restore_latest_creates_the_target_with_the_items(aws) -> None:
    client, service = aws
    create(client, "Orders", items=3, pitr=True)
    info = service.restore("Orders", "Orders-restored", None)
    assert info.name == "Orders-restored"
    assert info.arn and info.arn.endswith(":table/Orders-restored")
    assert client.scan(TableName="Orders-restored")["Count"] == 3
    assert service.table("Orders-restored") is not None


def test_restore_to_an_instant(aws) -> None:
    client, service = aws
    create(client, "Orders", items=2, pitr=True)
    at = datetime.now(UTC) - timedelta(seconds=1)
    info = service.restore("Orders", "Orders-restored", at)
    assert info.name == "Orders-restored"
    assert client.scan(TableName="Orders-restored")["Count"] == 2


def test_restore_into_an_existing_table_is_refused(aws) -> None:
    client, service = aws
    create(client, "Orders", pitr=True)
    create(client, "Taken")
    with pytest.raises(AwsError) as err:
        service.restore("Orders", "Taken", None)
    assert "already exists" in err.value.message
    assert not err.value.retryable


def test_list_tables(aws) -> None:
    client, service = aws
    assert service.list_tables() == []
    for name in ("b-table", "a-table", "c-table"):
        create(client, name)
    assert sorted(service.list_tables()) == ["a-table", "b-table", "c-table"]
    assert len(service.list_tables(limit=2)) == 2


def test_list_tables_pages(aws) -> None:
    client, service = aws
    for i in range(105):
        client.create_table(
            TableName=f"t{i:03d}",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    assert len(service.list_tables()) == 105


# -- Stubber: error codes ----------------------------------------------------------------------
@pytest.fixture
def stubbed():
    client = boto3.client("dynamodb", region_name=REGION)
    with Stubber(client) as stub:
        yield stub, PitrService(client)
        stub.assert_no_pending_responses()


ACTION_WORDS = ("pick", "try", "turn", "grant", "use", "choose", "check", "wait", "will")

ERRORS = [
    # code, http status, retryable, words the message must contain
    ("InvalidRestoreTimeException", 400, False, ["window"]),
    ("PointInTimeRecoveryUnavailableException", 400, False, ["/pitr-enable Orders"]),
    # About the TARGET name (botocore: "A target table with the specified name is either being
    # created or deleted"), never the source.
    ("TableInUseException", 400, False, ["`Orders-restored`", "being created or deleted"]),
    ("LimitExceededException", 400, True, ["limit", "try again"]),
    ("TableAlreadyExistsException", 400, False, ["`Orders-restored` already exists", "another"]),
    ("AccessDeniedException", 400, False, ["RestoreTableToPointInTime", "iam-policy"]),
    ("ThrottlingException", 400, True, ["throttling", "try again"]),
]


@pytest.mark.parametrize(("code", "status", "retryable", "words"), ERRORS)
def test_restore_errors_are_explained(stubbed, code, status, retryable, words) -> None:
    stub, service = stubbed
    stub.add_client_error(
        "restore_table_to_point_in_time",
        service_error_code=code,
        service_message="raw AWS text",
        http_status_code=status,
        expected_params={
            "SourceTableName": "Orders",
            "TargetTableName": "Orders-restored",
            "UseLatestRestorableTime": True,
        },
    )
    with pytest.raises(AwsError) as err:
        service.restore("Orders", "Orders-restored", None)
    exc = err.value
    assert exc.code == code
    assert exc.retryable is retryable
    for word in words:
        assert word.lower() in exc.message.lower(), exc.message
    assert any(w in exc.message.lower() for w in ACTION_WORDS), (
        f"{code}: the message should say what to do: {exc.message!r}"
    )
    assert code in str(exc)
    if code in {"TableInUseException", "TableAlreadyExistsException"}:
        assert "`Orders`" not in exc.message, exc.message


def test_restore_with_instant_sends_restore_date_time(stubbed) -> None:
    stub, service = stubbed
    at = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    stub.add_response(
        "restore_table_to_point_in_time",
        {
            "TableDescription": {
                "TableName": "Orders-restored",
                "TableStatus": "CREATING",
                "TableArn": "arn:aws:dynamodb:us-east-1:1:table/Orders-restored",
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
            }
        },
        expected_params={
            "SourceTableName": "Orders",
            "TargetTableName": "Orders-restored",
            "RestoreDateTime": at,
        },
    )
    info = service.restore("Orders", "Orders-restored", at)
    assert info.status == "CREATING"
    assert info.billing_mode == "PROVISIONED"


def test_describe_table_not_found_is_none_but_other_errors_raise(stubbed) -> None:
    stub, service = stubbed
    stub.add_client_error("describe_table", service_error_code="ResourceNotFoundException")
    stub.add_client_error("describe_table", service_error_code="ThrottlingException")
    assert service.table("Orders") is None
    with pytest.raises(AwsError) as err:
        service.table("Orders")
    assert err.value.retryable


def test_unknown_error_keeps_the_aws_text(stubbed) -> None:
    stub, service = stubbed
    stub.add_client_error(
        "describe_continuous_backups",
        service_error_code="ValidationException",
        service_message="1 validation error detected",
    )
    with pytest.raises(AwsError) as err:
        service.pitr("Orders")
    assert "1 validation error detected" in err.value.message
    assert not err.value.retryable


def test_no_credentials_and_no_network_are_explained() -> None:
    class Broken:
        class meta:  # noqa: N801 - mimics botocore's client.meta
            region_name = REGION

        def __init__(self, exc: Exception):
            self.exc = exc

        def describe_table(self, **_: object) -> dict:
            raise self.exc

    with pytest.raises(AwsError) as err:
        PitrService(Broken(NoCredentialsError())).table("Orders")
    assert "credentials" in err.value.message
    assert not err.value.retryable
    with pytest.raises(AwsError) as err:
        PitrService(Broken(EndpointConnectionError(endpoint_url="https://x"))).table("Orders")
    assert err.value.retryable
    assert REGION in err.value.message


# -- overrides: the exact request for each billing / index combination ---------------------------

KEYS = [{"AttributeName": "pk", "KeyType": "HASH"}]
GSI_KEYS = [{"AttributeName": "sk", "KeyType": "HASH"}]
ALL = {"ProjectionType": "ALL"}


def source_table(billing: str) -> dict:
    """A DescribeTable `Table` with two GSIs and one LSI, provisioned or on-demand."""
    provisioned = billing == "PROVISIONED"
    throughput = (
        {"ReadCapacityUnits": 7, "WriteCapacityUnits": 3}
        if provisioned
        else {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}
    )
    table = {
        "TableName": "Orders",
        "TableStatus": "ACTIVE",
        "KeySchema": KEYS,
        "ProvisionedThroughput": throughput,
        "GlobalSecondaryIndexes": [
            {
                "IndexName": name,
                "KeySchema": GSI_KEYS,
                "Projection": ALL,
                "IndexStatus": "ACTIVE",
                "ProvisionedThroughput": throughput,
            }
            for name in ("by-customer", "by-status")
        ],
        "LocalSecondaryIndexes": [
            {"IndexName": "by-date", "KeySchema": KEYS, "Projection": ALL},
        ],
    }
    if not provisioned:
        table["BillingModeSummary"] = {"BillingMode": "PAY_PER_REQUEST"}
    return table


RESTORED = {"TableDescription": {"TableName": "Orders-restored", "TableStatus": "CREATING"}}
KEPT = {"IndexName": "by-status", "KeySchema": GSI_KEYS, "Projection": ALL}
KEPT_PROVISIONED = {
    **KEPT,
    "ProvisionedThroughput": {"ReadCapacityUnits": 7, "WriteCapacityUnits": 3},
}
LATEST = {
    "SourceTableName": "Orders",
    "TargetTableName": "Orders-restored",
    "UseLatestRestorableTime": True,
}

OVERRIDE_CASES = [
    # source billing, chosen overrides, the override parameters AWS must receive
    (
        "PROVISIONED",
        {"billing_mode": "PAY_PER_REQUEST", "exclude_indexes": ["by-customer"]},
        {"BillingModeOverride": "PAY_PER_REQUEST", "GlobalSecondaryIndexOverride": [KEPT]},
    ),
    (
        "PROVISIONED",
        {"exclude_indexes": ["by-customer"]},
        {"GlobalSecondaryIndexOverride": [KEPT_PROVISIONED]},
    ),
    (
        "PAY_PER_REQUEST",
        {"exclude_indexes": ["by-customer"]},
        {"GlobalSecondaryIndexOverride": [KEPT]},
    ),
    (
        "PAY_PER_REQUEST",
        {"billing_mode": "PAY_PER_REQUEST", "exclude_indexes": ["by-customer", "by-status"]},
        {"BillingModeOverride": "PAY_PER_REQUEST", "GlobalSecondaryIndexOverride": []},
    ),
]


@pytest.mark.parametrize(("billing", "chosen", "expected"), OVERRIDE_CASES)
def test_overrides_are_valid_for_the_billing_mode(stubbed, billing, chosen, expected) -> None:
    stub, service = stubbed
    stub.add_response(
        "describe_table", {"Table": source_table(billing)}, expected_params={"TableName": "Orders"}
    )
    stub.add_response(
        "restore_table_to_point_in_time", RESTORED, expected_params={**LATEST, **expected}
    )
    service.restore("Orders", "Orders-restored", None, chosen)
    stub.assert_no_pending_responses()


def test_on_demand_without_index_changes_needs_no_description(stubbed) -> None:
    stub, service = stubbed
    stub.add_response(
        "restore_table_to_point_in_time",
        RESTORED,
        expected_params={**LATEST, "BillingModeOverride": "PAY_PER_REQUEST"},
    )
    service.restore("Orders", "Orders-restored", None, {"billing_mode": "PAY_PER_REQUEST"})
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("chosen", "words"),
    [
        ({"exclude_indexes": ["by-date"]}, ["`by-date`", "local secondary index"]),
        ({"exclude_indexes": ["nope"]}, ["no global secondary index `nope`", "`by-customer`"]),
        ({"billing_mode": "PROVISIONED"}, ["PROVISIONED", "on-demand"]),
    ],
)
def test_invalid_overrides_are_refused_without_a_restore_call(stubbed, chosen, words) -> None:
    stub, service = stubbed
    if chosen.get("exclude_indexes"):
        stub.add_response("describe_table", {"Table": source_table("PROVISIONED")})
    problem = service.overrides_problem("Orders", chosen)
    assert problem is not None
    for word in words:
        assert word in problem, problem
    if chosen.get("exclude_indexes"):
        stub.add_response("describe_table", {"Table": source_table("PROVISIONED")})
    # The restore itself refuses too, before calling AWS (the Stubber has no restore queued).
    with pytest.raises(AwsError) as err:
        service.restore("Orders", "Orders-restored", None, chosen)
    assert err.value.code == "InvalidOverrides"
    stub.assert_no_pending_responses()
