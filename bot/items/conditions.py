"""No-clobber write conditions (pure): write only if the live item is still what we saw.

One machinery for copy back and undo. A `Write` says: make the live item `item` (None: delete
it), but only if the live item is exactly `expected` now (None: no item with that key).
- copy back a missing item: item = restored, expected = None -> attribute_not_exists(pk);
- copy back a changed item: item = restored, expected = the live item the comparison saw;
- undo an overwrite: item = the item just before the copy back (its ALL_OLD), expected = the
  whole item just after it;
- undo an insert: item = None (delete), expected = what the copy back wrote.

When both `item` and `expected` are given the write is an UpdateItem that SETs only the
attributes whose value differs and REMOVEs only those `item` lacks, never a whole-item PutItem:
an attribute the application added after the comparison (in neither version, so no condition can
see it) is left alone instead of being dropped. Undo of an overwrite touches the same attributes.

"Exactly" is checked as: every attribute of `expected` equals its value, and every attribute that
`item` has but `expected` has not is absent. A condition cannot say "no other attributes"; the
engine closes that gap for deletes by checking what DynamoDB returns as deleted (ALL_OLD) and
putting it back if it was not exactly what was expected (bot/items/engine.py).

DynamoDB's limits on an expression (AWS: "Expression parameters"): at most 300 operators and
functions (each `=`, `AND`, `attribute_not_exists(...)` counts) and 4 KB of text. A condition
over n attributes costs 2n-1 operators, so it fits up to 150 attributes. For a wider item:
- an insert needs one function (attribute_not_exists) whatever the width;
- an update conditions on the attributes it writes (each still as seen, or still absent): the
  others are not written, so nothing the application wrote to them is overwritten. An update
  that itself writes more than 150 attributes cannot be made safe and is refused
  (`ConditionTooLong`): the approval card counts such items before anyone approves;
- a delete conditions on as many attributes as fit (the key first) and the engine checks the
  deleted item (ALL_OLD) in full, putting it back if it was not what was expected.
TransactWriteItems does not help: one transaction may not hold two operations on one item, and
each operation's expression has the same limits.
Attribute names and values always go through ExpressionAttributeNames/Values placeholders, so
any name (reserved words, dots, spaces, '#') is safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.items.values import Item, same_item, same_value

# DynamoDB's limits on one expression; AWS refuses more (moto does not check them).
MAX_EXPRESSION_BYTES = 4096
MAX_OPERATORS = 300
# A condition over n attributes: n comparisons or functions and n-1 ANDs.
MAX_CONDITION_ATTRIBUTES = (MAX_OPERATORS + 1) // 2
_OPERATOR = re.compile(
    r"<>|<=|>=|=|<|>|\b(?:AND|OR|NOT|BETWEEN|IN)\b"
    r"|\b(?:attribute_exists|attribute_not_exists|attribute_type|begins_with|contains|size"
    r"|if_not_exists|list_append)\s*\(|(?<=\s)[+-](?=\s)"
)


def operator_count(expression: str) -> int:
    """Operators and functions in an expression as DynamoDB counts them. Names and values are
    placeholders (#x, :x) in every expression built here, so no word inside one is counted."""
    return len(_OPERATOR.findall(expression))


@dataclass(frozen=True)
class Write:
    key: Item
    item: Item | None
    expected: Item | None


@dataclass
class Condition:
    expression: str
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ConditionExpression": self.expression,
            "ExpressionAttributeNames": self.names,
        }
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        return out


class ConditionTooLong(ValueError):
    """No safe condition fits DynamoDB's limits (300 operators, 4 KB) for this write."""


def fits(expr: Condition) -> bool:
    text = expr.expression
    return len(text.encode()) <= MAX_EXPRESSION_BYTES and operator_count(text) <= MAX_OPERATORS


def check(expr: Condition, what: str) -> Condition:
    text = expr.expression
    if not fits(expr):
        raise ConditionTooLong(
            f"{what} needs {operator_count(text)} operators and {len(text.encode())} bytes; "
            f"DynamoDB allows {MAX_OPERATORS} operators and {MAX_EXPRESSION_BYTES} bytes in "
            "one expression"
        )
    return expr


def condition_for(write: Write, partition_key: str) -> Condition:
    if write.expected is None:
        return Condition("attribute_not_exists(#k)", {"#k": partition_key})
    also_absent = sorted((write.item or {}).keys() - write.expected.keys())
    full = _terms(write.expected, also_absent)
    if fits(full):
        return full
    key = write.key
    if write.item is None:  # a delete: the key and as many attributes as fit (ALL_OLD checked)
        room = MAX_CONDITION_ATTRIBUTES - len(key)
        others = sorted(write.expected.keys() - key.keys())[:room]
        subset = {n: write.expected[n] for n in (*sorted(key), *others)}
        # Long names may still exceed 4 KB: drop attributes until the text fits.
        while not fits(cond := _terms(subset)) and len(subset) > len(key):
            subset.popitem()
        return check(cond, "the condition of this delete")
    sets, removes = changes(write)
    touched = {n: write.expected[n] for n in (*sets, *removes) if n in write.expected}
    absent = sorted(n for n in sets if n not in write.expected)
    return check(
        _terms({**key, **touched}, absent), f"an update of {len(sets) + len(removes)} attributes"
    )


def exactly(expected: Item, also_absent: list[str] | tuple[str, ...] = ()) -> Condition:
    """Every attribute of `expected` equal, and each of `also_absent` absent."""
    return check(_terms(expected, also_absent), f"a condition on {len(expected)} attributes")


def _terms(expected: Item, also_absent: list[str] | tuple[str, ...] = ()) -> Condition:
    cond = Condition("")
    terms = []
    for i, (name, value) in enumerate(sorted(expected.items())):
        cond.names[f"#a{i}"] = name
        cond.values[f":v{i}"] = value
        terms.append(f"#a{i} = :v{i}")
    for j, name in enumerate(also_absent):
        cond.names[f"#n{j}"] = name
        terms.append(f"attribute_not_exists(#n{j})")
    cond.expression = " AND ".join(terms)
    return cond


def changes(write: Write) -> tuple[list[str], list[str]]:
    """(attributes an update SETs, attributes it REMOVEs): only what differs, never the key."""
    assert write.item is not None and write.expected is not None
    item, expected = write.item, write.expected
    sets = sorted(
        n for n in item.keys() - write.key.keys() if not same_value(item[n], expected.get(n))
    )
    removes = sorted(expected.keys() - item.keys() - write.key.keys())
    return sets, removes


def update_expression(write: Write) -> Condition:
    """SET the attributes of `item` whose value differs from `expected`, REMOVE those only
    `expected` has; key attributes are never touched (they are equal by construction)."""
    item = write.item or {}
    sets, removes = changes(write)
    expr = Condition("")
    clauses = []
    if sets:
        for i, name in enumerate(sets):
            expr.names[f"#s{i}"] = name
            expr.values[f":s{i}"] = item[name]
        clauses.append("SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(sets))))
    if removes:
        for j, name in enumerate(removes):
            expr.names[f"#r{j}"] = name
        clauses.append("REMOVE " + ", ".join(f"#r{j}" for j in range(len(removes))))
    expr.expression = " ".join(clauses)
    # AWS documents the limits for every expression; SET's `=` are counted too, to be safe.
    return check(expr, f"an update of {len(sets) + len(removes)} attributes")


def writable(key: Item, restored: Item, live: Item | None) -> str:
    """Can the copy back of `restored` (over `live`, None: missing) be made, and undone,
    within DynamoDB's limits? "write", "not_undoable" or "too_wide"."""
    try:
        request("-", Write(key, restored, live), next(iter(key)))
    except ConditionTooLong:
        return "too_wide"
    # The undo is the same write the other way round (the item left after the copy back is
    # at least `restored`); a delete always has a condition that fits (the key first).
    undo = Write(key, live, restored)
    try:
        request("-", undo, next(iter(key)))
    except ConditionTooLong:
        return "not_undoable"
    return "write"


def holds(write: Write, current: Item | None) -> bool:
    """Does live (`current`) already hold what `write` makes it? (our write before a crash)"""
    if write.item is None or write.expected is None:
        return same_item(current, write.item)
    if current is None:
        return False
    gone = write.expected.keys() - write.item.keys()
    return all(same_value(current.get(n), v) for n, v in write.item.items()) and not (
        gone & current.keys()
    )


def request(table: str, write: Write, partition_key: str) -> tuple[str, dict[str, Any]]:
    """(operation, kwargs) for the low-level client: a conditional PutItem (insert),
    UpdateItem (overwrite, only the differing attributes) or DeleteItem.

    ALL_OLD on success keeps the overwritten version for undo; on a condition failure it tells
    us what live holds now (to recognise our own write after a crash).
    """
    cond = condition_for(write, partition_key)
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ReturnValues": "ALL_OLD",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        **cond.params(),
    }
    if write.item is None:
        return "delete_item", {"Key": write.key, **kwargs}
    if write.expected is None:
        return "put_item", {"Item": write.item, **kwargs}
    update = update_expression(write)
    kwargs["ExpressionAttributeNames"] = {**kwargs["ExpressionAttributeNames"], **update.names}
    values = {**kwargs.get("ExpressionAttributeValues", {}), **update.values}
    if values:
        kwargs["ExpressionAttributeValues"] = values
    if update.expression:  # nothing differs (should not happen): a bare conditional check
        kwargs["UpdateExpression"] = update.expression
    return "update_item", {"Key": write.key, **kwargs}
