"""The request check itself, below HTTP: header shapes that a server could pass through."""

from __future__ import annotations

import hashlib
import hmac
import io
import time

import pytest

from bot.verify import SlackRequestVerifier

SECRET = "unit-secret"
BODY = b"command=%2Fpitr-status&text=orders&team_id=T1"


def environ(timestamp: str, signature: str, body: bytes = BODY) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": timestamp,
        "HTTP_X_SLACK_SIGNATURE": signature,
        "wsgi.input": io.BytesIO(body),
    }


def signed(timestamp: str, body: bytes = BODY) -> str:
    base = f"v0:{timestamp.strip()}:".encode() + body
    return "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()


def verifier() -> SlackRequestVerifier:
    return SlackRequestVerifier(SECRET, lambda key, until: True)


def test_a_well_signed_request_is_accepted() -> None:
    ts = str(int(time.time()))
    assert verifier().check(environ(ts, signed(ts))).accepted


@pytest.mark.parametrize("where", ["timestamp", "signature"])
def test_a_trailing_newline_in_a_header_is_malformed_not_accepted(where: str) -> None:
    # `re.match` with `$` lets "...\n" through; the whole value must be the shape.
    ts = str(int(time.time()))
    sig = signed(ts)
    if where == "timestamp":
        ts += "\n"
    else:
        sig += "\n"
    verdict = verifier().check(environ(ts, sig))
    assert not verdict.accepted
    assert verdict.status == 400, verdict
