"""A hostile-data corpus for the item engine: what DynamoDB stores and moto does not stress.

- numbers of 38 significant digits (DynamoDB's precision) of both signs and many scales, in
  pairs that differ only in one digit between the 29th and the 38th (Python's default decimal
  context keeps 28): as partition keys, as values, and inside number sets;
- wide items of 150 to 300 attributes (a condition over every attribute would need up to 599
  operators; DynamoDB allows 300);
- binary values near DynamoDB's 400 KB item limit. moto refuses an UpdateItem that replaces a
  binary value above ~200 KB (measured on moto 5.2.5: it adds the new value to the item that
  still holds the old one, and checks that sum against 405,000 bytes), which AWS accepts (AWS
  sizes the resulting item, binary as raw bytes); so the *changed* binary item stays under
  moto's limit (190 KB) and the *missing* one (a PutItem, sized like AWS does) goes near
  400 KB.

`build()` gives the restored table's items and the live table's, and which keys are missing,
changed, added or unchanged; `load()` writes them. Reused by any test of compare, copy back
and undo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Any

Item = dict[str, dict[str, Any]]
KEY = "pk"  # a number: the keys themselves are hostile
DIGITS = "12345678901234567890123456789012345678"  # 38 significant digits
# Scales (exponent of the first digit) within DynamoDB's range 1E-130 .. 9.99E+125: the last
# of 38 digits of 1.23...E-93 is at 1E-130.
SCALES = (-93, -40, -5, -1, 0, 1, 37, 80, 125)
SIGNS = ("", "-")
CHANGED_DIGITS = range(29, 39)  # the digits Python's default 28-digit context loses
BIG_BINARY = 380 * 1024  # a PutItem near the 400 KB limit (moto accepts it)
MOTO_UPDATE_BINARY = 190 * 1024  # moto refuses replacing a binary above ~200 KB (see above)
_EXACT = Context(prec=100)  # never rounds a 38-digit number


def plain(text: str) -> str:
    """A number as DynamoDB returns it: plain digits, no exponent, no trailing zeros."""
    return format(Decimal(text).normalize(_EXACT), "f")


def number(sign: str, scale: int, digits: str = DIGITS) -> str:
    return plain(f"{sign}{digits[0]}.{digits[1:]}E{scale:+d}")


def bumped(digits: str, position: int) -> str:
    """`digits` with its `position`-th digit (1-based) changed."""
    i = position - 1
    return digits[:i] + str((int(digits[i]) + 1) % 10) + digits[i + 1 :]


def hostile_pairs() -> list[tuple[str, str]]:
    """(a, b): two different DynamoDB numbers that agree on their first 28 digits."""
    pairs = []
    for sign in SIGNS:
        for scale in SCALES:
            for position in CHANGED_DIGITS:
                pairs.append((number(sign, scale), number(sign, scale, bumped(DIGITS, position))))
    return pairs


@dataclass
class Corpus:
    restored: list[Item] = field(default_factory=list)
    live: list[Item] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)  # keys (the pk number's text)
    changed: set[str] = field(default_factory=set)
    added: set[str] = field(default_factory=set)
    unchanged: set[str] = field(default_factory=set)

    def keys(self) -> set[str]:
        return self.missing | self.changed | self.added | self.unchanged


def wide(pk: str, attributes: int, tag: str) -> Item:
    """An item of `attributes` attributes (the key included), numbers among them."""
    item: Item = {KEY: {"N": pk}}
    for i in range(1, attributes):
        if i % 3 == 0:
            item[f"n{i:03d}"] = {"N": number("-" if i % 2 else "", (i % 50) - 25)}
        else:
            item[f"attribute {i:03d}"] = {"S": f"{tag}-{i}"}
    return item


def build() -> Corpus:
    c = Corpus()

    def both(restored: Item | None, live: Item | None, kind: str) -> None:
        source = restored or live
        assert source is not None
        key = source[KEY]["N"]
        if restored is not None:
            c.restored.append(restored)
        if live is not None:
            c.live.append(live)
        getattr(c, kind).add(key)

    pairs = hostile_pairs()
    for i, (a, b) in enumerate(pairs):
        # Keys: both numbers are keys of their own; live lost the second.
        both(
            {KEY: {"N": a}, "role": {"S": "key a"}},
            {KEY: {"N": a}, "role": {"S": "key a"}},
            "unchanged",
        )
        both({KEY: {"N": b}, "role": {"S": "key b"}}, None, "missing")
        # Values: the amount changed in digits 29-38 only.
        pk = str(1_000_000 + i)
        both({KEY: {"N": pk}, "amount": {"N": a}}, {KEY: {"N": pk}, "amount": {"N": b}}, "changed")
        # Sets: one member changed in digits 29-38 only.
        pk = str(2_000_000 + i)
        both(
            {KEY: {"N": pk}, "ns": {"NS": [a, "1", "-7"]}},
            {KEY: {"N": pk}, "ns": {"NS": ["-7", b, "1"]}},
            "changed",
        )
    # Wide items: lost, and changed in a few attributes (hostile numbers among them).
    for pk, width in (("3000000", 300), ("3000001", 150), ("3000002", 151), ("3000003", 229)):
        both(wide(pk, width, "r"), None, "missing")
    for pk, width in (("3100000", 300), ("3100001", 151), ("3100002", 220)):
        restored = wide(pk, width, "r")
        live = dict(restored)
        a, b = pairs[len(pk) % len(pairs)]
        live["n003"] = {"N": b}
        restored["n003"] = {"N": a}
        live["attribute 001"] = {"S": "changed by the incident"}
        del live["attribute 002"]
        live["added in live"] = {"NS": [a, b]}
        both(restored, live, "changed")
    # Binary near the limits (raw bytes: DynamoDB counts them, not their base64 text).
    big = bytes(range(256)) * (BIG_BINARY // 256)
    both({KEY: {"N": "4000000"}, "blob": {"B": big}}, None, "missing")
    update = bytes(reversed(range(256))) * (MOTO_UPDATE_BINARY // 256)
    both(
        {KEY: {"N": "4000001"}, "blob": {"B": update}, "bs": {"BS": [b"\x00", b"\xff"]}},
        {KEY: {"N": "4000001"}, "blob": {"B": update[:-1] + b"\x01"}, "bs": {"BS": [b"\xff"]}},
        "changed",
    )
    # Only in live.
    both(None, {KEY: {"N": "-0.5"}, "role": {"S": "added since"}}, "added")
    return c


def create_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )


def load(client: Any, table: str, items: list[Item]) -> None:
    for item in items:
        client.put_item(TableName=table, Item=item)


def snapshot(client: Any, table: str) -> dict[str, Item]:
    """Every item of `table` by its key's text, read with consistent scans."""
    out: dict[str, Item] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            out[item[KEY]["N"]] = item
        if not page.get("LastEvaluatedKey"):
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
