"""The App Home tab: published for a person each time they open it (`app_home_opened`).

Links to a restore's thread come from chat.getPermalink (no OAuth scope needed), cached per
message so each card is asked about once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.home import CoverageCache, gather_home, home_view
from bot.restores import RestoreRequest
from bot.services import Services
from commands.common import after_ack

log = logging.getLogger(__name__)


class Permalinks:
    """chat.getPermalink per (channel, ts), cached; a failure is retried after `retry_after` s."""

    def __init__(
        self,
        client: WebClient,
        size: int = 1000,
        retry_after: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.client, self.size, self.retry_after = client, size, retry_after
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._links: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._failed: dict[tuple[str, str], float] = {}

    def __call__(self, req: RestoreRequest) -> str | None:
        if not req.card_ts or not req.channel:
            return None
        key = (req.channel, req.card_ts)
        with self._lock:
            if key in self._links:
                self._links.move_to_end(key)
                return self._links[key]
            failed_at = self._failed.get(key)
            if failed_at is not None and self._monotonic() - failed_at < self.retry_after:
                return None
        url = None
        try:
            resp = self.client.chat_getPermalink(channel=req.channel, message_ts=req.card_ts)
            url = resp.get("permalink")
        except (SlackApiError, SlackClientError) as exc:
            log.info("no permalink for %s: %s", req.id, exc)
        with self._lock:
            if isinstance(url, str) and url:
                self._failed.pop(key, None)
                self._links[key] = url
                while len(self._links) > self.size:
                    self._links.popitem(last=False)
                return url
            self._failed[key] = self._monotonic()
            if len(self._failed) > self.size:
                self._failed.clear()
        return None


def register(app: App, services: Services) -> None:
    coverage = CoverageCache(services.pitr, services.policy, services.clock)
    permalinks = Permalinks(services.client)

    @app.event("app_home_opened")
    def home_opened(event: dict, client: WebClient) -> None:
        # The same event fires for the Messages tab; only Home has a view to publish.
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        user_id = str(event["user"])

        def publish_home() -> None:
            members = services.workflow.members

            def visible(table: str) -> bool:
                # Home has no channel: the tables rule (request or approve) alone decides.
                return services.policy.may_see(user_id, None, table, members).allowed

            data = gather_home(
                services.store,
                services.pitr,
                services.policy,
                services.clock(),
                coverage=coverage,
                permalink=permalinks,
                visible=visible,
                with_drills=True,
            )
            client.views_publish(user_id=user_id, view=home_view(data))

        # Bolt has already acked the event; the AWS and Slack calls go to the work pool.
        after_ack(services, None, publish_home)
