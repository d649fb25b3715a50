"""DynamoDB's incremental export, simulated (moto writes the *current* items and no log).

One implementation for the console and the tests. Whoever sits in front of moto hands this
simulator every data-plane write (PutItem, UpdateItem, DeleteItem, BatchWriteItem,
TransactWriteItems): the tests' AwsSimulator proxy (tests/support/export_sim.py plugs it in),
the console's botocore hooks (`simulate_exports` below). It records, per key, the item's image
before and after each write with the time of the write (the clock it is given, which tests may
move; `backdated()` dates the writes made inside it). `ExportTableToPointInTime`
(INCREMENTAL_EXPORT) and `DescribeExport` are answered here, never by moto: the export stays
IN_PROGRESS for `duration` seconds (or until `finish()` when held), then COMPLETED (or FAILED),
and its files are written into moto's S3 in the documented layout (/work/shared/EXPORTS.md):

    <prefix>/AWSDynamoDB/<ExportId>/manifest-summary.json, manifest-files.json, _started
    <prefix>/AWSDynamoDB/data/<random>.json.gz   (a data folder shared by incremental exports)

One record per key changed in [ExportFromTime, ExportToTime): OldImage = the item right before
ExportFromTime (absent: it did not exist), NewImage = its last image in the period (absent:
deleted); an item inserted then deleted in the period leaves no record.

The rules enforced, with AWS's error codes: PITR on (PointInTimeRecoveryUnavailableException),
the period inside the PITR window (InvalidExportTimeException, whose documented description is
"The specified ExportTime is outside of the point in time recovery window."), 15 minutes <=
period <= 24 hours (ValidationException: AWS documents the rule, not its message; ours is
worded plainly), ClientToken idempotency (the same token and request within 8 hours -> the
same export; the same token with another request -> ImportConflictException, as the API
reference's ClientToken paragraph says today (older editions named it
IdempotentParameterMismatch); after 8 hours the token starts a new export).

`hold_start_replies`: DynamoDB starts the export, then its reply waits until
`release_start_replies()`, so a test can kill the caller after the export began and before it
learnt the ARN.
"""

from __future__ import annotations

import gzip
import io
import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.parsers import create_parser

from bot.console.simulated_aws import Hook

ACCOUNT = "123456789012"
REGION = "us-east-1"
WRITE_OPS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
MIN_PERIOD = 15 * 60.0
MAX_PERIOD = 24 * 3600.0
TOKEN_LIFE = 8 * 3600.0  # "A client token is valid for 8 hours after the first request"
LATEST_LAG = 300.0  # LatestRestorableDateTime trails the clock by about 5 minutes


class SimError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Change:
    at: float  # seconds since the epoch (the simulator's clock)
    before: dict | None
    after: dict | None


@dataclass
class SimExport:
    arn: str
    table: str
    request: dict[str, Any]
    from_time: float
    to_time: float
    started: float  # time.monotonic()
    start_time: float  # the simulator's clock
    bucket: str
    prefix: str
    records: list[dict[str, Any]] = field(default_factory=list)
    fail: tuple[str, str] | None = None
    held: bool = False
    written: bool = False
    manifest: str = ""
    billed: int = 0
    token: str | None = None


class ExportSimulator:
    """See the module docstring. `now`: the simulated clock (seconds since the epoch);
    `dynamodb`, `s3`: clients straight on moto (their writes are not recorded)."""

    def __init__(
        self, now: Callable[[], float], dynamodb: Callable[[], Any], s3: Callable[[], Any]
    ):
        self.now, self._ddb, self._s3 = now, dynamodb, s3
        self._lock = threading.RLock()
        self._dated = threading.local()  # backdated(): this thread's writes' time
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.RLock()):
            self.record = False  # record writes (off: other tests pay nothing)
            self.duration = 0.0  # seconds an export stays IN_PROGRESS
            self.hold_all = False  # new exports stay IN_PROGRESS until finish()
            self.files_per_export = 3
            self._next_failure: tuple[str, str] | None = None
            self.log: dict[str, dict[str, list[Change]]] = defaultdict(lambda: defaultdict(list))
            self.exports: dict[str, SimExport] = {}
            self.tokens: dict[str, str] = {}
            self._keys: dict[str, list[str]] = {}
            self.hold_start_replies = False
            old = getattr(self, "_replies", None)
            if old is not None:
                old.set()  # a reply still held from the last test goes out
            self._replies = threading.Event()

    def release_start_replies(self) -> None:
        """The held ExportTableToPointInTime replies go out (to a killed caller: nowhere)."""
        self._replies.set()

    # -- knobs ---------------------------------------------------------------------------
    def fail_next(self, code: str = "UNKNOWN", message: str = "The export failed.") -> None:
        """The next export started ends FAILED with this FailureCode/FailureMessage."""
        self._next_failure = (code, message)

    def finish(self, arn: str | None = None) -> None:
        """Held exports (or the one with `arn`) complete at the next DescribeExport."""
        with self._lock:
            for export in self.exports.values():
                if arn is None or export.arn == arn:
                    export.held = False
                    export.started = time.monotonic() - self.duration

    def started(self) -> list[SimExport]:
        with self._lock:
            return list(self.exports.values())

    # -- the write log -------------------------------------------------------------------
    @contextmanager
    def backdated(self, at: float) -> Iterator[None]:
        """Writes this thread makes inside are logged as made at `at` (the console's bad
        deploy, dated back so an export can read it at once)."""
        self._dated.at = at
        try:
            yield
        finally:
            self._dated.at = None

    def key_names(self, table: str) -> list[str]:
        if table not in self._keys:
            schema = self._ddb().describe_table(TableName=table)["Table"]["KeySchema"]
            ordered = sorted(schema, key=lambda k: k["KeyType"] != "HASH")
            self._keys[table] = [k["AttributeName"] for k in ordered]
        return self._keys[table]

    def _touched(self, op: str, req: dict[str, Any]) -> list[tuple[str, dict]]:
        """(table, key) of every item `op` may write."""
        out: list[tuple[str, dict]] = []

        def key_of(table: str, item: dict) -> dict:
            return {n: item[n] for n in self.key_names(table) if n in item}

        if op in ("PutItem",):
            out.append((req["TableName"], key_of(req["TableName"], req.get("Item", {}))))
        elif op in ("UpdateItem", "DeleteItem"):
            out.append((req["TableName"], dict(req.get("Key", {}))))
        elif op == "BatchWriteItem":
            for table, writes in (req.get("RequestItems") or {}).items():
                for w in writes:
                    if "PutRequest" in w:
                        out.append((table, key_of(table, w["PutRequest"].get("Item", {}))))
                    elif "DeleteRequest" in w:
                        out.append((table, dict(w["DeleteRequest"].get("Key", {}))))
        elif op == "TransactWriteItems":
            for entry in req.get("TransactItems") or []:
                for kind in ("Put", "Update", "Delete"):
                    if kind in entry:
                        body = entry[kind]
                        key = body.get("Key") or key_of(body["TableName"], body.get("Item", {}))
                        out.append((body["TableName"], dict(key)))
        return [(t.split("/")[-1] if t.startswith("arn:") else t, k) for t, k in out]

    def _image(self, table: str, key: dict) -> dict | None:
        return self._ddb().get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    def around_write(self, op: str, req: dict[str, Any], forward: Any) -> Any:
        """Called by the proxy for a data-plane write: forward it, logging before/after images.
        Writes are serialised here so each before/after pair is the write's own."""
        if not self.record or op not in WRITE_OPS:
            return forward()
        with self._lock:
            pending = self.before_write(op, req)
            result = forward()
            if pending is not None and result[0] == 200:
                self.after_write(op, pending)
            return result

    def before_write(self, op: str, req: dict[str, Any]) -> list[tuple[str, dict, Any]] | None:
        """(table, key, image before) of each item the write `op` may change; None when not
        recording, or for a malformed request (moto answers it)."""
        if not self.record or op not in WRITE_OPS:
            return None
        with self._lock:
            try:
                return [(t, k, self._image(t, k)) for t, k in self._touched(op, req)]
            except Exception:  # noqa: BLE001 - a malformed request: moto answers it
                return None

    def after_write(self, op: str, pending: list[tuple[str, dict, Any]]) -> None:
        """Log the write that succeeded after `before_write` gave `pending`."""
        with self._lock:
            now = getattr(self._dated, "at", None) or self.now()
            for table, key, old in pending:
                new = self._image(table, key)
                if old == new and op != "PutItem":
                    continue  # nothing changed (e.g. a delete of a missing key)
                self.log[table][_key_text(key)].append(Change(now, old, new))

    def changes(self, table: str, start: float, end: float) -> list[dict[str, Any]]:
        """The compacted records of [start, end): what an incremental export writes."""
        records = []
        with self._lock:
            for key_text, history in sorted(self.log.get(table, {}).items()):
                inside = [c for c in history if start <= c.at < end]
                if not inside:
                    continue
                old, new = inside[0].before, inside[-1].after
                if old is None and new is None:
                    continue  # inserted then deleted in the period: no record
                key = json.loads(key_text)
                record: dict[str, Any] = {
                    "Metadata": {"WriteTimestampMicros": {"N": str(int(inside[-1].at * 1e6))}},
                    "Keys": key,
                }
                if old is not None:
                    record["OldImage"] = old
                if new is not None:
                    record["NewImage"] = new
                records.append(record)
        return records

    # -- the control plane ---------------------------------------------------------------
    def answer(self, op: str, req: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """The proxy's reply to an export call (status, body); None: not ours."""
        try:
            if op == "ExportTableToPointInTime":
                desc = self.start(req)
                if self.hold_start_replies:
                    self._replies.wait(timeout=300)
                return 200, {"ExportDescription": desc}
            if op == "DescribeExport":
                return 200, {"ExportDescription": self.describe(str(req.get("ExportArn")))}
            if op == "ListExports":
                return 200, self.list_exports(req)
        except SimError as exc:
            return 400, {
                "__type": f"com.amazonaws.dynamodb.v20120810#{exc.code}",
                "message": exc.message,
            }
        return None

    def start(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("ExportType") != "INCREMENTAL_EXPORT":
            raise SimError("ValidationException", "The simulator serves incremental exports only.")
        token = req.get("ClientToken")
        same = {k: v for k, v in req.items() if k != "ClientToken"}
        with self._lock:
            known = self.exports.get(self.tokens.get(str(token), ""))
            if known is not None and self.now() - known.start_time > TOKEN_LIFE:
                known = None  # an expired token: a new request
            if token and known is not None:
                export = known
                if export.request != same:
                    # The API reference's ClientToken paragraph names this exception.
                    raise SimError(
                        "ImportConflictException",
                        "The ClientToken was used before with different parameters.",
                    )
                return self.describe(export.arn)
        arn_table = str(req.get("TableArn") or "")
        table = arn_table.split("/")[1] if "/" in arn_table else arn_table
        ddb = self._ddb()
        try:
            pitr = ddb.describe_continuous_backups(TableName=table)
        except ddb.exceptions.ClientError as exc:
            raise SimError("TableNotFoundException", f"Table not found: {table}") from exc
        desc = pitr["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        if desc.get("PointInTimeRecoveryStatus") != "ENABLED":
            raise SimError(
                "PointInTimeRecoveryUnavailableException",
                f"Point in time recovery is not enabled for table '{table}'",
            )
        now = self.now()
        days = float(desc.get("RecoveryPeriodInDays") or 35)
        earliest, latest = now - days * 86400, now - LATEST_LAG
        spec = req.get("IncrementalExportSpecification") or {}
        start = float(spec.get("ExportFromTime") or 0)
        end = float(spec.get("ExportToTime") or latest)
        if start < earliest or end > latest or start >= end:
            raise SimError(
                "InvalidExportTimeException",
                "The specified ExportTime is outside of the point in time recovery window.",
            )
        if end - start < MIN_PERIOD or end - start > MAX_PERIOD:
            raise SimError(
                "ValidationException",
                "The incremental export period must be at least 15 minutes and at most 24 hours.",
            )
        export_id = f"{int(now * 1000):014d}-{uuid.uuid4().hex[:8]}"
        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/export/{export_id}"
        export = SimExport(
            arn=arn,
            table=table,
            request=same,
            from_time=start,
            to_time=end,
            started=time.monotonic(),
            start_time=now,
            bucket=str(req["S3Bucket"]),
            prefix=str(req.get("S3Prefix") or ""),
            records=self.changes(table, start, end),
            fail=self._next_failure,
            held=self.hold_all,
            token=str(token) if token else None,
        )
        self._next_failure = None
        with self._lock:
            self.exports[arn] = export
            if token:
                self.tokens[token] = arn
        self._s3().put_object(Bucket=export.bucket, Key=f"{self._base(export)}/_started", Body=b"")
        return self.describe(arn)

    def list_exports(self, req: dict[str, Any]) -> dict[str, Any]:
        """ListExports: "Lists completed exports within the past 90 days" (the API reference),
        so an export still IN_PROGRESS is not listed; pages of MaxResults (at most 25)."""
        table_arn = str(req.get("TableArn") or "")
        with self._lock:
            arns = [e.arn for e in self.exports.values() if e.arn.startswith(table_arn + "/")]
        done = [
            {"ExportArn": arn, "ExportStatus": status, "ExportType": "INCREMENTAL_EXPORT"}
            for arn in arns
            if (status := self.describe(arn)["ExportStatus"]) != "IN_PROGRESS"
        ]
        size = min(int(req.get("MaxResults") or 25), 25)
        start = int(req.get("NextToken") or 0)
        out: dict[str, Any] = {"ExportSummaries": done[start : start + size]}
        if start + size < len(done):
            out["NextToken"] = str(start + size)
        return out

    def describe(self, arn: str) -> dict[str, Any]:
        with self._lock:
            export = self.exports.get(arn)
            if export is None:
                raise SimError("ExportNotFoundException", f"Export not found: {arn}")
            done = not export.held and time.monotonic() >= export.started + self.duration
            if done and export.fail is None and not export.written:
                self._write_files(export)
        status = "IN_PROGRESS" if not done else ("FAILED" if export.fail else "COMPLETED")
        out: dict[str, Any] = {
            "ExportArn": arn,
            "ExportStatus": status,
            "StartTime": export.start_time,
            "TableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{export.table}",
            "S3Bucket": export.bucket,
            "S3Prefix": export.prefix,
            "ExportFormat": "DYNAMODB_JSON",
            "ExportType": "INCREMENTAL_EXPORT",
            **({"ClientToken": export.token} if export.token else {}),
            "IncrementalExportSpecification": {
                "ExportFromTime": export.from_time,
                "ExportToTime": export.to_time,
                "ExportViewType": "NEW_AND_OLD_IMAGES",
            },
        }
        if status == "COMPLETED":
            out |= {
                "EndTime": self.now(),
                "ExportManifest": export.manifest,
                "BilledSizeBytes": export.billed,
                "ItemCount": len(export.records),
            }
        if status == "FAILED" and export.fail:
            out |= {"FailureCode": export.fail[0], "FailureMessage": export.fail[1]}
        return out

    # -- the S3 layout -------------------------------------------------------------------
    @staticmethod
    def _base(export: SimExport) -> str:
        export_id = export.arn.rsplit("/", 1)[1]
        return f"{export.prefix.rstrip('/')}/AWSDynamoDB/{export_id}".lstrip("/")

    def _write_files(self, export: SimExport) -> None:
        s3, base = self._s3(), self._base(export)
        data_dir = f"{export.prefix.rstrip('/')}/AWSDynamoDB/data".lstrip("/")
        n = max(1, self.files_per_export)
        chunks = [export.records[i::n] for i in range(n)]  # an empty partition: an empty file
        lines = []
        for chunk in chunks:
            text = "".join(json.dumps(r) + "\n" for r in chunk).encode()
            export.billed += len(text)
            key = f"{data_dir}/{uuid.uuid4().hex}.json.gz"
            body = _gzip(text)
            s3.put_object(Bucket=export.bucket, Key=key, Body=body)
            lines.append(
                json.dumps(
                    {
                        "itemCount": len(chunk),
                        "md5Checksum": "",
                        "etag": "",
                        "dataFileS3Key": key,
                    }
                )
            )
        files_key = f"{base}/manifest-files.json"
        s3.put_object(Bucket=export.bucket, Key=files_key, Body="\n".join(lines).encode())
        summary = {
            "version": "2023-08-01",
            "exportArn": export.arn,
            "startTime": _iso(export.start_time),
            "endTime": _iso(self.now()),
            "tableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{export.table}",
            "tableId": uuid.uuid5(uuid.NAMESPACE_URL, export.table).hex,
            "exportFromTime": _iso(export.from_time),
            "exportToTime": _iso(export.to_time),
            "s3Bucket": export.bucket,
            "s3Prefix": export.prefix,
            "s3SseAlgorithm": "AES256",
            "s3SseKmsKeyId": None,
            "manifestFilesS3Key": files_key,
            "billedSizeBytes": export.billed,
            "itemCount": len(export.records),
            "outputFormat": "DYNAMODB_JSON",
            "outputView": "NEW_AND_OLD_IMAGES",
            "exportType": "INCREMENTAL_EXPORT",
        }
        export.manifest = f"{base}/manifest-summary.json"
        s3.put_object(Bucket=export.bucket, Key=export.manifest, Body=json.dumps(summary).encode())
        export.written = True


def _key_text(key: dict) -> str:
    return json.dumps(key, sort_keys=True)


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as out:
        out.write(data)
    return buf.getvalue()


def _iso(seconds: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        + f".{int(seconds * 1000) % 1000:03d}Z"
    )


def simulate_exports(client: Any, exports: ExportSimulator) -> Hook:
    """The console's door to `exports`, on an in-process moto client (no proxy there):
    export calls are answered by the simulator before they reach moto, and the client's
    writes are logged (before images when the call leaves, after images when it succeeded)."""
    hook = Hook(client)
    parser = create_parser("json")
    pending_key = "pitr_sim_export_before"

    def request(params: dict[str, Any]) -> dict[str, Any]:
        body = params.get("body") or b"{}"
        return dict(json.loads(body.decode() if isinstance(body, bytes) else body))

    def answer(model: Any, params: dict[str, Any], **kwargs: Any) -> Any:
        reply = exports.answer(model.name, request(params))
        if reply is None:
            return None
        status, body = reply
        raw = json.dumps(body).encode()
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "console"}
        parsed = parser.parse(
            {"body": raw, "headers": headers, "status_code": status}, model.output_shape
        )
        return AWSResponse("https://dynamodb.console", status, headers, None), parsed

    def before(model: Any, params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context[pending_key] = exports.before_write(model.name, request(params))

    def after(http_response: Any, model: Any, context: dict[str, Any], **kwargs: Any) -> None:
        pending = context.pop(pending_key, None)
        if pending is not None and http_response.status_code == 200:
            exports.after_write(model.name, pending)

    for op in ("ExportTableToPointInTime", "DescribeExport"):
        hook._register(f"before-call.dynamodb.{op}", answer)
    for op in sorted(WRITE_OPS):
        hook._register(f"before-call.dynamodb.{op}", before)
        hook._register(f"after-call.dynamodb.{op}", after)
    return hook
