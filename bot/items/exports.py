"""The incremental-export gateway: start or adopt an export, describe it, read its files.

Clients come from bot/aws.py (handed over by the routing in commands/items.py). The reader
follows manifest-summary.json -> manifest-files.json -> each dataFileS3Key and never lists a
folder (incremental exports share one data folder). Every file is streamed: gzip over the S3
body, one JSON line at a time, so memory stays flat whatever the export's size.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.items.engine import ItemsError
from bot.items.export_plan import Bucket

NOT_SET_UP = (
    "Exports are not set up: set PITR_BOT_EXPORT_S3 (`s3://bucket/prefix`, or `export_s3` on the "
    "policy's account), so the bot can read what changed without a restore. Meanwhile, take "
    "the restore path: `/pitr-restore TABLE NEW_TABLE WHEN`, then *Compare items*."
)


# The same ClientToken with other parameters: the API reference names ImportConflictException
# today, older editions IdempotentParameterMismatch.
TOKEN_REUSED = frozenset(
    {
        "ImportConflictException",
        "IdempotentParameterMismatch",
        "IdempotentParameterMismatchException",
    }
)


# Looking an export up by its token (a restart more than 8 hours after a lost start reply):
# bounded, whatever the number of exports the table has.
MAX_LIST_PAGES = 40
MAX_DESCRIBED = 50


@dataclass(frozen=True)
class Window:
    earliest: datetime
    latest: datetime


class ExportGateway:
    """One table's account and region: its DynamoDB and S3 clients."""

    def __init__(self, dynamodb: Any, s3: Any):
        self.dynamodb, self.s3 = dynamodb, s3

    def table(self, name: str) -> dict[str, Any]:
        with _errors("read", name):
            return dict(self.dynamodb.describe_table(TableName=name)["Table"])

    def window(self, name: str) -> Window | None:
        """The PITR window now; None when PITR is off."""
        with _errors("read", name):
            resp = self.dynamodb.describe_continuous_backups(TableName=name)
        desc = resp["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription") or {}
        if desc.get("PointInTimeRecoveryStatus") != "ENABLED":
            return None
        return Window(
            _utc(desc["EarliestRestorableDateTime"]), _utc(desc["LatestRestorableDateTime"])
        )

    def start(
        self,
        table_arn: str,
        bucket: Bucket,
        start: datetime,
        end: datetime,
        token: str,
    ) -> dict[str, Any]:
        """Start an incremental export (the same `token` and request within 8 hours: the same
        export, so a retry or a restart adopts the export already started)."""
        kwargs: dict[str, Any] = {
            "TableArn": table_arn,
            "S3Bucket": bucket.name,
            "ExportFormat": "DYNAMODB_JSON",
            "ExportType": "INCREMENTAL_EXPORT",
            "IncrementalExportSpecification": {
                "ExportFromTime": start,
                "ExportToTime": end,
                "ExportViewType": "NEW_AND_OLD_IMAGES",
            },
            "ClientToken": token,
        }
        if bucket.prefix:
            kwargs["S3Prefix"] = bucket.prefix
        if bucket.owner:
            kwargs["S3BucketOwner"] = bucket.owner
        if bucket.kms_key:  # an SSE-KMS bucket with a customer managed key
            kwargs["S3SseAlgorithm"] = "KMS"
            kwargs["S3SseKmsKeyId"] = bucket.kms_key
        name = table_arn.rsplit("/", 1)[-1]
        try:
            with _errors("export", name):
                resp = self.dynamodb.export_table_to_point_in_time(**kwargs)
        except ItemsError as exc:
            if _code(exc.__cause__) in TOKEN_REUSED:
                raise ItemsError(
                    f"DynamoDB already has this comparison's export of `{name}` with other "
                    "settings (the export bucket, its owner or its KMS key changed since it "
                    "started), so I did not start a second one. Ask again with "
                    "`/pitr-diff TABLE WHEN`."
                ) from exc
            raise
        return dict(resp["ExportDescription"])

    def find(self, table_arn: str, token: str, since: datetime) -> dict[str, Any] | None:
        """The export of `table_arn` started with ClientToken `token` at or after `since`, or
        None: ListExports, then DescribeExport (which names the token) of the exports that may
        be it. ListExports lists *completed* exports (of the last 90 days), so an export still
        running is not found here; its token, valid 8 hours, adopts that one instead."""
        name = table_arn.rsplit("/", 1)[-1]
        kwargs: dict[str, Any] = {"TableArn": table_arn, "MaxResults": 25}
        described = 0
        for _ in range(MAX_LIST_PAGES):
            with _errors("read", name):
                page = self.dynamodb.list_exports(**kwargs)
            for summary in page.get("ExportSummaries") or []:
                arn = str(summary.get("ExportArn") or "")
                if summary.get("ExportType", "INCREMENTAL_EXPORT") != "INCREMENTAL_EXPORT":
                    continue
                if _started_before(arn, since):
                    continue
                if described >= MAX_DESCRIBED:
                    return None
                described += 1
                desc = self.describe(arn)
                if desc.get("ClientToken") == token:
                    return desc
            if not page.get("NextToken"):
                return None
            kwargs["NextToken"] = page["NextToken"]
        return None

    def describe(self, arn: str) -> dict[str, Any]:
        name = arn.split("/")[1] if "/" in arn else arn
        with _errors("read", name):
            return dict(self.dynamodb.describe_export(ExportArn=arn)["ExportDescription"])

    # -- the files -------------------------------------------------------------------------
    def data_files(self, bucket: str, summary_key: str) -> Iterator[str]:
        """Every dataFileS3Key of the export whose manifest-summary.json is `summary_key`."""
        summary = json.loads(self._get(bucket, summary_key).read())
        body = self._get(bucket, str(summary["manifestFilesS3Key"]))
        for line in body.iter_lines():
            if line.strip():
                yield str(json.loads(line)["dataFileS3Key"])

    def records(self, bucket: str, key: str) -> Iterator[dict[str, Any]]:
        """The JSON lines of one gzipped data file, streamed."""
        body = self._get(bucket, key)
        with gzip.GzipFile(fileobj=body, mode="rb") as data:
            for line in io.TextIOWrapper(data, encoding="utf-8"):
                if line.strip():
                    yield json.loads(line)

    def _get(self, bucket: str, key: str) -> Any:
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise ItemsError(
                f"I could not read the export's file `s3://{bucket}/{key}` ({code}); the bot "
                "needs s3:GetObject on the export bucket (see `pitr-bot iam-policy`)."
            ) from exc
        except BotoCoreError as exc:
            raise ItemsError(
                f"I could not read the export's files ({type(exc).__name__})."
            ) from exc


@contextmanager
def _errors(verb: str, table: str) -> Iterator[None]:
    """AWS's errors as ItemsError in plain words."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Unknown"), error.get("Message", "")
        if code in {"ResourceNotFoundException", "TableNotFoundException"}:
            raise ItemsError(f"Table `{table}` does not exist.") from exc
        if code in {"AccessDeniedException", "UnrecognizedClientException"}:
            raise ItemsError(
                f"The bot may not {verb} `{table}` ({code}); see `pitr-bot iam-policy`."
            ) from exc
        raise ItemsError(f"DynamoDB refused to {verb} `{table}`: {code} ({message}).") from exc
    except BotoCoreError as exc:
        raise ItemsError(f"DynamoDB could not be reached ({type(exc).__name__}).") from exc


def _started_before(arn: str, since: datetime) -> bool:
    """Whether the export surely began an hour or more before `since`, judged by its export ID
    (`<epoch milliseconds>-<suffix>` in AWS's ARNs; not documented, so an ID of another shape is
    never skipped)."""
    head = arn.rsplit("/", 1)[-1].split("-", 1)[0]
    if not (head.isdigit() and len(head) >= 13):
        return False
    return int(head) / 1000 < since.timestamp() - 3600


def _code(exc: BaseException | None) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), UTC)
