"""A comparison's Scan/Query pages, their `Items` decoded from the raw JSON body.

Why: botocore parses a DynamoDB response by walking every attribute value through the service
model in Python (~16 µs per 200-byte item, more than the comparison's own work). DynamoDB's
wire form is already the shape the low-level client returns, except binary (base64 text on the
wire, bytes after botocore). So, for the comparison's own pages only, a `before-parse` handler
(botocore's endpoint emits it with the raw `response_dict` and a `customized_response_dict`
merged into the parsed result) takes `Items` with `json.loads` (C speed), decodes `B`/`BS`
itself, and hands botocore the body without them: botocore parses only Count,
LastEvaluatedKey, ConsumedCapacity...

Only HTTP 200 bodies are touched (errors reach botocore's error parsing and retries as they
are); botocore's CRC32 check reads the HTTP response itself, not this body. Only calls made
inside `raw_items()`, on the calling thread, are touched: a client from the gateway is shared,
and anyone else's Scan on it is parsed by botocore as usual.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

OPERATIONS = ("Scan", "Query")
_active = threading.local()


def install(client: Any) -> None:
    """Register the handler on this client (idempotent: unique ids)."""
    for operation in OPERATIONS:
        client.meta.events.register(
            f"before-parse.dynamodb.{operation}",
            _take_items,
            unique_id=f"pitr-items-raw-{operation}",
        )


@contextmanager
def raw_items() -> Iterator[None]:
    """Scan/Query calls on this thread, inside the block, have their Items decoded here."""
    previous = getattr(_active, "on", False)
    _active.on = True
    try:
        yield
    finally:
        _active.on = previous


def split_page(body: bytes) -> tuple[bytes, list[dict[str, Any]]] | None:
    """(the body without Items, the Items as botocore would give them), or None to leave
    the body to botocore (not a JSON object, or no Items list)."""
    try:
        page = json.loads(body)
    except ValueError:
        return None
    if not isinstance(page, dict) or not isinstance(page.get("Items"), list):
        return None
    items = page.pop("Items")
    # Binary is rare: walk the items only when the page may hold a binary value.
    if b'"B"' in body or b'"BS"' in body:
        items = [{name: _decoded(value) for name, value in item.items()} for item in items]
    return json.dumps(page).encode(), items


def _take_items(response_dict: dict, customized_response_dict: dict, **_: Any) -> None:
    if not getattr(_active, "on", False) or response_dict.get("status_code") != 200:
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes):
        return
    split = split_page(body)
    if split is None:
        return
    response_dict["body"], customized_response_dict["Items"] = split


def _decoded(value: dict[str, Any]) -> dict[str, Any]:
    """One attribute value as botocore returns it: binary as bytes, all else as on the wire."""
    ((kind, raw),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(raw)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in raw]}
    if kind == "M":
        return {"M": {k: _decoded(v) for k, v in raw.items()}}
    if kind == "L":
        return {"L": [_decoded(v) for v in raw]}
    return value
