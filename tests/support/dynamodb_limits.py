"""DynamoDB's expression limits, enforced in tests as AWS enforces them (moto does not).

AWS ("Expression parameters"): at most 300 operators and functions in one expression, and at
most 4 KB of expression text. AWS answers more with a ValidationException, e.g.
`Invalid ConditionExpression: The expression contains too many operators; operator count: 301`
(the message AWS returns, as reported in aws/aws-sdk-js#3721) or `... Expression size has
exceeded the maximum allowed size`.

Counted independently of bot/items/conditions.py (a test must not trust the code it checks):
comparators, AND/OR/NOT/BETWEEN/IN, and function calls, in the expression text with its
placeholders (names and values are never inside the text).

Two ways in: `enforce(client)` registers a botocore `before-call` hook on a client (moto
service tests: the call never reaches moto, the client raises ClientError as from AWS), and
`limit_error(op, request)` is what the e2e proxy (support.aws_sim) asks for every request.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_OPERATORS = 300
MAX_BYTES = 4096
_TOKENS = re.compile(
    r"<>|<=|>=|=|<|>"
    r"|\b(?:AND|OR|NOT|BETWEEN|IN)\b"
    r"|\b[a-z_]+\s*\("  # a function call: attribute_not_exists(...), size(...), ...
)
_EXPRESSIONS = ("ConditionExpression", "UpdateExpression", "FilterExpression")
OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "Query", "Scan")


def operators(expression: str) -> int:
    return len(_TOKENS.findall(expression))


def limit_error(operation: str, params: dict[str, Any]) -> tuple[str, str] | None:
    """(code, message) as AWS answers a request over the limits; None if within them."""
    if operation not in OPERATIONS:
        return None
    for field in _EXPRESSIONS:
        text = params.get(field)
        if not isinstance(text, str):
            continue
        if len(text.encode()) > MAX_BYTES:
            return (
                "ValidationException",
                f"Invalid {field}: Expression size has exceeded the maximum allowed size; "
                f"expression size: {len(text.encode())}",
            )
        # AWS documents the operator limit for every expression; its message names the
        # condition and filter expressions (update expressions are checked the same way).
        count = operators(text)
        if count > MAX_OPERATORS:
            return (
                "ValidationException",
                f"Invalid {field}: The expression contains too many operators; "
                f"operator count: {count}",
            )
    return None


class _Response:
    """Enough of botocore's AWSResponse for a refused call (status and headers)."""

    status_code = 400
    headers: dict[str, str] = {}


def enforce(client: Any) -> list[tuple[str, str]]:
    """Refuse, on this client, every request over DynamoDB's expression limits, before it
    reaches moto; returns the list of refusals (operation, message) for assertions."""
    refused: list[tuple[str, str]] = []

    def check(model: Any, params: dict[str, Any], **_: Any) -> Any:
        # `params` is the serialized request: DynamoDB's JSON body.
        body = params.get("body") or b"{}"
        error = limit_error(model.name, json.loads(body))
        if error is None:
            return None
        refused.append((model.name, error[1]))
        parsed = {
            "Error": {"Code": error[0], "Message": error[1]},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        return _Response(), parsed

    for operation in OPERATIONS:
        client.meta.events.register(
            f"before-call.dynamodb.{operation}", check, unique_id=f"limits-{operation}"
        )
    return refused
