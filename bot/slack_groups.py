"""User-group membership from Slack, cached briefly. A failure means "not a member"."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

log = logging.getLogger(__name__)


class GroupResolver:
    def __init__(self, client: WebClient, ttl_seconds: float = 60):
        self.client = client
        self.ttl = ttl_seconds
        self._cache: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    def __call__(self, group_id: str) -> set[str] | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(group_id)
        if cached and now - cached[0] < self.ttl:
            return cached[1]
        try:
            resp = self.client.usergroups_users_list(usergroup=group_id)
        except (SlackApiError, SlackClientError, OSError) as exc:
            # Never fall back to a stale answer for authorisation: refuse instead.
            log.warning("could not resolve user group %s: %s", group_id, exc)
            return None
        members = set(resp.get("users", []))
        with self._lock:
            self._cache[group_id] = (now, members)
        return members
