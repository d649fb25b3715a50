"""DynamoDB JSON values: wire form <-> JSON text, and a canonical form for comparing.

Items are compared as DynamoDB JSON, so types matter: N "1" is not S "1". Decisions:
- numbers compare numerically (N "1.0" == N "1"): DynamoDB itself stores numbers without
  leading/trailing zeros and compares them numerically in conditions, so "1.0" and "1" are the
  same stored value. Exactly: DynamoDB keeps up to 38 significant digits (magnitude 1E-130 to
  9.9999999999999999999999999999999999999E+125), so the canonical form never rounds (Python's
  default decimal context keeps 28 digits: numbers differing in digits 29-38 would collapse);
- sets (SS, NS, BS) compare as sets (order never matters); lists in order; maps by key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Context, Decimal, InvalidOperation
from typing import Any

Item = dict[str, dict[str, Any]]  # boto3 low-level shape: {"name": {"S": "x"}, ...}


def canonical(value: dict[str, Any]) -> dict[str, Any]:
    """The canonical form of one attribute value (still DynamoDB JSON): equal values, equal forms.

    Numbers normalised, sets sorted without duplicates, binary as base64; maps keep their keys
    (dict equality and `sort_keys` ignore order). Hot path of a comparison: S returns as is.
    """
    ((kind, raw),) = value.items()
    if kind == "S" or kind == "BOOL" or kind == "NULL":
        return value
    if kind == "N":
        return {"N": _number(raw)}
    if kind == "SS":
        return {"SS": sorted(set(raw))}
    if kind == "NS":
        return {"NS": sorted({_number(n) for n in raw})}
    if kind == "B":
        return {"B": _b64(raw)}
    if kind == "BS":
        return {"BS": sorted({_b64(b) for b in raw})}
    if kind == "L":
        return {"L": [canonical(v) for v in raw]}
    if kind == "M":
        return {"M": {k: canonical(v) for k, v in raw.items()}}
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def canonical_item(item: Item) -> dict[str, Any]:
    # Strings are the common case and already canonical: no call for them (hot path).
    return {name: value if "S" in value else canonical(value) for name, value in item.items()}


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
    text = _SORTED(canonical_item(item))
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def key_text(item: Item, key_names: tuple[str, ...]) -> str:
    """The primary key as canonical JSON text: the index's key (N "1.0" and N "1" are one key)."""
    return _PLAIN([canonical(item[name]) for name in key_names])


def index_row(item: Item, key_names: tuple[str, ...]) -> tuple[str, bytes, str]:
    """(key_text, digest, to_json-equivalent text) of one scanned item, in one pass: the hot
    loop of a comparison. Most items are already in canonical form (strings, plain integers,
    sorted sets); for those one sorted encoding is both the stored text and the digest's
    input, instead of a wire encoding plus a canonical one."""
    canon = canonical_item(item)
    key = _PLAIN([canon[name] for name in key_names])
    if canon == item:  # no bytes, no number or set to normalise: the text is canonical
        text = _SORTED(item)
        return key, hashlib.blake2b(text.encode(), digest_size=16).digest(), text
    sorted_text = _SORTED(canon)
    return key, hashlib.blake2b(sorted_text.encode(), digest_size=16).digest(), _WIRE(item)


def key_of(item: Item, key_names: tuple[str, ...]) -> Item:
    return {name: item[name] for name in key_names}


def to_json(item: Item) -> str:
    """Wire DynamoDB JSON text (binary as base64, as the DynamoDB API itself sends it)."""
    return _WIRE(item)


def from_json(text: str) -> Item:
    """Back to the shape boto3's low-level client takes (binary as bytes)."""
    return {name: _unwire(value) for name, value in json.loads(text).items()}


def _number(raw: str) -> str:
    if raw.isdigit() and (raw[0] != "0" or raw == "0"):
        return raw  # the common case, already canonical
    try:
        number = Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError(f"not a DynamoDB number: {raw!r}") from exc
    if not number.is_finite():
        raise ValueError(f"not a DynamoDB number: {raw!r}")
    if number == 0:
        return "0"
    # normalize() rounds to its context's precision: an exact context, never the default 28.
    return format(number.normalize(_EXACT), "f")  # plain digits, as DynamoDB shows numbers


# Wide enough that normalize() never rounds a number DynamoDB accepts (38 digits, exponents
# -130..125), nor one it would refuse: two different numbers never share a canonical form.
_EXACT = Context(prec=1000, Emax=999_999, Emin=-999_999)


def item_size(item: Item) -> int:
    """The item's size in bytes as DynamoDB counts it (the 400 KB limit, capacity units):
    each attribute's UTF-8 name plus its value, binary as its raw bytes (never base64, which
    is a third bigger). AWS's documented rules ("Item sizes and formats")."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: dict[str, Any]) -> int:
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        return _number_size(raw)
    if kind == "B":
        return len(_raw_bytes(raw))
    if kind == "SS":
        return sum(len(s.encode()) for s in raw)
    if kind == "NS":
        return sum(_number_size(n) for n in raw)
    if kind == "BS":
        return sum(len(_raw_bytes(b)) for b in raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":  # 3 bytes of overhead, 1 byte per element
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in raw.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def _number_size(raw: str) -> int:
    """1 byte per two significant digits, plus 1 (plus 1 more for a negative number): AWS's
    "approximately" made exact the way the service is observed to count."""
    number = Decimal(raw)
    if number == 0:
        return 1
    digits = len(number.normalize(_EXACT).as_tuple().digits)
    return (digits + 1) // 2 + 1 + (1 if number < 0 else 0)


def _raw_bytes(raw: bytes | str) -> bytes:
    return base64.b64decode(raw) if isinstance(raw, str) else raw


def _b64(raw: bytes | str) -> str:
    if isinstance(raw, str):  # already base64, as in wire JSON
        return raw
    return base64.b64encode(raw).decode()


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


# Built once: json.dumps would build an encoder on every call (hot path of a comparison).
_PLAIN = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_SORTED = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode
_WIRE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_b64).encode
