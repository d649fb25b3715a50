"""Rules every Slack request passes before any listener, over HTTP and in Socket Mode alike.

One Bolt middleware (run before authorization, so before anything else of ours):
1. the request comes from our workspace and Enterprise Grid org (fail closed while unknown);
2. a `response_url` must be on Slack's hooks host (or SLACK_API_URL's, for tests and the
   console), else the request is refused (400); `respond()` posts from a small pool with a
   timeout, never from a thread that answers Slack;
3. a click on a button that names a restore (or an item job) counts only from its channel.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any
from urllib.parse import urlsplit

from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.webhook import WebhookClient

from bot.store import Store
from bot.workspace import Workspace

log = logging.getLogger(__name__)

SLACK_HOOKS = ("https", "hooks.slack.com")
RESPOND_TIMEOUT = 5  # seconds for one response_url post
MAX_PENDING = 5  # per response_url: Slack accepts 5 posts to one anyway
# Threads that work after the ack (commands.common.after_ack, the form opener): these wait for
# their post, so that a listener's replies and its later messages keep their order.
WAITING_THREADS = ("pitr-work", "open-form", "modal-submit")
STARTING = "pitr-bot is still connecting to Slack; try again in a minute."


def response_url_allowed(url: object, api_url: str) -> bool:
    """True only for https://hooks.slack.com/... or the configured Slack API's own host."""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 for c in url) or "\\" in url:
        return False
    try:
        parts, api = urlsplit(url), urlsplit(api_url)
        port, api_port = parts.port, api.port  # raise on a malformed port
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None:
        return False
    if (parts.scheme, parts.netloc) == SLACK_HOOKS:
        return True
    return (parts.scheme, (parts.hostname or "").lower(), port) == (
        api.scheme,
        (api.hostname or "").lower(),
        api_port,
    )


class ResponseSender:
    """Posts to response_urls from a small pool, in order per URL, each with a timeout.

    A listener's respond() returns at once: a slow or hanging response_url can hold a pool
    thread for RESPOND_TIMEOUT seconds, never a thread that serves requests.
    """

    def __init__(self, threads: int = 4):
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pitr-respond")
        self._pending: dict[str, list[Future]] = {}
        self._lock = threading.Lock()

    def send(self, url: str, message: dict[str, Any]) -> Future | None:
        with self._lock:
            pending = {u: [f for f in fs if not f.done()] for u, fs in self._pending.items()}
            self._pending = {u: fs for u, fs in pending.items() if fs}
            queue = self._pending.setdefault(url, [])
            if len(queue) >= MAX_PENDING:
                log.warning("dropped a response_url post: %d already waiting", len(queue))
                return None
            future = self._pool.submit(self._post, url, message, queue[-1] if queue else None)
            queue.append(future)
            return future

    def close(self, timeout: float = 2 * RESPOND_TIMEOUT) -> None:
        """On shutdown: replies already owed get a bounded time to go out, then we stop."""
        with self._lock:
            owed = [f for fs in self._pending.values() for f in fs if not f.done()]
        self._pool.shutdown(wait=False)
        _, unsent = wait_futures(owed, timeout=timeout)
        if unsent:
            log.warning("%d ephemeral replies not sent before shutdown", len(unsent))

    @staticmethod
    def _post(url: str, message: dict[str, Any], before: Future | None) -> None:
        if before is not None:
            wait_futures([before], timeout=RESPOND_TIMEOUT + 1)
        try:
            resp = WebhookClient(url, timeout=RESPOND_TIMEOUT).send_dict(message)
            if resp.status_code >= 300:
                log.warning("response_url answered HTTP %s", resp.status_code)
        except Exception as exc:  # noqa: BLE001 - nothing to tell anyone but the log
            log.warning("response_url post failed (%s)", type(exc).__name__)


class SafeRespond:
    """Bolt's respond() for an allowed response_url that never blocks a request thread."""

    def __init__(self, response_url: str, sender: ResponseSender):
        self.response_url = response_url
        self._sender = sender

    def __call__(
        self,
        text: str | dict = "",
        blocks: Any = None,
        attachments: Any = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        thread_ts: str | None = None,
        metadata: dict | None = None,
    ) -> Future | None:
        message: dict[str, Any] = dict(text) if isinstance(text, dict) else {"text": text}
        extra = {
            "blocks": _dicts(blocks),
            "attachments": _dicts(attachments),
            "response_type": response_type,
            "replace_original": replace_original,
            "delete_original": delete_original,
            "unfurl_links": unfurl_links,
            "unfurl_media": unfurl_media,
            "thread_ts": thread_ts,
            "metadata": metadata,
        }
        message.update({k: v for k, v in extra.items() if v is not None})
        future = self._sender.send(self.response_url, message)
        if future is not None and threading.current_thread().name.startswith(WAITING_THREADS):
            wait_futures([future], timeout=RESPOND_TIMEOUT + 1)
        return future


def _dicts(items: Any) -> Any:
    if items is None:
        return None
    return [i.to_dict() if hasattr(i, "to_dict") else i for i in items]


def _no_respond(*_args: Any, **_kwargs: Any) -> None:
    """respond() for a request without an allowed response_url: nowhere to answer."""


def request_guard(
    workspace: Workspace,
    store: Store,
    api_url: str,
    sender: ResponseSender,
) -> Callable[..., BoltResponse]:
    """The Bolt middleware (App(before_authorize=...)) enforcing this module's rules."""

    def guard(req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> Any:  # noqa: A002
        body, context = req.body or {}, req.context
        # 2 first: whatever happens next (a refusal, the error handler) can only respond safely.
        url = context.response_url
        if url and not response_url_allowed(url, api_url):
            # Slack never sends one: the request is not Slack's, whatever its signature says.
            log.warning("refused a request whose response_url is outside Slack's hooks host")
            context["response_url"] = None
            context["respond"] = _no_respond
            return BoltResponse(status=400, body="")
        context["respond"] = SafeRespond(url, sender) if url else _no_respond

        if body.get("type") == "url_verification":
            return next()  # Slack checking the Request URL (signed, no workspace): answer it

        teams, enterprises = _ids(body, context)
        refusal = workspace.refusal(teams, enterprises)
        if refusal is not None:
            log.warning("refused a Slack request: %s", refusal)
            if not workspace.known:
                return BoltResponse(status=200, body=STARTING)
            return BoltResponse(status=403, body="")

        wrong_channel = _card_channel_refusal(body, store)
        if wrong_channel is not None:
            log.warning("refused a click: %s", wrong_channel)
            return BoltResponse(status=200, body="")
        return next()

    return guard


def _ids(body: dict, context: Any) -> tuple[set[str], set[str]]:
    """Every team and enterprise id the request names (any disagreement is a refusal)."""
    teams = {body.get("team_id"), _field(body.get("team"), "id"), context.team_id}
    enterprises = {
        body.get("enterprise_id"),
        _field(body.get("enterprise"), "id"),
        context.enterprise_id,
    }
    if body.get("is_enterprise_install") in (True, "true"):
        enterprises.add("(enterprise install)")
    return _strings(teams), _strings(enterprises)


def _field(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, dict) else value


def _strings(values: set[Any]) -> set[str]:
    return {str(v) for v in values if v not in (None, "", False, "false")}


def _card_channel_refusal(body: dict, store: Store) -> str | None:
    """A click on a button carrying a restore id must come from that restore's channel."""
    if body.get("type") != "block_actions":
        return None
    channel = _field(body.get("channel"), "id") or _field(body.get("container"), "channel_id")
    for action in body.get("actions") or []:
        value = action.get("value") if isinstance(action, dict) else None
        if not isinstance(value, str) or not 0 < len(value) <= 70:
            continue
        value = value.split(":", 1)[0]  # an undo card's decision says which: "<job id>:undo"
        req = store.get(value)
        if req is not None and req.channel != channel:
            return f"a button of restore {req.id} clicked outside its channel"
        # Copy back, its approval and undo carry an item job's id (bot/items/jobs.py).
        job = store.job_get(value) if req is None and value.startswith("j") else None
        if job is not None and job.channel != channel:
            return f"a button of item job {job.id} clicked outside its channel"
    return None
