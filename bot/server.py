"""Serving: HTTP on waitress (production WSGI server) or Socket Mode, plus health endpoints."""

from __future__ import annotations

import io
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
from bot.verify import MAX_BODY, SlackRequestVerifier

log = logging.getLogger(__name__)

SLACK_CHECK_SECONDS = 15  # /readyz asks Slack at most this often
WORKSPACE_WAIT_SECONDS = 5  # at start, for auth.test, before /healthz says 200
STORE_CHECK_SECONDS = 2  # /readyz and /metrics query the store at most this often

StartResponse = Callable[..., Any]


class HttpApp:
    """WSGI routing: /slack/events to Bolt, /healthz and, unless `ops` is False, /readyz and
    /metrics for the platform (PITR_BOT_OPS_BIND serves those on another address)."""

    def __init__(self, app: App | None, services: Services, ops: bool = True):
        self.bolt = SlackRequestHandler(app) if app is not None else None
        secret = services.settings.slack_signing_secret
        self.verifier = SlackRequestVerifier(
            secret.get_secret_value() if secret else "", services.store.first_use
        )
        self.services = services
        self.ops = ops
        self.ready = threading.Event()
        self._slack_checked = float("-inf")
        self._slack_ok = False
        self._store_checked = float("-inf")
        self._store_check = "ok"
        self._lock = threading.Lock()
        self._monotonic = time.monotonic  # a test stops it to see the cache, not the machine
        self._stall_logged = False

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz" and method in {"GET", "HEAD"}:
            return self._health(start_response)
        if path == "/slack/events" and self.bolt is not None:
            return self._slack(environ, start_response)
        if not self.ops:
            return _json(start_response, "404 Not Found", {"error": "not found"})
        return self.ops_app(environ, start_response)

    def ops_app(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """/healthz, /readyz and /metrics only: what PITR_BOT_OPS_BIND serves."""
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz" and method in {"GET", "HEAD"}:
            return self._health(start_response)
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
        return _json(start_response, "404 Not Found", {"error": "not found"})

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        """200 while serving and tracking; 503 while starting, or once the tracker is stuck."""
        if not self.ready.is_set():
            return _json(start_response, "503 Service Unavailable", {"status": "starting"})
        tracker = self.services.tracker
        stalled = tracker.stalled_for()
        if stalled is None:
            self._stall_logged = False
            return _json(start_response, "200 OK", {"status": "ok"})
        with self._lock:
            first, self._stall_logged = not self._stall_logged, True
        if first:  # once a stall: probes come every few seconds
            log.error(
                "the tracker's tick has run for %.0f s (limit %.0f s): no restore is tracked "
                "by this process until it ends; it waits in:\n%s",
                stalled,
                tracker.stall_seconds,
                tracker.where_stalled(),
            )
        body = {"status": "tracker stalled", "seconds": round(stalled)}
        return _json(start_response, "503 Service Unavailable", body)

    def _slack(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """Verify (bot.verify), then hand Bolt the very bytes that were verified."""
        try:
            verdict = self.verifier.check(environ)
        except Exception as exc:  # noqa: BLE001 - e.g. the store unreachable for replay checks
            log.warning("could not check a Slack request (%s)", type(exc).__name__)
            return _json(start_response, "503 Service Unavailable", {"error": "try again"})
        if not verdict.accepted:
            # The reason only: the body is unverified and may carry anything.
            log.info("refused a request to /slack/events (%s): %s", verdict.status, verdict.reason)
            if verdict.status == 200:  # a replay: Slack (or whoever) gets its 200, nothing runs
                start_response("200 OK", [("Content-Length", "0")])
                return [b""]
            return _json(start_response, _STATUS[verdict.status], {"error": verdict.reason})
        body = verdict.body or b""
        environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        return self.bolt(environ, start_response)  # type: ignore[misc]

    def _readiness(self) -> dict[str, str]:
        """Store and Slack reachable: a replica that can't reach either shouldn't get traffic.

        Both answers are kept for a few seconds: whoever can reach this endpoint cannot turn
        it into a stream of store queries or Slack calls.
        """
        checks = {"store": "ok", "slack": "ok"}
        now = self._monotonic()
        with self._lock:
            if now - self._store_checked > STORE_CHECK_SECONDS:
                try:
                    self.services.store.ping()
                    self._store_check = "ok"
                except Exception as exc:  # noqa: BLE001 - any store failure means not ready
                    self._store_check = f"unreachable: {type(exc).__name__}"
                self._store_checked = now
            checks["store"] = self._store_check
            if now - self._slack_checked > SLACK_CHECK_SECONDS:
                try:
                    self.services.client.api_test()
                    self._slack_ok = True
                except Exception:  # noqa: BLE001 - any failure means not ready
                    self._slack_ok = False
                self._slack_checked = now
        if not self._slack_ok:
            checks["slack"] = "unreachable"
        workspace = self.services.workspace
        if workspace is not None and not workspace.known:
            checks["slack"] = "connecting (auth.test has not answered yet)"
        return checks


_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    405: "405 Method Not Allowed",
    411: "411 Length Required",
    413: "413 Payload Too Large",
    415: "415 Unsupported Media Type",
}


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
        ops_bind = settings.ops_bind
        self.http = HttpApp(None if settings.socket_mode else app, services, ops=not ops_bind)
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
        # /readyz and /metrics on their own address (e.g. loopback), not the Slack port.
        self.ops_server: Any = None
        self.ops_port: int | None = None
        if ops_bind:
            host, _, port = ops_bind.rpartition(":")
            self.ops_server = create_server(
                self.http.ops_app,
                host=host.strip("[]"),
                port=int(port),
                threads=2,
                ident="pitr-bot",
                clear_untrusted_proxy_headers=True,
            )
            self.ops_port = self.ops_server.effective_port
        self._socket_handler: Any = None
        self._closing = False
        self._stopped = threading.Event()

    def run(self) -> None:
        """Serve until `close()` (or a signal in `serve`), then stop background work."""
        settings = self.services.settings
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            token = settings.slack_app_token.get_secret_value()  # type: ignore[union-attr]
            self._socket_handler = SocketModeHandler(self.app, token)
            # Slack may be unreachable at boot: connect in the background, as auth.test does.
            threading.Thread(
                target=self._connect_socket, name="pitr-socket-mode", daemon=True
            ).start()
        else:
            log.info("listening on port %s (POST /slack/events)", self.port)
        self.services.start_background()
        if self.services.workspace is not None:
            # Usually a few milliseconds; if Slack is down we start anyway (/readyz says 503).
            self.services.workspace.wait(WORKSPACE_WAIT_SECONDS)
        self.http.ready.set()
        ops_thread = None
        if self.ops_server is not None:
            ops_thread = threading.Thread(target=self._run_ops, name="pitr-ops", daemon=True)
            ops_thread.start()
            log.info("/readyz and /metrics on %s", self.services.settings.ops_bind)
        try:
            self.server.run()
        except OSError:
            # close() from another thread pulls the sockets from under waitress's select().
            if not self._closing:
                raise
        finally:
            self.http.ready.clear()
            if self.ops_server is not None:
                self.ops_server.close()
            if ops_thread is not None:
                ops_thread.join(timeout=5)
            self._stopped.set()
            if self._socket_handler is not None:
                self._socket_handler.close()
            self.services.stop_background()
            log.info("stopped")

    def _connect_socket(self) -> None:
        """Open the Socket Mode connection, retrying (backing off to a minute) until Slack
        answers; once connected, slack_sdk reconnects by itself. Meanwhile /readyz says 503
        (auth.test has not answered either) and the health port stays up."""
        delay = 1.0
        while not self._stopped.is_set():
            try:
                self._socket_handler.connect()
            except Exception as exc:  # noqa: BLE001 - any failure: Slack is not there yet
                log.warning(
                    "Socket Mode connection to Slack failed (%s); retrying in %.0f s",
                    type(exc).__name__,
                    delay,
                )
                self._stopped.wait(delay)
                delay = min(delay * 2, 60.0)
                continue
            log.info("connected to Slack in Socket Mode; health on port %s", self.port)
            return

    def _run_ops(self) -> None:
        try:
            self.ops_server.run()
        except OSError:
            pass  # closed from run()'s finally: the sockets went from under select()

    def close(self) -> None:
        """Stop accepting; in-flight requests finish (waitress waits for its workers)."""
        self._closing = True
        self.server.close()


def serve(app: App, services: Services, server: BotServer | None = None) -> None:
    """Run until SIGTERM/SIGINT, then stop cleanly: no new work, background work finished.
    `server`: already bound (the caller reports a port it could not take)."""
    server = server or BotServer(app, services)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        raise SystemExit(0)  # waitress's loop catches this and stops accepting

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.run()
    finally:
        services.store.close()
