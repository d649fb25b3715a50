"""Serving: HTTP on waitress (production WSGI server) or Socket Mode, plus health endpoints."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress import create_server

from bot.services import Services

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024  # Slack's payloads are a few kB; anything this large is not Slack.
SLACK_CHECK_SECONDS = 15  # /readyz asks Slack at most this often

StartResponse = Callable[..., Any]


class HttpApp:
    """WSGI routing: /slack/events to Bolt, /healthz and /readyz for the platform."""

    def __init__(self, app: App | None, services: Services):
        self.bolt = SlackRequestHandler(app) if app is not None else None
        self.services = services
        self.ready = threading.Event()
        self._slack_checked = float("-inf")
        self._slack_ok = False

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz" and method in {"GET", "HEAD"}:
            if self.ready.is_set():
                return _json(start_response, "200 OK", {"status": "ok"})
            return _json(start_response, "503 Service Unavailable", {"status": "starting"})
        if path == "/readyz" and method in {"GET", "HEAD"}:
            checks = self._readiness()
            ok = all(v == "ok" for v in checks.values())
            status = "200 OK" if ok else "503 Service Unavailable"
            return _json(start_response, status, checks)
        if path == "/metrics" and method in {"GET", "HEAD"}:
            data = self.services.metrics.render()
            start_response(
                "200 OK",
                [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(data)))],
            )
            return [data]
        if path == "/slack/events" and self.bolt is not None:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length > MAX_BODY:
                return _json(start_response, "413 Payload Too Large", {"error": "too large"})
            return self.bolt(environ, start_response)
        return _json(start_response, "404 Not Found", {"error": "not found"})

    def _readiness(self) -> dict[str, str]:
        """Store and Slack reachable: a replica that can't reach either shouldn't get traffic."""
        checks = {"store": "ok", "slack": "ok"}
        try:
            self.services.store.ping()
        except Exception as exc:  # noqa: BLE001 - any store failure means not ready
            checks["store"] = f"unreachable: {type(exc).__name__}"
        now = time.monotonic()
        if now - self._slack_checked > SLACK_CHECK_SECONDS:
            try:
                self.services.client.api_test()
                self._slack_ok = True
            except Exception:  # noqa: BLE001 - any failure means not ready
                self._slack_ok = False
            self._slack_checked = now
        if not self._slack_ok:
            checks["slack"] = "unreachable"
        return checks


def _json(start_response: StartResponse, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


class BotServer:
    """The HTTP listener (always: health endpoints) plus Socket Mode when configured."""

    def __init__(self, app: App, services: Services):
        self.services = services
        settings = services.settings
        self.app = app
        self.http = HttpApp(None if settings.socket_mode else app, services)
        self.server = create_server(
            self.http,
            host=settings.host,
            port=settings.port,
            threads=8,
            max_request_body_size=MAX_BODY,
            ident="pitr-bot",
            clear_untrusted_proxy_headers=True,
        )
        self.port: int = self.server.effective_port  # type: ignore[union-attr]
        self._socket_handler: Any = None
        self._closing = False

    def run(self) -> None:
        """Serve until `close()` (or a signal in `serve`), then stop background work."""
        settings = self.services.settings
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            token = settings.slack_app_token.get_secret_value()  # type: ignore[union-attr]
            self._socket_handler = SocketModeHandler(self.app, token)
            self._socket_handler.connect()
            log.info("connected to Slack in Socket Mode; health on port %s", self.port)
        else:
            log.info("listening on port %s (POST /slack/events)", self.port)
        self.services.start_background()
        self.http.ready.set()
        try:
            self.server.run()
        except OSError:
            # close() from another thread pulls the sockets from under waitress's select().
            if not self._closing:
                raise
        finally:
            self.http.ready.clear()
            if self._socket_handler is not None:
                self._socket_handler.close()
            self.services.stop_background()
            log.info("stopped")

    def close(self) -> None:
        """Stop accepting; in-flight requests finish (waitress waits for its workers)."""
        self._closing = True
        self.server.close()


def serve(app: App, services: Services) -> None:
    """Run until SIGTERM/SIGINT, then stop cleanly: no new work, background work finished."""
    server = BotServer(app, services)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        raise SystemExit(0)  # waitress's loop catches this and stops accepting

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.run()
    finally:
        services.store.close()
