"""The AWS side of item recovery: parallel paced Scan into the job file, and paced conditional
writes out of it (copy back, undo).

Both classes take a DynamoDB client from the gateway (`bot.pitr`, adaptive retries configured
there) and never create one. Writes are one conditional PutItem/UpdateItem/DeleteItem per item
(BatchWriteItem takes no conditions; UpdateItem for an overwrite, so an attribute the
application added since is kept); a condition that no longer holds is a conflict, skipped
and listed, never forced.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.items.conditions import ConditionTooLong, Write, holds, request
from bot.items.diff import attribute_diff
from bot.items.jobfile import COPY_BACK, UNDO, DiffCounts, JobFile, WriteCounts
from bot.items.pacing import TokenBucket
from bot.items.rawpages import install as install_raw_pages
from bot.items.rawpages import raw_items
from bot.items.values import Item, index_row, item_size, same_item, to_json

log = logging.getLogger(__name__)

# Modest defaults, so a comparison or a copy back never starves the application of capacity.
DEFAULT_READ_UNITS_PER_SECOND = 200.0
DEFAULT_WRITE_UNITS_PER_SECOND = 50.0
# Items per Scan page (DynamoDB caps a page at 1 MB anyway): bounds the memory of the pages in
# flight (one per segment and table) whatever the table size.
DEFAULT_PAGE_LIMIT = 1000


@dataclass(frozen=True)
class Progress:
    phase: str  # "compare", "copy_back", "undo"
    done: int  # items read (compare) or writes with an outcome
    total: int | None  # expected (DescribeTable's ItemCount is ~6 h stale; None if unknown)
    rate: float  # items per second so far
    elapsed: float

    @property
    def eta_seconds(self) -> float | None:
        if not self.total or self.rate <= 0 or self.done >= self.total:
            return None
        return (self.total - self.done) / self.rate


ProgressCallback = Callable[[Progress], None]


class ItemsError(Exception):
    """A failure a person can act on (message in plain words, no stack trace)."""


class Stopped(Exception):
    """The process is shutting down: the job stopped at a checkpoint, to be resumed."""


class _Meter:
    """Counts items and calls `callback` at most every `every` seconds (thread-safe)."""

    def __init__(self, phase: str, total: int | None, callback, every: float, start: int = 0):
        self.phase, self.total, self.callback, self.every = phase, total, callback, every
        self.done = start
        self._start_done = start
        self._t0 = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, n: int, force: bool = False) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.callback is None or (not force and now - self._last < self.every):
                return
            self._last = now
            elapsed = now - self._t0
            rate = (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0
            progress = Progress(self.phase, self.done, self.total, rate, elapsed)
        try:
            self.callback(progress)
        except Exception:  # a failing progress edit must never stop the job
            log.warning("progress callback failed", exc_info=True)


class ItemCompare:
    """Read both tables with a parallel Scan into the job file's on-disk index."""

    def __init__(
        self,
        client: Any,
        job: JobFile,
        *,
        segments: int = 4,
        read_units_per_second: float | None = DEFAULT_READ_UNITS_PER_SECOND,
        page_limit: int | None = DEFAULT_PAGE_LIMIT,
        progress: ProgressCallback | None = None,
        progress_every: float = 2.0,
        live_client: Any | None = None,
        stop: threading.Event | None = None,
    ):
        self.client = client  # the restored table's (and the live one's, unless live_client)
        self.live_client = live_client or client  # the live table may be in another region
        for reader in (self.client, self.live_client):
            install_raw_pages(reader)  # our pages' Items decoded at C speed (idempotent)
        self.stop = stop or threading.Event()
        self.job = job
        self.segments = segments
        self.bucket = TokenBucket(read_units_per_second)
        self.page_limit = page_limit
        self.progress = progress
        self.progress_every = progress_every

    def run(
        self, restored_table: str, live_table: str, partition_keys: list[str] | None = None
    ) -> DiffCounts:
        """Read both tables into the index; `partition_keys` limits the comparison to those
        partition-key values (a Query each instead of a Scan)."""
        restored = self._describe("restored", restored_table)
        live = self._describe("live", live_table)
        keys = _key_names(restored)
        if _key_names(live) != keys:
            raise ItemsError(
                f"`{restored_table}` and `{live_table}` have different primary keys; "
                "their items cannot be compared."
            )
        self.job.set_meta(
            key_names=list(keys),
            key_types={
                a["AttributeName"]: a["AttributeType"]
                for a in restored.get("AttributeDefinitions", [])
                if a["AttributeName"] in keys
            },
            restored_table=restored_table,
            live_table=live_table,
            ttl_attribute=self._ttl_attribute(live_table),
        )
        total = (restored.get("ItemCount") or 0) + (live.get("ItemCount") or 0)
        if partition_keys is not None:
            total = 0
        meter = _Meter("compare", total or None, self.progress, self.progress_every)
        for side in ("restored", "live"):
            self.job.reset_side(side)
        tables = (("restored", restored_table), ("live", live_table))
        if partition_keys is None:
            tasks = [
                (self._scan, side, table, segment, keys, meter)
                for side, table in tables
                for segment in range(self.segments)
            ]
        else:
            values = [_key_value(restored, keys[0], text) for text in partition_keys]
            tasks = [
                (self._query, side, table, value, keys, meter)
                for side, table in tables
                for value in values
            ]
        workers = max(1, min(len(tasks), 2 * self.segments))
        with ThreadPoolExecutor(workers, thread_name_prefix="items-read") as pool:
            futures = [pool.submit(*task) for task in tasks]
            for future in futures:
                future.result()
        meter.add(0, force=True)
        return self.job.diff_counts()

    def _query(self, side: str, table: str, value: dict, keys: tuple[str, ...], meter) -> None:
        kwargs: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": keys[0]},
            "ExpressionAttributeValues": {":v": value},
        }
        self._pages("query", side, table, kwargs, keys, meter)

    def _client(self, side: str) -> Any:
        return self.live_client if side == "live" else self.client

    def _describe(self, side: str, table: str) -> dict[str, Any]:
        try:
            return dict(self._client(side).describe_table(TableName=table)["Table"])
        except ClientError as exc:
            raise _explain("read", table, exc) from exc

    def _ttl_attribute(self, table: str) -> str | None:
        """The live table's TTL attribute while TTL is on: items whose TTL has passed were
        removed on purpose, and a copy back leaves them out unless asked."""
        try:
            resp = self.live_client.describe_time_to_live(TableName=table)
        except ClientError as exc:
            raise _explain("read the TTL setting of", table, exc) from exc
        desc = resp.get("TimeToLiveDescription") or {}
        if desc.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            return desc.get("AttributeName") or None
        return None

    def _scan(self, side: str, table: str, segment: int, keys: tuple[str, ...], meter) -> None:
        kwargs: dict[str, Any] = {
            "TableName": table,
            "Segment": segment,
            "TotalSegments": self.segments,
        }
        self._pages("scan", side, table, kwargs, keys, meter)

    def _pages(self, operation: str, side: str, table: str, kwargs, keys, meter) -> None:
        kwargs["ReturnConsumedCapacity"] = "TOTAL"
        if self.page_limit:
            kwargs["Limit"] = self.page_limit
        client = self._client(side)
        while True:
            if self.stop.is_set():
                raise Stopped
            self.bucket.wait()
            try:
                with raw_items():
                    resp = getattr(client, operation)(**kwargs)
            except ClientError as exc:
                raise _explain("read", table, exc) from exc
            items = resp.get("Items", [])
            rows = [index_row(item, keys) for item in items]
            # Eventually consistent reads: 0.5 unit per 4 KB (sized as DynamoDB sizes items).
            self.bucket.spend(_consumed(resp) or max(0.5, sum(item_size(i) for i in items) / 8192))
            self.job.add_items(side, rows)
            meter.add(len(rows))
            start = resp.get("LastEvaluatedKey")
            if not start:
                return
            kwargs["ExclusiveStartKey"] = start


class ItemWriter:
    """Run a planned write job (copy back or undo) from the job file, resumable."""

    def __init__(
        self,
        client: Any,
        job: JobFile,
        *,
        workers: int = 4,
        write_units_per_second: float | None = DEFAULT_WRITE_UNITS_PER_SECOND,
        progress: ProgressCallback | None = None,
        progress_every: float = 2.0,
        stop: threading.Event | None = None,
    ):
        self.client = client
        self.stop = stop or threading.Event()
        self.job = job
        self.workers = workers
        self.bucket = TokenBucket(write_units_per_second)
        self.progress = progress
        self.progress_every = progress_every

    def run(self, name: str = COPY_BACK, table: str | None = None) -> WriteCounts:
        """Write every planned item without an outcome yet; returns the job's counts.

        Raises Stopped when `stop` is set: the writes in flight finish and are recorded first,
        so a resumed run neither skips nor repeats one."""
        table = table or str(self.job.meta("live_table"))
        partition_key = self.job.key_names[0]
        counts = self.job.write_counts(name)
        meter = _Meter(
            name,
            counts.planned,
            self.progress,
            self.progress_every,
            start=counts.planned - counts.pending,
        )
        with ThreadPoolExecutor(self.workers, thread_name_prefix="items-write") as pool:
            in_flight: set[Future] = set()
            for planned in self.job.pending(name):
                if self.stop.is_set():
                    break
                if len(in_flight) >= self.workers * 4:  # bounded: never the whole plan queued
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
                write = Write(self.job.key_item(planned), planned.item, planned.expected)
                in_flight.add(
                    pool.submit(self._write, name, table, partition_key, planned.key, write, meter)
                )
            for future in in_flight:
                future.result()
        meter.add(0, force=True)
        counts = self.job.write_counts(name)
        if self.stop.is_set() and counts.pending:
            raise Stopped
        return counts

    def _write(
        self, name: str, table: str, partition_key: str, key: str, write: Write, meter
    ) -> None:
        try:
            self._write_one(name, table, partition_key, key, write)
        finally:
            meter.add(1)

    def _write_one(self, name: str, table: str, partition_key: str, key: str, write: Write) -> None:
        try:
            operation, kwargs = request(table, write, partition_key)
        except ConditionTooLong as exc:
            self.job.record(name, key, "failed", detail=f"not written: {exc}")
            return
        sent_before = self.job.attempt(name, key)
        if name == UNDO:
            # Undo: the *whole* live item must be exactly what the copy back left, on a
            # consistent read. A condition checks the attributes it names only (an attribute
            # added since is in neither version) and, for an item of more than 150
            # attributes, only some of them (300 operators); this read sees them all.
            current, problem = self._read(table, write.key)
            if problem:
                self.job.record(name, key, "failed", detail=problem)
                return
            if not same_item(current, write.expected):
                self._conflict_or_ours(name, table, key, write, current, sent_before)
                return
        self.bucket.take(max(1, math.ceil(item_size(write.item or write.expected or {}) / 1024)))
        try:
            resp = getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                current = exc.response.get("Item")
                if current is None:  # not every DynamoDB-compatible API returns it: ask
                    current, problem = self._read(table, write.key)
                    if problem:
                        self.job.record(name, key, "failed", detail=problem)
                        return
                self._conflict_or_ours(name, table, key, write, current, sent_before)
            else:
                log.warning("item write on %s failed: %s", table, code)
                self.job.record(name, key, "failed", detail=aws_message(exc))
            return
        except BotoCoreError as exc:  # network, timeouts: after botocore's own retries
            self.job.record(name, key, "failed", detail=f"{type(exc).__name__}: {exc}"[:300])
            return
        old = resp.get("Attributes")
        if write.item is None and old is not None and not same_item(old, write.expected):
            # The delete's condition held but what it deleted was not exactly what we expected
            # (the application added an attribute between our read and the delete): put it
            # back as it was, unless someone wrote that key again meanwhile.
            self._put_back(name, table, partition_key, key, write, old)
            return
        self.job.record(name, key, "written", previous=to_json(old) if old else None)

    def _read(self, table: str, key: Item) -> tuple[Item | None, str]:
        try:
            resp = self.client.get_item(TableName=table, Key=key, ConsistentRead=True)
        except ClientError as exc:
            return None, f"re-read failed: {aws_message(exc)}"
        except BotoCoreError as exc:
            return None, f"re-read failed: {type(exc).__name__}"
        return resp.get("Item"), ""

    def _put_back(
        self, name: str, table: str, partition_key: str, key: str, write: Write, old: Item
    ) -> None:
        what = attribute_diff(write.expected, old).summary()
        try:
            self.client.put_item(
                TableName=table,
                Item=old,
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": partition_key},
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code != "ConditionalCheckFailedException":
                log.error("item %s of %s deleted and not put back: %s", key, table, code)
                self.job.record(
                    name,
                    key,
                    "failed",
                    detail=f"changed since ({what}); deleted, and putting "
                    f"it back failed: {aws_message(exc)}",
                )
                return
            detail = f"changed since ({what}); written again by someone meanwhile"
        else:
            detail = f"changed since ({what}); put back as it was"
        self.job.record(name, key, "conflict", detail=detail)

    def _conflict_or_ours(
        self,
        name: str,
        table: str,
        key: str,
        write: Write,
        current: Item | None,
        sent_before: bool = False,
    ) -> None:
        if holds(write, current):
            if sent_before:
                # Our own write, sent before a crash lost its outcome: counted once, as
                # written. The overwritten version is the one the condition checked.
                previous = to_json(write.expected) if write.expected else None
                self.job.record(name, key, "written", previous=previous, detail="already there")
            else:
                # Live held exactly this before we ever wrote it (a person put it back):
                # not ours, so never in the undo plan.
                self.job.record(name, key, "already", detail="already there before")
            return
        since = "the copy back" if name == UNDO else "the comparison"
        detail = attribute_diff(write.expected, current).summary() if current else "deleted"
        self.job.record(name, key, "conflict", detail=f"changed since {since}: {detail}")


def aws_message(exc: ClientError) -> str:
    """AWS's own code and message, kept with every failure a person reads."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Error"), error.get("Message", "")
    return f"{code}: {message}"[:300] if message else code


def _key_names(desc: dict[str, Any]) -> tuple[str, ...]:
    schema = sorted(desc["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    return tuple(k["AttributeName"] for k in schema)


def _key_value(desc: dict[str, Any], name: str, text: str) -> dict[str, str]:
    """A partition-key value typed by the table (text from Slack is never trusted)."""
    kind = next(
        (a["AttributeType"] for a in desc["AttributeDefinitions"] if a["AttributeName"] == name),
        "S",
    )
    text = text.strip()
    if kind == "N":
        try:
            Decimal(text)
        except InvalidOperation:
            raise ItemsError(f"`{name}` is a number; `{text[:40]}` is not.") from None
        return {"N": text}
    if kind == "B":
        raise ItemsError(f"`{name}` is binary: compare the whole table instead of listing keys.")
    if not text:
        raise ItemsError(f"An empty `{name}` cannot be a key.")
    return {"S": text}


def _consumed(resp: dict[str, Any]) -> float:
    return float((resp.get("ConsumedCapacity") or {}).get("CapacityUnits") or 0.0)


def _explain(verb: str, table: str, exc: ClientError) -> ItemsError:
    code = exc.response.get("Error", {}).get("Code", "Unknown")
    if code in {"ResourceNotFoundException", "TableNotFoundException"}:
        return ItemsError(f"Table `{table}` does not exist.")
    if code in {"AccessDeniedException", "UnrecognizedClientException"}:
        return ItemsError(
            f"The bot may not {verb} `{table}` ({aws_message(exc)}); see docs/iam-policy.json."
        )
    return ItemsError(f"DynamoDB refused to {verb} `{table}`: {aws_message(exc)}.")
