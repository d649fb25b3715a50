"""The export simulator (bot/console/export_sim.py, on an AwsSimulator through
tests/support/export_sim.py) against /work/shared/EXPORTS.md."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from support.aws_sim import AwsSimulator

HOUR = 3600.0
BUCKET = "exports-bucket"


@pytest.fixture(scope="module")
def server() -> Iterator[AwsSimulator]:
    with AwsSimulator() as aws:
        yield aws


@pytest.fixture
def sim(server: AwsSimulator) -> AwsSimulator:
    server.reset()
    server.create_table("orders", pitr=True, items=0)
    server.create_table("nopitr", pitr=False, items=0)
    server.exports.record = True
    s3(server).create_bucket(Bucket=BUCKET)
    return server


def s3(sim: AwsSimulator):
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=sim.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )


def arn(table: str) -> str:
    return f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}"


def export(sim: AwsSimulator, start: float, end: float | None = None, table="orders", **kw):
    spec = {"ExportFromTime": start, "ExportViewType": "NEW_AND_OLD_IMAGES"}
    if end is not None:
        spec["ExportToTime"] = end
    return sim.client().export_table_to_point_in_time(
        TableArn=arn(table),
        S3Bucket=BUCKET,
        S3Prefix="pitr",
        ExportType="INCREMENTAL_EXPORT",
        IncrementalExportSpecification=spec,
        **kw,
    )["ExportDescription"]


def records(sim: AwsSimulator, desc: dict) -> tuple[dict, list[str], list[dict]]:
    client = s3(sim)
    summary = json.loads(
        client.get_object(Bucket=BUCKET, Key=desc["ExportManifest"])["Body"].read()
    )
    body = client.get_object(Bucket=BUCKET, Key=summary["manifestFilesS3Key"])["Body"].read()
    entries = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    out = []
    for entry in entries:
        data = client.get_object(Bucket=BUCKET, Key=entry["dataFileS3Key"])["Body"].read()
        lines = gzip.decompress(data).decode().splitlines()
        assert len(lines) == entry["itemCount"]
        out += [json.loads(line) for line in lines]
    return summary, [e["dataFileS3Key"] for e in entries], out


def put(sim, pk: str, **attrs: str) -> None:
    item = {"pk": {"S": pk}} | {k: {"S": v} for k, v in attrs.items()}
    sim.client().put_item(TableName="orders", Item=item)


def test_an_incremental_export_writes_the_documented_layout_and_records(sim):
    sim.offset = -3 * HOUR
    put(sim, "kept", v="0")
    put(sim, "updated", v="0")
    put(sim, "deleted", v="0")
    start = sim.now() + 60
    sim.offset = -2 * HOUR
    put(sim, "updated", v="1")
    put(sim, "updated", v="2")  # twice: one record, first old image, last new image
    sim.client().delete_item(TableName="orders", Key={"pk": {"S": "deleted"}})
    put(sim, "inserted", v="1")
    put(sim, "flash", v="1")  # inserted then deleted in the period: no record
    sim.client().delete_item(TableName="orders", Key={"pk": {"S": "flash"}})
    sim.offset = 0.0

    desc = export(sim, start)
    assert desc["ExportStatus"] == "COMPLETED" or desc["ExportStatus"] == "IN_PROGRESS"
    desc = sim.client().describe_export(ExportArn=desc["ExportArn"])["ExportDescription"]
    assert desc["ExportStatus"] == "COMPLETED"
    summary, keys, found = records(sim, desc)

    assert summary["version"] == "2023-08-01"
    assert summary["exportType"] == "INCREMENTAL_EXPORT"
    assert summary["outputView"] == "NEW_AND_OLD_IMAGES"
    assert summary["itemCount"] == 3 == desc["ItemCount"]
    assert desc["ExportManifest"].startswith("pitr/AWSDynamoDB/")
    assert desc["ExportManifest"].endswith("/manifest-summary.json")
    assert len(keys) == 3  # several data files (one may be empty), in a shared data folder
    assert all(k.startswith("pitr/AWSDynamoDB/data/") and k.endswith(".json.gz") for k in keys)
    by_key = {r["Keys"]["pk"]["S"]: r for r in found}
    assert set(by_key) == {"updated", "deleted", "inserted"}
    assert by_key["updated"]["OldImage"]["v"] == {"S": "0"}
    assert by_key["updated"]["NewImage"]["v"] == {"S": "2"}
    assert "NewImage" not in by_key["deleted"] and by_key["deleted"]["OldImage"]["v"] == {"S": "0"}
    assert "OldImage" not in by_key["inserted"]
    for record in found:
        micros = int(record["Metadata"]["WriteTimestampMicros"]["N"])
        assert start * 1e6 <= micros < sim.now() * 1e6


def test_consecutive_periods_split_the_log(sim):
    sim.offset = -30 * HOUR
    put(sim, "a", v="1")
    sim.offset = -3 * HOUR
    put(sim, "a", v="2")
    sim.offset = 0.0
    t0 = sim.now() - 31 * HOUR
    mid = t0 + 15.5 * HOUR
    first = sim.client().describe_export(ExportArn=export(sim, t0, mid)["ExportArn"])
    second = sim.client().describe_export(ExportArn=export(sim, mid)["ExportArn"])
    (a1,) = records(sim, first["ExportDescription"])[2]
    (a2,) = records(sim, second["ExportDescription"])[2]
    assert "OldImage" not in a1 and a1["NewImage"]["v"] == {"S": "1"}
    assert a2["OldImage"]["v"] == {"S": "1"} and a2["NewImage"]["v"] == {"S": "2"}


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        (-2 * HOUR, -2 * HOUR + 14 * 60, "ValidationException"),  # shorter than 15 minutes
        (-30 * HOUR, -5 * HOUR, "ValidationException"),  # longer than 24 hours
        (-36 * 24 * HOUR, -36 * 24 * HOUR + HOUR, "InvalidExportTimeException"),  # before window
        (-HOUR, 0.0, "InvalidExportTimeException"),  # after the latest restorable time
    ],
)
def test_the_period_rules_are_enforced_with_aws_errors(sim, start, end, code):
    now = sim.now()
    with pytest.raises(ClientError) as err:
        export(sim, now + start, now + end)
    assert err.value.response["Error"]["Code"] == code
    assert sim.exports.started() == []


def test_pitr_off_is_refused(sim):
    with pytest.raises(ClientError) as err:
        export(sim, sim.now() - 2 * HOUR, table="nopitr")
    assert err.value.response["Error"]["Code"] == "PointInTimeRecoveryUnavailableException"


def test_in_progress_until_finished_then_failed_says_why(sim):
    sim.exports.hold_all = True
    sim.exports.fail_next("S3_ACCESS_DENIED", "Access denied to the bucket")
    arn_ = export(sim, sim.now() - 2 * HOUR)["ExportArn"]
    describe = sim.client().describe_export
    assert describe(ExportArn=arn_)["ExportDescription"]["ExportStatus"] == "IN_PROGRESS"
    sim.exports.finish()
    desc = describe(ExportArn=arn_)["ExportDescription"]
    assert desc["ExportStatus"] == "FAILED"
    assert desc["FailureCode"] == "S3_ACCESS_DENIED"
    assert desc["FailureMessage"] == "Access denied to the bucket"


def test_a_client_token_returns_the_same_export(sim):
    start = sim.now() - 2 * HOUR
    first = export(sim, start, ClientToken="tok-1")
    again = export(sim, start, ClientToken="tok-1")
    assert first["ExportArn"] == again["ExportArn"]
    assert len(sim.exports.started()) == 1
    with pytest.raises(ClientError) as err:
        export(sim, start + 60, ClientToken="tok-1")
    assert err.value.response["Error"]["Code"] == "ImportConflictException"


def test_a_client_token_is_honoured_as_aws_documents_it(sim):
    """The same token and request within 8 hours: the same export (DescribeExport names the
    token); the same token with any other parameter: ImportConflictException, no export; after
    8 hours the token is a new request."""
    start = sim.now() - 2 * HOUR
    first = export(sim, start, start + HOUR, ClientToken="job-1-0")
    assert (
        export(sim, start, start + HOUR, ClientToken="job-1-0")["ExportArn"] == first["ExportArn"]
    )
    described = sim.client().describe_export(ExportArn=first["ExportArn"])["ExportDescription"]
    assert described["ClientToken"] == "job-1-0"
    for other in (
        {"S3BucketOwner": "111111111111"},
        {"S3SseAlgorithm": "KMS", "S3SseKmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/k"},
        {"ExportFormat": "ION"},
    ):
        with pytest.raises(ClientError) as err:
            export(sim, start, start + HOUR, ClientToken="job-1-0", **other)
        assert err.value.response["Error"]["Code"] == "ImportConflictException"
    with pytest.raises(ClientError):
        export(sim, start, start + HOUR + 60, ClientToken="job-1-0")  # another period
    assert len(sim.exports.started()) == 1
    sim.offset = 8 * HOUR + 60
    later = export(sim, start + 8 * HOUR, start + 9 * HOUR, ClientToken="job-1-0")
    assert later["ExportArn"] != first["ExportArn"] and len(sim.exports.started()) == 2


def test_a_held_start_reply_goes_out_only_when_released(sim):
    """The export exists before its caller hears of it (a caller killed meanwhile never does)."""
    sim.exports.hold_start_replies = True
    got: list[dict] = []
    caller = threading.Thread(target=lambda: got.append(export(sim, sim.now() - 2 * HOUR)))
    caller.start()
    deadline = time.monotonic() + 30
    while not sim.exports.started():
        assert time.monotonic() < deadline
        caller.join(0.05)
    assert got == []
    sim.exports.release_start_replies()
    caller.join(30)
    assert got[0]["ExportArn"] == sim.exports.started()[0].arn


def test_the_gateway_says_plainly_when_its_token_was_used_with_other_parameters(sim):
    """bot/items/exports.py against the simulator: a repeat with the same ClientToken and the
    same request adopts the export; with another key it is refused in plain words, and no
    second export starts."""
    from datetime import UTC, datetime

    from bot.items.engine import ItemsError
    from bot.items.export_plan import Bucket
    from bot.items.exports import ExportGateway

    gateway = ExportGateway(sim.client(), s3(sim))
    start = datetime.fromtimestamp(sim.now() - 2 * HOUR, UTC)
    end = datetime.fromtimestamp(sim.now() - HOUR, UTC)
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    first = gateway.start(arn("orders"), Bucket(BUCKET, "pitr"), start, end, token="pitr-bot-j-0")
    again = gateway.start(arn("orders"), Bucket(BUCKET, "pitr"), start, end, token="pitr-bot-j-0")
    assert again["ExportArn"] == first["ExportArn"]
    with pytest.raises(ItemsError, match="did not start a second one") as err:
        gateway.start(
            arn("orders"), Bucket(BUCKET, "pitr", kms_key=key), start, end, token="pitr-bot-j-0"
        )
    assert "Traceback" not in str(err.value) and "ClientError" not in str(err.value)
    assert len(sim.exports.started()) == 1
    (request,) = [r for r in sim.requests("ExportTableToPointInTime") if "S3SseKmsKeyId" in r]
    assert request["S3SseAlgorithm"] == "KMS" and request["S3SseKmsKeyId"] == key


def test_the_gateway_finds_a_completed_export_by_its_token_across_pages(sim):
    """ExportGateway.find: ListExports page by page (completed exports only, as AWS lists
    them), DescribeExport names each one's token; a running export is left to its token."""
    from datetime import UTC, datetime

    from bot.items.export_plan import Bucket
    from bot.items.exports import ExportGateway

    gateway = ExportGateway(sim.client(), s3(sim))
    since = datetime.fromtimestamp(sim.now(), UTC)
    start = datetime.fromtimestamp(sim.now() - 3 * HOUR, UTC)
    for i in range(30):  # two pages of ListExports
        end = datetime.fromtimestamp(sim.now() - 2 * HOUR + i, UTC)
        gateway.start(arn("orders"), Bucket(BUCKET, "pitr"), start, end, token=f"tok-{i}")
    wanted = gateway.find(arn("orders"), "tok-27", since)
    assert wanted is not None and wanted["ClientToken"] == "tok-27"
    assert sim.count("ListExports") == 2
    assert gateway.find(arn("orders"), "tok-unknown", since) is None
    sim.exports.hold_all = True
    end = datetime.fromtimestamp(sim.now() - HOUR, UTC)
    gateway.start(arn("orders"), Bucket(BUCKET, "pitr"), start, end, token="running")
    assert gateway.find(arn("orders"), "running", since) is None
