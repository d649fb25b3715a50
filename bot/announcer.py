"""Announcer: delivers the outbox to Slack, in order, at least once, never dropped silently.

A transition writes what it owes Slack ("card", "started", "done", ...) in the same store
write; this module renders each item from the request's *current* state and sends it. If
Slack is rate-limiting or down, the item stays and is retried with backoff, so a restart or an
outage delays a notice but never loses it. A sender thread does this in the background;
`flush()` can also be called directly by a listener that wants its card out now.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import blocks
from bot.batches.blocks import (
    batch_card,
    batch_done_blocks,
    batch_progress_text,
    batch_requester_notice,
)
from bot.batches.engine import members_of
from bot.logs import restore_context
from bot.restore_events import event_type, slack_metadata
from bot.restores import RestoreRequest, State, utcnow
from bot.store import OutboxItem, Store

log = logging.getLogger(__name__)

# Errors that no retry will fix: the item is dropped (and logged) or the request cancelled.
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "msg_too_long",
    "invalid_blocks",
    "message_not_found",
    "cant_update_message",
    "user_not_in_channel",
    "restricted_action",
    "no_permission",
}
CHANNEL_UNUSABLE = {"channel_not_found", "not_in_channel", "is_archived", "restricted_action"}
MAX_BACKOFF = timedelta(seconds=30)
CLAIM = timedelta(seconds=60)  # long enough for Slack's retries of one call
BATCH = 200
NOTICES, OTHERS = "notices", "others"
FOREVER = timedelta(days=3650)


def _order(item_id: int | str) -> tuple[int, str]:
    """Outbox ids are integers (SQLite) or time-ordered strings (DynamoDB)."""
    return (item_id, "") if isinstance(item_id, int) else (0, item_id)


class Announcer:
    def __init__(
        self,
        client: WebClient,
        store: Store,
        clock: Callable[[], datetime] = utcnow,
        poll_seconds: float = 10,
        owner: str = "local",
    ):
        self.owner = owner
        self.client = client
        self.store = store
        self.clock = clock
        self.poll_seconds = poll_seconds
        # Two lanes, each its own thread: the bot's notices, and the kinds other modules own
        # (their senders may call AWS first, e.g. the after-ACTIVE comparison). Fifty restores
        # finishing together are announced without waiting for anyone's comparison.
        self._locks = {NOTICES: threading.Lock(), OTHERS: threading.Lock()}
        self._wake = {NOTICES: threading.Event(), OTHERS: threading.Event()}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.on_error: Callable[[str], None] = lambda error: None  # metrics
        # Outbox kinds owned by other modules (e.g. aftercare): kind -> sender(request).
        self.senders: dict[str, Callable[[RestoreRequest], None]] = {}
        # Outbox kinds about something else than a restore request (e.g. "drill_report"):
        # kind -> sender(subject id); the item's `restore_id` holds that id.
        self.item_senders: dict[str, Callable[[str], None]] = {}
        # Whether a source table's account has incremental exports set up (the card then
        # offers `/pitr-diff`); bot/services.py wires it to the settings and policy.
        self.exports_for: Callable[[str], bool] = lambda source: False

    # -- background senders ----------------------------------------------------------------
    def start(self) -> None:
        for lane in (NOTICES, OTHERS):
            thread = threading.Thread(
                target=self._run, args=(lane,), name=f"announcer-{lane}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def kick(self) -> None:
        for event in self._wake.values():
            event.set()

    def stop(self, timeout: float = 5) -> None:
        """Finish what is being sent, then stop (the rest waits in the outbox)."""
        self._stop.set()
        self.kick()
        for thread in self._threads:
            thread.join(timeout)

    def _run(self, lane: str) -> None:
        wake = self._wake[lane]
        while not self._stop.is_set():
            wake.wait(timeout=min(5.0, self.poll_seconds))
            wake.clear()
            if self._stop.is_set():
                break
            try:
                self._flush_lane(lane)
            except Exception:  # noqa: BLE001 - the sender must outlive any single failure
                log.exception("announcer: flush failed; will retry")

    # -- delivery ---------------------------------------------------------------------------
    def flush(self) -> int:
        """Send every due item of both lanes now (a listener that wants its card out)."""
        return self._flush_lane(NOTICES) + self._flush_lane(OTHERS)

    def _flush_lane(self, lane: str) -> int:
        """Send the lane's due items, oldest first; a failed item holds back its restore's
        later ones, and another module's item waits for its restore's notices."""
        with self._locks[lane]:
            delivered, held = 0, set[str]()
            while True:
                due = self.store.outbox_due(self.clock(), limit=BATCH)
                items = [i for i in due if self._lane(i) == lane and i.restore_id not in held]
                if lane == OTHERS and items:
                    # Pending, not only due: a notice in retry backoff still goes first.
                    pending = self.store.outbox_due(self.clock() + FOREVER, limit=BATCH)
                    waiting = {i.restore_id for i in pending if self._lane(i) == NOTICES}
                    items = [i for i in items if i.restore_id not in waiting]
                if not items:
                    return delivered
                items.sort(key=self._priority)
                progress = self._flush_batch(items, held)
                delivered += progress
                if progress == 0:
                    return delivered

    def _lane(self, item: OutboxItem) -> str:
        return OTHERS if item.kind in self.senders or item.kind in self.item_senders else NOTICES

    @staticmethod
    def _priority(item: OutboxItem) -> tuple[int, tuple[int, str]]:
        """Notices people wait for first, then edits (they render the current state anyway);
        oldest first within each."""
        return (1 if item.kind in {"card_update", "progress"} else 0), _order(item.id)

    def _flush_batch(self, items: list[OutboxItem], held: set[str]) -> int:
        delivered = 0
        for index, item in enumerate(items):
            if item.restore_id in held:
                continue
            later = items[index + 1 :]
            if item.kind in {"card_update", "progress"} and any(
                i.restore_id == item.restore_id and i.kind == item.kind for i in later
            ):
                # Both render the current state; only the last one needs sending.
                self.store.outbox_done(item.id)
                delivered += 1
                continue
            if self._deliver(item):
                delivered += 1
            else:
                held.add(item.restore_id)
        return delivered

    def _deliver(self, item: OutboxItem) -> bool:
        if not self.store.outbox_claim(item.id, self.owner, self.clock() + CLAIM):
            return False  # another replica is sending it; keep this restore's order
        with restore_context(item.restore_id):
            return self._deliver_claimed(item)

    def _deliver_claimed(self, item: OutboxItem) -> bool:
        if item.kind in self.item_senders:
            return self._deliver_item(item)
        req = self.store.get(item.restore_id)
        if req is None:
            self.store.outbox_done(item.id)
            return True
        try:
            self._send(item.kind, req)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            if error in PERMANENT:
                self._give_up(item, req, error)
                return True
            return self._retry(item, req, error)
        except (SlackClientError, OSError) as exc:  # connection refused, timeouts, DNS
            return self._retry(item, req, type(exc).__name__)
        self.store.outbox_done(item.id)
        return True

    def _deliver_item(self, item: OutboxItem) -> bool:
        """An item whose sender reads its own subject (not a restore request)."""
        try:
            self.item_senders[item.kind](item.restore_id)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            if error in PERMANENT:
                self.on_error(error)
                log.error("%s %s: Slack refused it for good: %s", item.kind, item.restore_id, error)
                self.store.outbox_done(item.id)
                return True
            return self._retry(item, None, error)
        except (SlackClientError, OSError) as exc:
            return self._retry(item, None, type(exc).__name__)
        self.store.outbox_done(item.id)
        return True

    def _retry(self, item: OutboxItem, req: RestoreRequest | None, error: str) -> bool:
        self.on_error(error)
        delay = min(MAX_BACKOFF, timedelta(seconds=2 ** min(item.attempts, 5)))
        log.warning(
            "restore %s: Slack %s for %s, retrying in %ss (attempt %d)",
            item.restore_id,
            error,
            item.kind,
            int(delay.total_seconds()),
            item.attempts + 1,
        )
        self.store.outbox_retry(item.id, self.clock() + delay, error)
        return False

    def _give_up(self, item: OutboxItem, req: RestoreRequest, error: str) -> None:
        self.on_error(error)
        log.error("restore %s: Slack refused %s for good: %s", req.id, item.kind, error)
        self.store.outbox_done(item.id)
        if item.kind == "card" and error in CHANNEL_UNUSABLE and req.state == State.REQUESTED:
            # Nobody can approve a card that was never posted: close the request, say why.
            self._update(
                req,
                lambda r: r.advance(
                    State.CANCELLED,
                    self.clock(),
                    error=f"I can't post in this channel ({error}). Invite me with "
                    "`/invite @pitr-bot`, or use a public channel.",
                ),
            )

    # -- rendering --------------------------------------------------------------------------
    def _send(self, kind: str, req: RestoreRequest) -> None:
        now = self.clock()
        if req.batch_id and self._send_batch(kind, req, now):
            return
        if kind == "card":
            if req.card_ts:
                return  # already posted before a crash
            text, card = blocks.approval_card(req, now, self.exports_for(req.source))
            resp = self.client.chat_postMessage(
                channel=req.channel,
                text=text,
                blocks=blocks.to_dicts(card),
                metadata=slack_metadata(req, event_type(req, State.REQUESTED)),
            )
            ts = resp["ts"]
            self._update(req, lambda r: replace(r, card_ts=ts))
        elif kind == "card_update":
            if not req.card_ts:
                return
            text, card = blocks.approval_card(req, now, self.exports_for(req.source))
            self.client.chat_update(
                channel=req.channel,
                ts=req.card_ts,
                text=text,
                blocks=blocks.to_dicts(card),
                metadata=slack_metadata(req),
            )
        elif kind == "notify_requester":
            self.client.chat_postEphemeral(
                channel=req.channel, user=req.requester, text=blocks.requester_notice(req)
            )
        elif kind in {"started", "progress", "queued"}:
            self._progress(req, now)
        elif kind == "done":
            # The broadcast is what people wait for: it goes first, and the progress reply's
            # last edit can never hold it back (that reply may have been deleted, say).
            text, done = blocks.done_blocks(req, now)
            self._reply(
                req,
                text=text,
                blocks=blocks.to_dicts(done),
                reply_broadcast=True,
                metadata=slack_metadata(req, event_type(req, State.ACTIVE)),
            )
            self._last_progress_edit(req, now)
        elif kind == "period_changed":
            self._reply(
                req,
                text=blocks.period_changed_text(req),
                reply_broadcast=True,
                metadata=slack_metadata(req),
            )
        elif kind == "failed":
            self._reply(
                req,
                text=blocks.failed_text(req),
                reply_broadcast=True,
                metadata=slack_metadata(req, event_type(req, State.FAILED)),
            )
        elif kind in self.senders:
            self.senders[kind](req)
        else:
            log.error("restore %s: unknown outbox kind %r dropped", req.id, kind)

    def _send_batch(self, kind: str, req: RestoreRequest, now: datetime) -> bool:
        """A batch table's messages: one card, one progress reply, one summary, all on the
        leader's card. True when handled here."""
        leader = req if req.batch_id == req.id else self.store.get(req.batch_id or "")
        if leader is None:
            return True  # nowhere to say it
        members = members_of(self.store, leader.id)
        # A member's change updates the leader's card too: the card counts every table.
        if kind == "card_update" or (kind == "card" and req is leader):
            text, card = batch_card(members, now)
            if kind == "card" and not leader.card_ts:
                resp = self.client.chat_postMessage(
                    channel=leader.channel,
                    text=text,
                    blocks=blocks.to_dicts(card),
                    metadata=slack_metadata(leader, event_type(leader, State.REQUESTED)),
                )
                ts = resp["ts"]
                # Every table's thread is the card's: its aftercare and reminder go there.
                for member in members:
                    self._update(member, lambda r: replace(r, card_ts=ts))
            elif kind == "card_update" and leader.card_ts:
                self.client.chat_update(
                    channel=leader.channel,
                    ts=leader.card_ts,
                    text=text,
                    blocks=blocks.to_dicts(card),
                    metadata=slack_metadata(leader),
                )
            return True
        if kind in {"card", "card_update"}:
            return True  # a member has no card of its own
        if kind in {"started", "progress", "queued", "done", "failed"}:
            text = batch_progress_text(members, now)
            meta = slack_metadata(req)
            if leader.progress_ts:
                self.client.chat_update(
                    channel=leader.channel, ts=leader.progress_ts, text=text, metadata=meta
                )
            else:
                resp = self._reply(leader, text=text, metadata=meta)
                if resp is not None:
                    ts = resp["ts"]
                    self._update(leader, lambda r: replace(r, progress_ts=ts, progress_at=now))
            return True
        if kind == "batch_done":
            text, done = batch_done_blocks(members, now)
            self._reply(
                leader,
                text=text,
                blocks=blocks.to_dicts(done),
                reply_broadcast=True,
                metadata=slack_metadata(leader, "pitr_batch_done"),
            )
            return True
        if kind == "notify_requester":
            if req is leader:  # the leader tells the requester once, naming every table
                self.client.chat_postEphemeral(
                    channel=leader.channel,
                    user=leader.requester,
                    text=batch_requester_notice(members),
                )
            return True
        return False  # e.g. aftercare: per table, as for one table

    def _progress(self, req: RestoreRequest, now: datetime) -> None:
        """One thread reply, posted once and then edited in place as the restore goes on."""
        if req.state == State.APPROVED and req.queued_ahead is not None:
            text = blocks.queued_text(req)
        else:
            text = blocks.started_text(req) + "\n" + self._status_line(req, now)
        meta = slack_metadata(req)
        if req.progress_ts:
            self.client.chat_update(
                channel=req.channel, ts=req.progress_ts, text=text, metadata=meta
            )
            self._update(req, lambda r: replace(r, progress_at=now))
            return
        resp = self._reply(req, text=text, metadata=meta)
        if resp is not None:
            ts = resp["ts"]
            self._update(req, lambda r: replace(r, progress_ts=ts, progress_at=now))

    def _last_progress_edit(self, req: RestoreRequest, now: datetime) -> None:
        """Best effort: make the progress reply say ACTIVE; if Slack refuses now, queue it."""
        try:
            self._progress(req, now)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("restore %s: final progress edit failed (%s); queued", req.id, exc)
            self._update(req, lambda r: r, announce=("progress",))

    @staticmethod
    def _status_line(req: RestoreRequest, now: datetime) -> str:
        if req.state == State.ACTIVE:
            return f":white_check_mark: {blocks.code(req.target)} is ACTIVE."
        return blocks.progress_text(req, now)

    def _reply(self, req: RestoreRequest, **kwargs: Any) -> Any:
        if not req.card_ts:
            log.warning("restore %s: no card to reply to; message skipped", req.id)
            return None
        return self.client.chat_postMessage(channel=req.channel, thread_ts=req.card_ts, **kwargs)

    def _update(
        self,
        req: RestoreRequest,
        change: Callable[[RestoreRequest], RestoreRequest],
        announce: tuple[str, ...] = (),
    ) -> None:
        """Apply `change` with compare-and-set, re-reading on conflict (a tracker may race)."""
        for _ in range(20):
            fresh = self.store.get(req.id)
            if fresh is None:
                return
            try:
                new = change(fresh)
            except Exception:  # noqa: BLE001 - e.g. the request moved on; nothing to record
                return
            if self.store.save(fresh, new, announce=announce) is not None:
                return
        log.error("restore %s: could not record Slack message ids after 20 tries", req.id)
