"""Services: the engine's parts, built once and shared by every command (build_services)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.announcer import Announcer
from bot.aws import AssumedRole
from bot.events_aws import EventBus
from bot.guards import ResponseSender
from bot.items.export_plan import exports_set_up
from bot.metrics import Metrics
from bot.pitr import PitrService
from bot.policy import Policy
from bot.polling import PollLimits
from bot.restore_events import BUS_KINDS, bus_entry
from bot.restores import utcnow
from bot.settings import Settings
from bot.slack_groups import GroupResolver
from bot.store import Store
from bot.tracker import Tracker
from bot.workflow import Workflow
from bot.workspace import Workspace

log = logging.getLogger(__name__)

WORKERS = 4  # slow work after ack: AWS and Slack calls; more threads only fight for the GIL


class WorkPool(ThreadPoolExecutor):
    """The listeners' work pool, knowing whether anything is queued or running.

    `pitr-bot console` waits on `idle()` before reading the next line, so a script's "1"
    clicks the card the previous line asked for, however slow the machine.
    """

    def __init__(self, workers: int = WORKERS) -> None:
        super().__init__(workers, thread_name_prefix="pitr-work")
        self._pending = 0
        self._pending_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._pending_lock:
            self._pending += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        return future

    def idle(self) -> bool:
        with self._pending_lock:
            return self._pending == 0

    def _finished(self, _future: object) -> None:
        with self._pending_lock:
            self._pending -= 1


@dataclass
class Services:
    settings: Settings
    policy: Policy
    store: Store
    pitr: PitrService
    client: WebClient
    workflow: Workflow
    announcer: Announcer
    tracker: Tracker
    clock: Callable[[], datetime]
    metrics: Metrics

    # Extra start-up work registered by command modules (e.g. re-creating reminders).
    on_start: list[Callable[[], None]] = field(default_factory=list)
    # Shutdown work registered by command modules (e.g. stopping item jobs at a checkpoint),
    # run after the listeners' work is done and before the store closes.
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    # One-shot start-up work running in the background sets these when done (tests wait on
    # them, so a start-up AWS call is never counted against the request under test).
    started: list[threading.Event] = field(default_factory=list)
    # The slow part of each listener runs here, after ack(): see commands.common.after_ack.
    work: WorkPool = field(default_factory=WorkPool)
    # Ephemeral replies (response_url) go out from here, never from a request thread.
    replies: ResponseSender = field(default_factory=ResponseSender)
    # The workspace and org this bot serves (auth.test); unknown = every request refused.
    workspace: Workspace | None = None

    def start_background(self) -> None:
        if self.workspace is not None:
            self.workspace.start()
        self.announcer.start()
        self.tracker.start()
        for hook in self.on_start:
            hook()

    def stop_background(self) -> None:
        self.work.shutdown(wait=True)  # finish what was acked
        self.replies.close()  # and the replies it owes
        for hook in self.on_stop:
            try:
                hook()
            except Exception:  # noqa: BLE001 - the rest of the shutdown must still happen
                log.warning("a shutdown step failed", exc_info=True)
        self.tracker.stop()
        self.announcer.stop()
        if self.workspace is not None:
            self.workspace.stop()
        try:
            self.workflow.release_leases()
        except Exception:  # noqa: BLE001 - best effort; leases expire on their own
            log.warning("could not release leases on shutdown", exc_info=True)


def roles_of(policy: Policy) -> dict[str, AssumedRole]:
    """The policy's `accounts` as roles the AWS gateway assumes."""
    return {
        alias: AssumedRole(account.role_arn, account.external_id)
        for alias, account in policy.accounts.items()
    }


class QuietWebClient(WebClient):
    """The bot's one Slack client: every message it posts or edits sets `unfurl_links` and
    `unfurl_media` off, so no text from a person or an item becomes a preview."""

    def chat_postMessage(self, **kwargs: Any) -> Any:  # noqa: N802 - slack_sdk's name
        return super().chat_postMessage(**quiet(kwargs))

    def chat_postEphemeral(self, **kwargs: Any) -> Any:  # noqa: N802
        return super().chat_postEphemeral(**quiet(kwargs))

    def chat_update(self, **kwargs: Any) -> Any:
        return super().chat_update(**quiet(kwargs))


def quiet(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"unfurl_links": False, "unfurl_media": False, **kwargs}


def slack_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return QuietWebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),  # honours Retry-After
            ServerErrorRetryHandler(max_retry_count=2),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )


def use_event_bus(workflow: Workflow, announcer: Announcer, bus: EventBus) -> None:
    """Each transition owes an event (Context.owed); the announcer's other lane sends it."""
    workflow.ctx.bus_events = True
    for kind in BUS_KINDS:
        announcer.senders[kind] = lambda req, kind=kind: bus.put(bus_entry(req, kind, bus.bus))


def build_services(
    settings: Settings,
    policy: Policy,
    store: Store,
    pitr: PitrService | None = None,
    client: WebClient | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Services:
    client = client or slack_client(settings)
    pitr = pitr or PitrService()
    if policy.accounts:
        pitr.use_accounts(roles_of(policy))
    workflow = Workflow(
        store=store,
        pitr=pitr,
        policy=policy,
        members=GroupResolver(client),
        clock=clock,
        poll_seconds=settings.poll_seconds,
        limits=PollLimits(
            settings.poll_seconds,
            settings.poll_min_seconds,
            settings.poll_max_seconds,
            settings.poll_budget_seconds,
        ),
        min_restore_minutes=settings.min_restore_minutes,
    )
    announcer = Announcer(
        client, store, clock=clock, poll_seconds=settings.poll_seconds, owner=workflow.owner
    )
    workflow.on_change = announcer.kick
    announcer.exports_for = lambda source: exports_set_up(
        source, settings.export_s3, policy.accounts
    )
    workflow.ctx.open_caps = (settings.max_open_requests_per_user, settings.max_open_requests)

    if settings.event_bus:
        use_event_bus(workflow, announcer, EventBus(pitr.sibling("events"), settings.event_bus))
    tracker = Tracker(workflow, announcer, settings.poll_seconds)
    metrics = Metrics(store, clock)
    workflow.on_event = lambda event: metrics.events.labels(event).inc()
    announcer.on_error = lambda error: metrics.slack_errors.labels(error).inc()
    pitr.on_error = lambda code: metrics.aws_errors.labels(code).inc()
    return Services(
        settings,
        policy,
        store,
        pitr,
        client,
        workflow,
        announcer,
        tracker,
        clock,
        metrics,
        workspace=Workspace(client.auth_test),
    )
