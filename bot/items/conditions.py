"""No-clobber write conditions (pure): write only if the live item is still what we saw.

One machinery for copy back and undo. A `Write` says: make the live item `item` (None: delete
it), but only if the live item is exactly `expected` now (None: no item with that key).
- copy back a missing item: item = restored, expected = None -> attribute_not_exists(pk);
- copy back a changed item: item = restored, expected = the live item the comparison saw;
- undo an overwrite: item = the live item the comparison saw, expected = what the copy back wrote;
- undo an insert: item = None (delete), expected = what the copy back wrote.

When both `item` and `expected` are given the write is an UpdateItem that SETs only the
attributes whose value differs and REMOVEs only those `item` lacks, never a whole-item PutItem:
an attribute the application added after the comparison (in neither version, so no condition can
see it) is left alone instead of being dropped. Undo of an overwrite touches the same attributes.

"Exactly" is checked as: every attribute of `expected` equals its value, and every attribute that
`item` has but `expected` has not is absent (the application may have added it since). A
condition cannot say "no other attributes": an attribute the application added that is in
neither version is not detected; that is DynamoDB's limit, documented in docs/architecture.md.
Attribute names and values always go through ExpressionAttributeNames/Values placeholders, so
any name (reserved words, dots, spaces, '#') is safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.items.values import Item, same_item, same_value

# DynamoDB's limit on an expression's length; a longer one is refused by AWS.
MAX_EXPRESSION_BYTES = 4096


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
    """The item has too many attributes for one condition expression (DynamoDB's 4 KB)."""


def condition_for(write: Write, partition_key: str) -> Condition:
    if write.expected is None:
        return Condition("attribute_not_exists(#k)", {"#k": partition_key})
    also_absent = sorted((write.item or {}).keys() - write.expected.keys())
    return exactly(write.expected, also_absent)


def exactly(expected: Item, also_absent: list[str] | tuple[str, ...] = ()) -> Condition:
    """Every attribute of `expected` equal, and each of `also_absent` absent."""
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
    if len(cond.expression.encode()) > MAX_EXPRESSION_BYTES:
        raise ConditionTooLong(f"{len(terms)} attributes to check exceed one condition")
    return cond


def update_expression(write: Write) -> Condition:
    """SET the attributes of `item` whose value differs from `expected`, REMOVE those only
    `expected` has; key attributes are never touched (they are equal by construction)."""
    assert write.item is not None and write.expected is not None
    item, expected = write.item, write.expected
    sets = sorted(
        n for n in item.keys() - write.key.keys() if not same_value(item[n], expected.get(n))
    )
    removes = sorted(expected.keys() - item.keys() - write.key.keys())
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
    if len(expr.expression.encode()) > MAX_EXPRESSION_BYTES:
        raise ConditionTooLong(f"{len(sets) + len(removes)} attributes to update exceed one update")
    return expr


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
