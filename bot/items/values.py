"""DynamoDB JSON values: wire form <-> JSON text, and a canonical form for comparing.

Items are compared as DynamoDB JSON, so types matter: N "1" is not S "1". Decisions:
- numbers compare numerically (N "1.0" == N "1"): DynamoDB itself stores numbers without
  leading/trailing zeros and compares them numerically in conditions, so "1.0" and "1" are the
  same stored value;
- sets (SS, NS, BS) compare as sets (order never matters); lists in order; maps by key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal, InvalidOperation
from typing import Any

Item = dict[str, dict[str, Any]]  # boto3 low-level shape: {"name": {"S": "x"}, ...}


def canonical(value: dict[str, Any]) -> Any:
    """A JSON-serialisable canonical form of one attribute value: equal values, equal forms."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return ["S", raw]
    if kind == "N":
        return ["N", _number(raw)]
    if kind == "B":
        return ["B", _b64(raw)]
    if kind == "BOOL":
        return ["BOOL", bool(raw)]
    if kind == "NULL":
        return ["NULL", True]
    if kind == "SS":
        return ["SS", sorted(set(raw))]
    if kind == "NS":
        return ["NS", sorted({_number(n) for n in raw})]
    if kind == "BS":
        return ["BS", sorted({_b64(b) for b in raw})]
    if kind == "L":
        return ["L", [canonical(v) for v in raw]]
    if kind == "M":
        return ["M", {k: canonical(v) for k, v in sorted(raw.items())}]
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def canonical_item(item: Item) -> dict[str, Any]:
    return {name: canonical(value) for name, value in sorted(item.items())}


def same_value(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    return canonical(a) == canonical(b)


def same_item(a: Item | None, b: Item | None) -> bool:
    if a is None or b is None:
        return a is b
    return canonical_item(a) == canonical_item(b)


def digest(item: Item) -> bytes:
    """16 bytes identifying the item's canonical form (equal items, equal digests)."""
    text = json.dumps(canonical_item(item), separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def key_text(item: Item, key_names: tuple[str, ...]) -> str:
    """The primary key as canonical JSON text: the index's key (N "1.0" and N "1" are one key)."""
    return json.dumps(
        [canonical(item[name]) for name in key_names], separators=(",", ":"), ensure_ascii=False
    )


def key_of(item: Item, key_names: tuple[str, ...]) -> Item:
    return {name: item[name] for name in key_names}


def to_json(item: Item) -> str:
    """Wire DynamoDB JSON text (binary as base64, as the DynamoDB API itself sends it)."""
    return json.dumps(_wire(item), separators=(",", ":"), ensure_ascii=False)


def from_json(text: str) -> Item:
    """Back to the shape boto3's low-level client takes (binary as bytes)."""
    return {name: _unwire(value) for name, value in json.loads(text).items()}


def _number(raw: str) -> str:
    try:
        number = Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError(f"not a DynamoDB number: {raw!r}") from exc
    if number == 0:
        return "0"
    return str(number.normalize())


def _b64(raw: bytes | str) -> str:
    if isinstance(raw, str):  # already base64, as in wire JSON
        return raw
    return base64.b64encode(raw).decode()


def _wire(item: Item) -> dict[str, Any]:
    return {name: _wire_value(value) for name, value in item.items()}


def _wire_value(value: dict[str, Any]) -> dict[str, Any]:
    ((kind, raw),) = value.items()
    if kind == "B":
        return {"B": _b64(raw)}
    if kind == "BS":
        return {"BS": [_b64(b) for b in raw]}
    if kind == "L":
        return {"L": [_wire_value(v) for v in raw]}
    if kind == "M":
        return {"M": _wire(raw)}
    return {kind: raw}


def _unwire(value: dict[str, Any]) -> dict[str, Any]:
    ((kind, raw),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(raw)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in raw]}
    if kind == "L":
        return {"L": [_unwire(v) for v in raw]}
    if kind == "M":
        return {"M": {k: _unwire(v) for k, v in raw.items()}}
    return {kind: raw}
