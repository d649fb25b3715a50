"""Check an HTTP request claiming to come from Slack before any of it reaches Bolt.

Only a request that passes every check here is handed on: well-formed signature headers, a
fresh timestamp, a valid HMAC (slack_sdk's SignatureVerifier), a sane size, content type,
UTF-8 text and a shallow form/JSON body, and not seen before (replay, remembered in the store
so that replicas agree). Nothing of a refused request is logged but why it was refused: its
body may carry anything, including Slack's legacy verification `token`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # Slack's payloads are a few kB; anything this large is not Slack.
WINDOW_SECONDS = 300  # Slack's own rule: a signature older (or newer) than 5 minutes is refused
MAX_DEPTH = 32  # Slack's payloads nest about 10 deep
MAX_FIELDS = 100  # a slash command has ~15 form fields, an interaction one (`payload`)
CONTENT_TYPES = {"application/x-www-form-urlencoded", "application/json"}
TIMESTAMP = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


@dataclass(frozen=True)
class Verdict:
    """The answer to a request: `status` and a short reason; `body` only when accepted."""

    status: int
    reason: str
    body: bytes | None = None

    @property
    def accepted(self) -> bool:
        return self.body is not None


class SlackRequestVerifier:
    """Verify Slack's HTTP requests; `first_use(key, until)` remembers accepted signatures."""

    def __init__(
        self,
        signing_secret: str,
        first_use: Callable[[str, datetime], bool],
        clock: Callable[[], float] = time.time,
    ):
        self._hmac = SignatureVerifier(signing_secret, clock=_Clock(clock))
        self._first_use = first_use
        self._clock = clock

    def check(self, environ: dict[str, Any]) -> Verdict:
        """Read and verify the request in `environ` (a WSGI environ)."""
        if environ.get("REQUEST_METHOD") != "POST":
            return Verdict(405, "not a POST")
        raw_length = str(environ.get("CONTENT_LENGTH") or "")
        if not raw_length.isdigit():
            return Verdict(411, "no Content-Length")
        length = int(raw_length)
        if length > MAX_BODY:
            return Verdict(413, f"body of {length} bytes")
        content_type = str(environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if content_type not in CONTENT_TYPES:
            return Verdict(415, "unexpected content type")

        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE")
        if not timestamp or not signature:
            return Verdict(401, "no signature headers")
        if not TIMESTAMP.fullmatch(timestamp) or not SIGNATURE.fullmatch(signature):
            return Verdict(400, "malformed signature headers")
        if abs(self._clock() - int(timestamp)) > WINDOW_SECONDS:
            return Verdict(401, "stale timestamp")

        body = environ["wsgi.input"].read(length) if length else b""
        if len(body) != length:
            return Verdict(400, "body shorter than its Content-Length")
        try:
            text = body.decode("utf-8")  # (SignatureVerifier would decode it, and raise)
        except UnicodeDecodeError:
            return Verdict(400, "body is not UTF-8")
        if not self._hmac.is_valid(body=text, timestamp=timestamp, signature=signature):
            return Verdict(401, "invalid signature")

        problem = _body_problem(text, content_type)
        if problem:
            return Verdict(400, problem)
        # Last, so that a refused request never uses up its signature.
        until = datetime.fromtimestamp(int(timestamp), UTC) + timedelta(seconds=WINDOW_SECONDS + 60)
        if not self._first_use(f"{timestamp}:{signature}", until):
            return Verdict(200, "replay of an accepted request")
        return Verdict(200, "ok", body)


class _Clock:
    """slack_sdk's SignatureVerifier asks a clock object for `now()`."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock

    def now(self) -> float:
        return self._clock()


def _body_problem(text: str, content_type: str) -> str | None:
    """Why this (signed) body is not something Slack sends, or None."""
    if content_type == "application/json":
        return _json_problem(text)
    try:
        fields = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError:
        return "malformed form body"
    names = [name for name, _ in fields]
    if len(names) != len(set(names)):
        return "repeated form fields"
    payload = dict(fields).get("payload")
    if payload is not None:
        return _json_problem(payload)
    return None


def _json_problem(text: str) -> str | None:
    if _depth(text) > MAX_DEPTH:
        return "JSON nested too deep"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return "malformed JSON"
    if not isinstance(value, dict):
        return "JSON is not an object"
    return None


def _depth(text: str) -> int:
    """How deep brackets nest (outside strings), without recursion: json.loads would recurse."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
