"""The EventBridge gateway: restore events to PITR_BOT_EVENT_BUS (PutEvents).

The client is the DynamoDB gateway's sibling (same account, credentials and endpoint).
A failure raises EventBusUnavailable, an OSError, so the announcer keeps the outbox item and
retries it like a Slack outage: an event is late, never lost.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)


class EventBusUnavailable(OSError):
    """EventBridge did not take the event; the outbox retries it."""


class EventBus:
    def __init__(self, client: Any, bus: str):
        self.client = client
        self.bus = bus

    def put(self, entry: dict[str, str]) -> None:
        try:
            resp = self.client.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            raise EventBusUnavailable(f"EventBridge: {exc}") from exc
        if resp.get("FailedEntryCount"):
            failed = (resp.get("Entries") or [{}])[0]
            raise EventBusUnavailable(
                f"EventBridge refused the event: {failed.get('ErrorCode')} "
                f"{failed.get('ErrorMessage')}"
            )
