"""A small IAM policy evaluator for one identity-based policy, enough to test what we generate.

It follows AWS's evaluation logic for a single policy: an explicit Deny wins, else an Allow
whose Action, Resource and every Condition match, else an implicit deny. Action names are
case-insensitive; `*` and `?` are wildcards in Action and Resource (in a Resource `*` spans
`/` too). Condition operators: StringEquals, StringLike, Null and ForAnyValue:StringEquals;
any other operator raises, so a policy can never pass a test by using one this evaluator does
not understand. A condition key missing from the request context fails every operator but
Null (as in IAM). NotAction/NotResource are refused too.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

ALLOW, DENY, IMPLICIT_DENY = "Allow", "Deny", "ImplicitDeny"

Context = Mapping[str, str | list[str]]


def _list(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _glob(value: str, pattern: str, case_sensitive: bool = True) -> bool:
    if not case_sensitive:
        value, pattern = value.lower(), pattern.lower()
    # fnmatch's [...] classes do not exist in IAM: escape "[" so it is a literal.
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _condition_holds(operator: str, key: str, wanted: list[str], context: Context) -> bool:
    present = key in context
    values = _list(context.get(key))
    if operator == "Null":
        (flag,) = wanted
        return (not present) if flag == "true" else present
    if not present:
        return False
    if operator == "StringEquals":
        return len(values) == 1 and values[0] in wanted
    if operator == "StringLike":
        return len(values) == 1 and any(_glob(values[0], w) for w in wanted)
    if operator == "ForAnyValue:StringEquals":
        return any(v in wanted for v in values)
    raise ValueError(f"condition operator {operator} is not supported by this evaluator")


def _statement_applies(stmt: dict, action: str, resource: str, context: Context) -> bool:
    if "NotAction" in stmt or "NotResource" in stmt or "NotPrincipal" in stmt:
        raise ValueError(f"unsupported element in {stmt}")
    if not any(_glob(action, a, case_sensitive=False) for a in _list(stmt.get("Action"))):
        return False
    if not any(_glob(resource, r) for r in _list(stmt.get("Resource"))):
        return False
    for operator, keys in (stmt.get("Condition") or {}).items():
        for key, wanted in keys.items():
            if not _condition_holds(operator, key, [str(w) for w in _list(wanted)], context):
                return False
    return True


def evaluate(policy: dict, action: str, resource: str, context: Context | None = None) -> str:
    """ALLOW, DENY (an explicit Deny matched) or IMPLICIT_DENY."""
    context = context or {}
    decision = IMPLICIT_DENY
    for stmt in _list(policy.get("Statement")):
        if not _statement_applies(stmt, action, resource, context):
            continue
        if stmt["Effect"] == "Deny":
            return DENY
        if stmt["Effect"] == "Allow":
            decision = ALLOW
    return decision


def allowed(policy: dict, action: str, resource: str, context: Context | None = None) -> bool:
    return evaluate(policy, action, resource, context) == ALLOW
