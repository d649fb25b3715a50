"""Make moto's paginated Scan cost O(page) instead of O(table) per page (benchmark only).

Why: moto 5.2.5's `Table.scan` sorts the *whole* table (DynamoType comparisons, in Python) and
then walks it from the start to the `ExclusiveStartKey` on every page, hashing every item for
its segment. A full parallel Scan is therefore quadratic: at 300,000 items a page costs seconds
and one Scan of a table takes over an hour, so the benchmark measured moto, not the engine.

What this changes, and what it keeps: for a table with a string partition key and no sort key,
scanned without an index, the sorted order and each segment's members are computed once per
change of the table (a put or delete bumps a generation) and a page starts with a bisect. The
pages are the same as moto's own (same order, same segment of each item by the same md5 rule,
same `Limit` and 1 MB cut, filters and projections), so every contender reads
exactly what it would read from unpatched moto. Anything else falls through to moto's code.

Applied in the benchmark's own process, which hosts the moto server every contender talks to:
all contenders see the same (patched) moto. Never imported by the bot or its tests.
"""

from __future__ import annotations

import base64
import bisect
import copy
import json
import threading
from hashlib import md5
from typing import Any

from moto.dynamodb import responses as moto_responses
from moto.dynamodb.models import table as moto_table

_Table = moto_table.Table
_original_scan = _Table.scan
_original_put = _Table.put_item
_original_delete = _Table.delete_item
_original_execute = moto_responses.DynamoResult.execute_result
_lock = threading.Lock()


def _bump(table: Any) -> None:
    table._bench_generation = getattr(table, "_bench_generation", 0) + 1


def _put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
    result = _original_put(self, *args, **kwargs)
    _bump(self)
    return result


def _delete_item(self: Any, *args: Any, **kwargs: Any) -> Any:
    result = _original_delete(self, *args, **kwargs)
    _bump(self)
    return result


def _segment_of(value: str, total: int) -> int:
    """moto's own rule (Item.is_within_segment): first md5 byte of the key, modulo total."""
    return md5(value.encode("utf8")).digest()[0] % total  # noqa: S324 - moto's rule, not security


def _segments(table: Any, total: int) -> list[tuple[list[str], list[Any], list[int]]]:
    """Per segment: (sorted key values, items in that order, their sizes); cached per table
    generation (a put or delete; the benchmark changes no item in place while it scans)."""
    generation = getattr(table, "_bench_generation", 0)
    cache = getattr(table, "_bench_cache", None)
    if cache is not None and cache[0] == generation and total in cache[1]:
        return cache[1][total]
    with _lock:
        items = sorted(table.items.values(), key=lambda it: it.hash_key.value)
        out: list[tuple[list[str], list[Any], list[int]]] = [([], [], []) for _ in range(total)]
        for it in items:
            keys, members, sizes = out[_segment_of(it.hash_key.value, total)]
            keys.append(it.hash_key.value)
            members.append(it)
            sizes.append(it.size())
        if cache is None or cache[0] != generation:
            cache = (generation, {})
            table._bench_cache = cache
        cache[1][total] = out
    return out


def _scan(
    self: Any,
    filters: dict[str, Any],
    limit: int,
    exclusive_start_key: dict[str, Any],
    filter_expression: Any = None,
    index_name: str | None = None,
    consistent_read: bool = False,
    projection_expression: list[list[str]] | None = None,
    segments: tuple[None, None] | tuple[int, int] = (None, None),
) -> tuple[list[Any], int, dict[str, Any] | None]:
    simple = (
        index_name is None
        and self.range_key_attr is None
        and self.hash_key_type == "S"
        and not filters
    )
    if not simple:
        return _original_scan(
            self,
            filters,
            limit,
            exclusive_start_key,
            filter_expression,
            index_name,
            consistent_read,
            projection_expression,
            segments,
        )
    segment, total = segments if segments != (None, None) else (0, 1)
    keys, members, sizes = _segments(self, total)[segment]
    start = 0
    if exclusive_start_key is not None:
        start = bisect.bisect_right(keys, exclusive_start_key[self.hash_key_attr]["S"])
    results: list[Any] = []
    size = 0
    last_evaluated_key = None
    # No deep copy when nothing below edits the items (moto copies them so that a projection
    # cannot touch the table; the response is built from new dicts anyway).
    copies = filter_expression is not None or bool(projection_expression)
    stop = len(members) if limit is None else start + limit + 1
    for it, it_size in zip(members[start:stop], sizes[start:stop], strict=True):
        if len(results) == limit or size + it_size > moto_table.RESULT_SIZE_LIMIT:
            last_evaluated_key = self._get_last_evaluated_key(results[-1], None)
            break
        results.append(copy.deepcopy(it) if copies else it)
        size += it_size
    scanned = len(results)
    if filter_expression is not None:
        results = [it for it in results if filter_expression.expr(it)]
    if projection_expression:
        results = [r.project(projection_expression) for r in results]
    return results, scanned, last_evaluated_key


def _b64(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"not JSON: {type(value).__name__}")


_encode = json.JSONEncoder(separators=(",", ":"), default=_b64).encode


def _execute_result(self: Any, context: Any) -> Any:
    """A Scan page's Items as plain JSON; everything else (headers, Count, LastEvaluatedKey,
    ConsumedCapacity) still from moto's serializer, which walks the response's shape value by
    value in Python (about 1 ms per item here: the cost of a Scan page was mostly this)."""
    result = self.result
    if context.operation_model.name != "Scan" or not result.get("Items"):
        return _original_execute(self, context)
    items = result.pop("Items")
    try:
        status, headers, body = _original_execute(self, context)
    finally:
        result["Items"] = items
    doc = json.loads(body)
    # moto's serializer writes DynamoDB JSON as the API does: {name: {type: value}}; binary
    # as base64 (_b64); numbers and strings are already strings in the model.
    return status, headers, _encode({**doc, "Items": items})


def warm(table: Any, total: int) -> None:
    """Build a table's sorted segments now, so that no contender's first page pays for it."""
    _segments(table, total)
    _segments(table, 1)


def install() -> None:
    """Patch moto's Table in this process (idempotent)."""
    if _Table.scan is _scan:
        return
    _Table.scan = _scan
    moto_responses.DynamoResult.execute_result = _execute_result
    _Table.put_item = _put_item
    _Table.delete_item = _delete_item


def self_check(items: int = 600) -> bool:
    """Scan a table with every attribute type through moto's own code, then through the patch
    (in-process moto, 1 and 4 segments, two Limits), and compare every page; True if equal."""
    import boto3
    from moto import mock_aws

    def pages(client: Any, segment: int, total: int, limit: int) -> list[dict]:
        out, kwargs = (
            [],
            {
                "TableName": "t",
                "Segment": segment,
                "TotalSegments": total,
                "Limit": limit,
                "ReturnConsumedCapacity": "TOTAL",
            },
        )
        while True:
            resp = client.scan(**kwargs)
            resp.pop("ResponseMetadata")
            out.append(resp)
            if "LastEvaluatedKey" not in resp:
                return out
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    if _Table.scan is _scan:
        raise RuntimeError("run the self-check before install()")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(items):
            client.put_item(
                TableName="t",
                Item={
                    "pk": {"S": f"k{i * 7919 % items}"},
                    "s": {"S": "é" * (i % 700)},
                    "n": {"N": f"{i}.50"},
                    "b": {"B": bytes([i % 256, 0, 255])},
                    "bs": {"BS": [b"a", bytes([i % 256])]},
                    "ns": {"NS": ["1", "2.5"]},
                    "ss": {"SS": ["x", "y"]},
                    "l": {
                        "L": [{"S": "a"}, {"N": "1"}, {"B": b"\x00"}, {"M": {"q": {"BOOL": True}}}]
                    },
                    "m": {"M": {"z": {"NULL": True}, "bb": {"B": b"zz"}}},
                    "t": {"BOOL": False},
                },
            )
        cases = [(s, t, lim) for t in (1, 4) for s in range(t) for lim in (1000, 97)]
        expected = {case: pages(client, *case) for case in cases}
        install()
        try:
            return all(pages(client, *case) == expected[case] for case in cases)
        finally:
            _Table.scan, _Table.put_item, _Table.delete_item = (
                _original_scan,
                _original_put,
                _original_delete,
            )
            moto_responses.DynamoResult.execute_result = _original_execute


if __name__ == "__main__":
    ok = self_check()
    print("patched Scan pages equal moto's own:" if ok else "MISMATCH:", ok)
    raise SystemExit(0 if ok else 1)
