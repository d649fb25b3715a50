"""Send signed Slack requests (slash commands, interactions) the way Slack does.

The bot verifies X-Slack-Signature, so end-to-end tests must sign exactly like
Slack: v0=HMAC-SHA256(secret, "v0:<ts>:<raw body>").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "Response",
    "SlackSender",
    "block_action_body",
    "block_suggestion_body",
    "post_signed",
    "sign",
    "slash_command_body",
    "view_submission_body",
]


@dataclass
class Response:
    """What the bot answered: status, decoded body, headers (lower-cased keys), seconds."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0

    def json(self) -> Any:
        """Body parsed as JSON (Bolt answers some interactions with JSON)."""
        return json.loads(self.body)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """Slack request signature: "v0=" + hex HMAC-SHA256 of b"v0:<ts>:<body>"."""
    base = b"v0:" + str(int(timestamp)).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def post_signed(
    url: str,
    secret: str,
    body: bytes,
    content_type: str = "application/x-www-form-urlencoded",
    timestamp: int | None = None,
    signature: str | None = None,
    extra_headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> Response:
    """POST body signed with secret; never raises on HTTP errors (returns the status).

    Pass `timestamp`/`signature` to forge stale or bad signatures.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    sig = sign(secret, body, ts) if signature is None else signature
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sig,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
    headers.update(extra_headers or {})
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = int(resp.status)
            raw = resp.read()
            resp_headers = {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as err:
        status = int(err.code)
        raw = err.read()
        resp_headers = {k.lower(): v for k, v in err.headers.items()}
    elapsed = time.monotonic() - start
    return Response(status, raw.decode("utf-8", "replace"), resp_headers, elapsed)


def _payload(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def slash_command_body(
    command: str,
    text: str,
    user_id: str,
    channel_id: str,
    response_url: str,
    trigger_id: str = "trig.1",
    team_id: str = "T1",
    user_name: str | None = None,
) -> bytes:
    """Urlencoded slash-command body as Slack sends it."""
    fields = {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "team_domain": "test",
        "channel_id": channel_id,
        "channel_name": channel_id.lower(),
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": "A1",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return urlencode(fields).encode()


def block_action_body(
    action_id: str,
    value: str,
    user_id: str,
    channel_id: str,
    message_ts: str,
    response_url: str,
    block_id: str = "decision",
    team_id: str = "T1",
) -> bytes:
    """payload=<json> for a button click (block_actions) on a channel message."""
    payload = {
        "type": "block_actions",
        "token": "legacy-verification-token",
        "api_app_id": "A1",
        "is_enterprise_install": False,
        "user": {
            "id": user_id,
            "username": user_id.lower(),
            "name": user_id.lower(),
            "team_id": team_id,
        },
        "team": {"id": team_id, "domain": "test"},
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "channel": {"id": channel_id, "name": channel_id.lower()},
        "message": {"type": "message", "ts": message_ts, "text": ""},
        "response_url": response_url,
        "trigger_id": "trig.action",
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return _payload(payload)


def view_submission_body(
    callback_id: str,
    values: dict[str, Any],
    user_id: str,
    private_metadata: str = "",
    view_id: str = "V1",
    team_id: str = "T1",
) -> bytes:
    """payload=<json> for a modal submit; `values` becomes view.state.values verbatim."""
    payload = {
        "type": "view_submission",
        "token": "legacy-verification-token",
        "api_app_id": "A1",
        "is_enterprise_install": False,
        "team": {"id": team_id, "domain": "test"},
        "user": {
            "id": user_id,
            "username": user_id.lower(),
            "name": user_id.lower(),
            "team_id": team_id,
        },
        "trigger_id": "trig.view",
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
            "hash": "h1",
            "blocks": [],
        },
        "response_urls": [],
    }
    return _payload(payload)


def block_suggestion_body(
    action_id: str,
    value: str,
    user_id: str,
    block_id: str = "source",
    team_id: str = "T1",
    view_id: str = "V1",
    callback_id: str = "",
) -> bytes:
    """payload=<json> for an external_select options request (block_suggestion)."""
    payload = {
        "type": "block_suggestion",
        "token": "legacy-verification-token",
        "api_app_id": "A1",
        "is_enterprise_install": False,
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "team": {"id": team_id, "domain": "test"},
        "user": {
            "id": user_id,
            "username": user_id.lower(),
            "name": user_id.lower(),
            "team_id": team_id,
        },
        "container": {"type": "view", "view_id": view_id},
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": "",
            "state": {"values": {}},
        },
    }
    return _payload(payload)


class SlackSender:
    """Build + sign + POST Slack requests to `<base_url>/slack/events`."""

    def __init__(self, base_url: str, secret: str, timeout: float = 10) -> None:
        self.url = base_url.rstrip("/") + "/slack/events"
        self.secret = secret
        self.timeout = timeout

    def post(self, body: bytes, **kwargs: Any) -> Response:
        """Sign and send a prebuilt body (kwargs go to post_signed)."""
        kwargs.setdefault("timeout", self.timeout)
        return post_signed(self.url, self.secret, body, **kwargs)

    def command(
        self,
        command: str,
        text: str,
        user_id: str = "U1",
        channel_id: str = "C1",
        response_url: str = "http://127.0.0.1:9/respond/none",
        **kwargs: Any,
    ) -> Response:
        """Send a slash command; extra kwargs go to slash_command_body."""
        body = slash_command_body(command, text, user_id, channel_id, response_url, **kwargs)
        return self.post(body)

    def click(
        self,
        action_id: str,
        value: str,
        user_id: str = "U1",
        channel_id: str = "C1",
        message_ts: str = "1700000000.000101",
        response_url: str = "http://127.0.0.1:9/respond/none",
        **kwargs: Any,
    ) -> Response:
        """Send a button click; extra kwargs go to block_action_body."""
        body = block_action_body(
            action_id, value, user_id, channel_id, message_ts, response_url, **kwargs
        )
        return self.post(body)

    def submit(
        self, callback_id: str, values: dict[str, Any], user_id: str = "U1", **kwargs: Any
    ) -> Response:
        """Submit a modal; extra kwargs go to view_submission_body."""
        return self.post(view_submission_body(callback_id, values, user_id, **kwargs))

    def suggest(self, action_id: str, value: str, user_id: str = "U1", **kwargs: Any) -> Response:
        """Request external_select options; extra kwargs go to block_suggestion_body."""
        return self.post(block_suggestion_body(action_id, value, user_id, **kwargs))
