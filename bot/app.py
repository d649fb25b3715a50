"""create_app(settings, services) -> the Bolt app, with every command registered."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.announcer import Announcer
from bot.metrics import Metrics
from bot.pitr import PitrService
from bot.policy import Policy
from bot.polling import PollLimits
from bot.restores import utcnow
from bot.settings import Settings
from bot.slack_groups import GroupResolver
from bot.store import Store
from bot.tracker import Tracker
from bot.workflow import Workflow

log = logging.getLogger(__name__)

WORKERS = 4  # slow work after ack: AWS and Slack calls; more threads only fight for the GIL


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
    # The slow part of each listener runs here, after ack(): see commands.common.after_ack.
    work: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(WORKERS, thread_name_prefix="pitr-work")
    )

    def start_background(self) -> None:
        self.announcer.start()
        self.tracker.start()
        for hook in self.on_start:
            hook()

    def stop_background(self) -> None:
        self.work.shutdown(wait=True)  # finish what was acked
        self.tracker.stop()
        self.announcer.stop()
        try:
            self.workflow.release_leases()
        except Exception:  # noqa: BLE001 - best effort; leases expire on their own
            log.warning("could not release leases on shutdown", exc_info=True)


def slack_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),  # honours Retry-After
            ServerErrorRetryHandler(max_retry_count=2),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )


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
    workflow = Workflow(
        store=store,
        pitr=pitr,
        policy=policy,
        members=GroupResolver(client),
        clock=clock,
        poll_seconds=settings.poll_seconds,
        limits=PollLimits(
            settings.poll_seconds, settings.poll_min_seconds, settings.poll_max_seconds
        ),
        min_restore_minutes=settings.min_restore_minutes,
    )
    announcer = Announcer(
        client, store, clock=clock, poll_seconds=settings.poll_seconds, owner=workflow.owner
    )
    workflow.on_change = announcer.kick
    tracker = Tracker(workflow, announcer, settings.poll_seconds)
    metrics = Metrics(store, clock)
    workflow.on_event = lambda event: metrics.events.labels(event).inc()
    announcer.on_error = lambda error: metrics.slack_errors.labels(error).inc()
    pitr.on_error = lambda code: metrics.aws_errors.labels(code).inc()
    return Services(
        settings, policy, store, pitr, client, workflow, announcer, tracker, clock, metrics
    )


def create_app(settings: Settings, services: Services, **app_kwargs: Any) -> App:
    from commands import aftercare, enable, home, modal, restore, status

    secret = settings.slack_signing_secret
    app = App(
        client=services.client,
        signing_secret=secret.get_secret_value() if secret else None,
        # Ack first: every listener calls ack() and hands its slow part to services.work
        # (commands.common.after_ack), so it returns within a millisecond or two. Bolt then
        # answers Slack as the listener returns, in the request's own thread, without the
        # 10 ms polling it uses to wait for an ack() from another thread.
        process_before_response=True,
        **app_kwargs,
    )

    @app.error
    def on_error(error: Exception, body: dict, respond: Any = None) -> None:
        report_error(error, _kind(body), respond if body.get("response_url") else None)

    @app.middleware
    def count_requests(body: dict, next: Callable[[], None]) -> None:  # noqa: A002 - Bolt's name
        services.metrics.requests.labels(_kind(body)).inc()
        next()

    restore.register(app, services)
    modal.register(app, services)
    status.register(app, services)
    enable.register(app, services)
    home.register(app, services)
    # After ACTIVE: differences + fixes, cleanup reminders (outbox senders, on_start hook).
    aftercare.register(app, services)
    return app


def report_error(error: BaseException, where: str, respond: Any = None) -> None:
    """Log an unexpected error with a short reference and give the person that reference."""
    ref = uuid.uuid4().hex[:8]
    log.error("unhandled error in %s (ref %s)", where, ref, exc_info=error)
    if respond is None:
        return
    try:
        respond(
            response_type="ephemeral",
            replace_original=False,
            text=f":warning: Something went wrong on my side (ref `{ref}`); it is logged. "
            "Try again, and tell the bot's owners if it keeps happening.",
        )
    except Exception:  # noqa: BLE001 - already in the error path
        log.warning("could not tell the person about error %s", ref)


def _kind(body: dict) -> str:
    actions = body.get("actions") or [{}]
    return str(body.get("command") or actions[0].get("action_id") or body.get("type") or "other")
