"""A local stand-in for Slack's Web API and response URLs, for `pitr-bot console`.

The bot's WebClient points here (SLACK_API_URL), exactly as it would point at slack.com, so the
console exercises the same code paths as production. Every call is handed to `on_call` to be
shown in the terminal.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

JSON_FIELDS = ("blocks", "attachments", "view")


class SlackDouble:
    def __init__(self, on_call: Callable[[str, dict[str, Any]], None], users: dict[str, dict]):
        self.on_call = on_call
        self.users = users
        self.last_call = time.monotonic()
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    def response_url(self, name: str) -> str:
        return f"{self.base}/respond/{name}"

    def start(self) -> SlackDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_ts(self) -> str:
        with self._lock:
            return f"{int(time.time())}.{next(self._ts):06d}"

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Slack's answer to `method`, after showing the call."""
        self.last_call = time.monotonic()
        reply: dict[str, Any] = {"ok": True}
        if method == "auth.test":
            reply.update(user_id="UPITRBOT", bot_id="BPITRBOT", team_id="TCONSOLE", team="console")
        elif method == "chat.postMessage":
            reply.update(ts=self.next_ts(), channel=args.get("channel"))
            args = {**args, "ts": reply["ts"]}
        elif method == "chat.update":
            reply.update(ts=args.get("ts"), channel=args.get("channel"))
        elif method == "chat.postEphemeral":
            reply.update(message_ts=self.next_ts())
        elif method == "users.info":
            user_id = str(args.get("user"))
            user = self.users.get(user_id, {"name": user_id.lower(), "tz": "UTC"})
            reply.update(user={"id": user_id, **user})
        elif method == "usergroups.users.list":
            reply.update(users=[])
        elif method.startswith("views."):
            reply.update(view={**(args.get("view") or {}), "id": "VCONSOLE"})
        elif method == "conversations.open":  # a DM (item data goes to its readers)
            reply.update(channel={"id": "D" + str(args.get("users", ""))})
        elif method == "files.getUploadURLExternal":  # files_upload_v2: upload here, then done
            file_id = "F" + self.next_ts().replace(".", "")
            reply.update(file_id=file_id, upload_url=f"{self.base}/upload/{file_id}")
        elif method == "files.completeUploadExternal":
            files = args.get("files")
            files = json.loads(files) if isinstance(files, str) else files or []
            reply.update(files=[{"id": f.get("id"), "title": f.get("title")} for f in files])
        self.on_call(method, args)
        return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # the console shows calls its own way

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._handle(b"")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self._handle(self.rfile.read(length))

            def _handle(self, raw: bytes) -> None:
                parts = urlsplit(self.path)
                args = _parse(raw, self.headers.get("Content-Type", ""))
                args.update(dict(parse_qsl(parts.query)))
                if parts.path.startswith("/upload/"):
                    self._send(b"OK", "text/plain")  # the file's bytes: not shown
                    return
                if parts.path.startswith("/respond/"):
                    double.last_call = time.monotonic()
                    double.on_call("response_url", {**args, "_to": parts.path.rsplit("/", 1)[-1]})
                    self._send(b"ok", "text/plain")
                    return
                method = parts.path.removeprefix("/api/")
                body = json.dumps(double.answer(method, args)).encode()
                self._send(body, "application/json")

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _parse(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    text = raw.decode("utf-8", "replace")
    if "json" in content_type:
        return dict(json.loads(text))
    args: dict[str, Any] = dict(parse_qsl(text, keep_blank_values=True))
    for key in JSON_FIELDS:
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key])
            except ValueError:
                pass
    return args
