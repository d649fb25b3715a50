"""create_app(settings, services) -> the Bolt app, with every command registered.

The composition root: the one module that knows every command module. It lives in commands/
so that the engine (bot/) never imports commands/; only the entry points (bot/cli.py,
bot/console/) import this module, and nothing in the engine imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.guards import SafeRespond, request_guard
from bot.services import Services
from bot.settings import Settings
from bot.workspace import Workspace
from commands import (
    aftercare,
    break_glass,
    drill,
    enable,
    home,
    items,
    modal,
    restore,
    status,
    workflow_step,
)
from commands.common import report_error


def create_app(settings: Settings, services: Services, **app_kwargs: Any) -> App:
    secret = settings.slack_signing_secret
    if services.workspace is None:
        services.workspace = Workspace(services.client.auth_test)
    guard = request_guard(
        services.workspace, services.store, settings.slack_api_url, services.replies
    )
    app = App(
        client=services.client,
        signing_secret=secret.get_secret_value() if secret else None,
        # bot.verify checks signatures in the HTTP server, before Bolt sees a byte (Bolt's own
        # check logs the unverified body); Socket Mode needs none.
        request_verification_enabled=False,
        # auth.test runs in the background (bot.workspace), so that serve starts while Slack
        # is unreachable; until it answers, `guard` refuses every request.
        token_verification_enabled=False,
        before_authorize=guard,
        # Ack first: every listener calls ack() and hands its slow part to services.work
        # (commands.common.after_ack), so it returns within a millisecond or two. Bolt then
        # answers Slack as the listener returns, in the request's own thread, without the
        # 10 ms polling it uses to wait for an ack() from another thread.
        process_before_response=True,
        **app_kwargs,
    )

    services.workspace.on_known.append(lambda result: _share_auth_test(app, result))
    if services.workspace.known:
        _share_auth_test(app, services.workspace.auth_test_result)

    @app.error
    def on_error(error: Exception, body: dict, respond: Any = None) -> None:
        # Only the guard's respond: an error before it ran must not post to an unchecked URL.
        report_error(error, _kind(body), respond if isinstance(respond, SafeRespond) else None)

    @app.middleware
    def count_requests(body: dict, next: Callable[[], None]) -> None:  # noqa: A002 - Bolt's name
        services.metrics.requests.labels(_kind(body)).inc()
        next()

    restore.register(app, services)
    break_glass.register(app, services)
    workflow_step.register(app, services)
    modal.register(app, services)
    status.register(app, services)
    enable.register(app, services)
    home.register(app, services)
    # After ACTIVE: differences + fixes, cleanup reminders (outbox senders, on_start hook).
    aftercare.register(app, services)
    # Restore drills: /pitr-drill, the schedule (tracker clock), start-up sweep, reports.
    drill.register(app, services)
    # Getting the data back: Compare items, /pitr-diff, Copy back, Undo copy back.
    items.register(app, services)
    return app


def _share_auth_test(app: App, result: Any) -> None:
    """Give Bolt's authorization the auth.test answer, so it never calls Slack on a request."""
    from slack_bolt.middleware.authorization import SingleTeamAuthorization

    for middleware in app._middleware_list:  # noqa: SLF001 - no public way to hand it over
        if isinstance(middleware, SingleTeamAuthorization):
            middleware.auth_test_result = result


def _kind(body: dict) -> str:
    actions = body.get("actions") or [{}]
    return str(body.get("command") or actions[0].get("action_id") or body.get("type") or "other")
