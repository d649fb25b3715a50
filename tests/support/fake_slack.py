"""A fake Slack Web API server for tests.

Runs a real HTTP server so slack_sdk / slack_bolt code (in-process or in a child
process) talks to it over the wire exactly as it would to slack.com, while the
test records and asserts on every call and injects faults (429s, outages).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from support.gates import Gates

__all__ = ["Call", "FakeSlack"]

# Form fields that Slack clients send as JSON-encoded strings.
_JSON_FORM_KEYS = ("blocks", "attachments", "view")


@dataclass
class Call:
    """One recorded request: Web API method name (or "response_url") and its params."""

    method: str
    args: dict[str, Any]
    at: float
    failed: bool = False
    token: str | None = None
    status: int = 200


@dataclass
class _Fault:
    times: int
    status: int
    retry_after: int
    error: str


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    faults: dict[str, _Fault] = field(default_factory=dict)
    down: bool = False
    hangs: dict[str, float] = field(default_factory=dict)
    ts_counter: int = 100
    view_counter: int = 0


def _parse_form(raw: str) -> dict[str, Any]:
    """Parse urlencoded params; single values become str, JSON form keys become objects."""
    out: dict[str, Any] = {}
    for key, values in parse_qs(raw, keep_blank_values=True).items():
        out[key] = values[0] if len(values) == 1 else values
    for key in _JSON_FORM_KEYS:
        value = out.get(key)
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except ValueError:
                pass
    return out


def _tz_offset(tz: str) -> int:
    try:
        offset = ZoneInfo(tz).utcoffset(datetime.now(UTC))
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    return int(offset.total_seconds()) if offset is not None else 0


class FakeSlack:
    """Fake Slack Web API + response_url endpoint with call recording and fault injection.

    Usage::

        with FakeSlack() as fake:
            client = WebClient(base_url=fake.api_url, token="xoxb-test")
            client.chat_postMessage(channel="C1", text="hi")
            fake.wait_for("chat.postMessage")
    """

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[str]] = {}
        # Channels the bot was not invited to: chat:write.public lets it post there, but a
        # file shared there answers not_in_channel (as Slack does).
        self.not_member: set[str] = set()
        self._state = _State()
        self._cond = threading.Condition()
        self.gates = Gates()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._server is not None:
            return self
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-slack",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down and release the port."""
        if self._server is None:
            return
        self.gates.release()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (server must be started)."""
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return int(self._server.server_address[1])

    @property
    def api_url(self) -> str:
        """Base URL for WebClient(base_url=...) / SLACK_API_URL."""
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "r1") -> str:
        """A response_url whose POSTs are recorded as method "response_url"."""
        return f"http://127.0.0.1:{self.port}/respond/{name}"

    # -- inspection ----------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        """Snapshot of recorded calls, optionally only those of one method."""
        with self._cond:
            return [c for c in self._state.calls if method is None or c.method == method]

    def wait_for(
        self,
        predicate_or_method: str | Callable[[Call], bool],
        count: int = 1,
        timeout: float = 30,  # generous: a busy CI machine, not a slow bot, is the usual cause
    ) -> list[Call]:
        """Block until >= count matching calls were recorded; AssertionError on timeout.

        The bot under test works asynchronously (acks first, then calls Slack), so
        tests must wait rather than assert immediately.
        """
        if isinstance(predicate_or_method, str):
            name = predicate_or_method

            def pred(c: Call) -> bool:
                return c.method == name
        else:
            pred = predicate_or_method
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matched = [c for c in self._state.calls if pred(c)]
                if len(matched) >= count:
                    return matched
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {count} call(s) matching "
                        f"{predicate_or_method!r}; got {len(matched)}. Recorded calls:\n"
                        + self.dump_locked()
                    )
                self._cond.wait(timeout=min(remaining, 0.05))

    def dump(self) -> str:
        """Human-readable listing of recorded calls (for assertion messages)."""
        with self._cond:
            return self.dump_locked()

    def dump_locked(self) -> str:
        lines = []
        for c in self._state.calls:
            flag = f" FAILED({c.status})" if c.failed else ""
            lines.append(f"  {c.method}{flag}: {json.dumps(c.args, default=str)[:500]}")
        return "\n".join(lines) or "  (none)"

    def clear(self) -> None:
        """Forget recorded calls (faults and users/groups config are kept)."""
        with self._cond:
            self._state.calls.clear()

    # -- fault injection -----------------------------------------------------------

    def fail(
        self,
        method: str,
        times: int = 1,
        status: int = 429,
        retry_after: int = 1,
        error: str = "ratelimited",
    ) -> None:
        """Answer the next `times` calls of `method` with HTTP `status` and ok=false.

        Works for "response_url" too. 429s carry a Retry-After header.
        """
        with self._cond:
            self._state.faults[method] = _Fault(times, status, retry_after, error)

    def hang(self, name: str, seconds: float) -> None:
        """POSTs to response_url(name) are recorded, then answered only after `seconds`."""
        with self._cond:
            self._state.hangs[name] = seconds

    def _hang_seconds(self, path: str) -> float:
        with self._cond:
            return self._state.hangs.get(path.rsplit("/", 1)[-1], 0.0)

    def hold(self, method: str) -> None:
        """Record `method` calls at once but answer them only after release(method)."""
        self.gates.hold(method)

    def release(self, method: str | None = None) -> None:
        self.gates.release(method)

    def set_down(self, down: bool = True) -> None:
        """While down, every /api/ call answers HTTP 503 (a Slack outage)."""
        with self._cond:
            self._state.down = down

    # -- internals (called from handler threads) ----------------------------------

    def _record(self, call: Call) -> None:
        with self._cond:
            self._state.calls.append(call)
            self._cond.notify_all()

    def _take_fault(self, method: str, is_api: bool) -> _Fault | None:
        with self._cond:
            if is_api and self._state.down:
                return _Fault(1, 503, 0, "service_unavailable")
            fault = self._state.faults.get(method)
            if fault is None:
                return None
            fault.times -= 1
            if fault.times <= 0:
                del self._state.faults[method]
            return fault

    def _next_ts(self) -> str:
        with self._cond:
            self._state.ts_counter += 1
            return f"1700000000.{self._state.ts_counter:06d}"

    def _next_view_id(self) -> str:
        with self._cond:
            self._state.view_counter += 1
            return f"VFAKE{self._state.view_counter:04d}"

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Canned successful response for a Web API method."""
        channel = args.get("channel", "C1")
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": "UBOT",
                "bot_id": "BBOT",
                "team_id": "T1",
                "team": "Test",
                "user": "pitr-bot",
                "url": "https://test.slack.com/",
            }
        if method == "chat.postMessage":
            ts = self._next_ts()
            message: dict[str, Any] = {"type": "message", "ts": ts, "bot_id": "BBOT"}
            message["text"] = args.get("text", "")
            if "blocks" in args:
                message["blocks"] = args["blocks"]
            if "thread_ts" in args:
                message["thread_ts"] = args["thread_ts"]
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "chat.update":
            ts = args.get("ts", "")
            return {"ok": True, "channel": channel, "ts": ts, "text": args.get("text", "")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "users.info":
            uid = str(args.get("user", ""))
            info = dict(self.users.get(uid, {}))
            tz = str(info.pop("tz", "UTC"))
            user: dict[str, Any] = {
                "id": uid,
                "name": info.pop("name", uid.lower()),
                "deleted": False,
                "is_bot": False,
                "tz": tz,
                "tz_offset": _tz_offset(tz),
            }
            user["real_name"] = info.pop("real_name", user["name"])
            user.update(info)
            return {"ok": True, "user": user}
        if method == "usergroups.users.list":
            group = str(args.get("usergroup", ""))
            if group not in self.groups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": list(self.groups[group])}
        if method in ("views.open", "views.update", "views.push", "views.publish"):
            view = args.get("view")
            view = dict(view) if isinstance(view, dict) else {}
            view["id"] = args.get("view_id") or view.get("id") or self._next_view_id()
            view.setdefault("hash", "h1")
            view.setdefault("team_id", "T1")
            return {"ok": True, "view": view}
        if method == "files.getUploadURLExternal":
            # files_upload_v2 step 1: the upload goes to this fake's /upload/<file id>.
            file_id = "F" + self._next_ts().replace(".", "")
            url = f"http://127.0.0.1:{self.port}/upload/{file_id}"
            return {"ok": True, "upload_url": url, "file_id": file_id}
        if method == "conversations.open":
            # A DM with one person (im:write); its ID is D + the user's ID.
            return {"ok": True, "channel": {"id": "D" + str(args.get("users", ""))}}
        if method == "files.completeUploadExternal":
            if str(args.get("channel_id", "")) in self.not_member:
                return {"ok": False, "error": "not_in_channel"}
            files = args.get("files")
            if isinstance(files, str):
                files = json.loads(files)
            return {
                "ok": True,
                "files": [{"id": f.get("id"), "title": f.get("title")} for f in files or []],
            }
        if method == "conversations.info":
            return {
                "ok": True,
                "channel": {
                    "id": channel,
                    "name": str(channel).lower(),
                    "is_channel": True,
                    "is_member": True,
                },
            }
        return {"ok": True}


def _make_handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Silence: the server must not write to stderr."""

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _read_args(self, query: str) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            args = _parse_form(query) if query else {}
            ctype = (self.headers.get("Content-Type") or "").lower()
            if not raw:
                return args
            if "json" in ctype:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                if isinstance(body, dict):
                    args.update(body)
                else:
                    args["_body"] = body
            elif "multipart" in ctype:
                args["_multipart"] = raw.decode("utf-8", "replace")
            else:
                args.update(_parse_form(raw.decode("utf-8", "replace")))
            return args

        def _send(
            self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            if path.startswith("/upload/"):
                # files_upload_v2 step 2: the file's bytes, recorded as call "file_upload".
                # Read in chunks, keeping the content of small files only: a test may measure
                # the bot's memory while a big file goes through this same process.
                length = int(self.headers.get("Content-Length") or 0)
                kept, left = [], length
                while left > 0:
                    chunk = self.rfile.read(min(left, 64 * 1024))
                    if not chunk:
                        break
                    left -= len(chunk)
                    if length <= 2 * 1024 * 1024:
                        kept.append(chunk)
                content = b"".join(kept).decode("utf-8", "replace")
                args = {"file_id": path.rsplit("/", 1)[-1], "content": content, "length": length}
                fake._record(Call("file_upload", args, time.time()))
                self._send(200, b"OK - " + str(length - left).encode(), "text/plain")
                return
            args = self._read_args(parts.query)
            auth = self.headers.get("Authorization") or ""
            token = auth[7:] if auth.lower().startswith("bearer ") else None
            if token is None and isinstance(args.get("token"), str):
                token = args["token"]
            if path.startswith("/api/"):
                method = path[len("/api/") :].strip("/")
                is_api = True
            elif path.startswith("/respond/"):
                method = "response_url"
                args["_path"] = path
                is_api = False
            else:
                self._send(404, b'{"ok":false,"error":"unknown_path"}', "application/json")
                return
            now = time.time()
            fault = fake._take_fault(method, is_api)
            if fault is not None:
                fake._record(Call(method, args, now, True, token, fault.status))
                headers = {}
                if fault.status == 429:
                    headers["Retry-After"] = str(fault.retry_after)
                body = json.dumps({"ok": False, "error": fault.error}).encode()
                self._send(fault.status, body, "application/json; charset=utf-8", headers)
                return
            fake._record(Call(method, args, now, False, token, 200))
            fake.gates.pass_through(method)
            if not is_api:
                time.sleep(fake._hang_seconds(path))
                self._send(200, b"ok", "text/html")
                return
            payload = json.dumps(fake._answer(method, args)).encode()
            self._send(200, payload, "application/json; charset=utf-8")

    return Handler


def buttons(call: Call) -> list[str]:
    """The labels of the buttons in a recorded message's blocks, in order."""
    return [
        el["text"]["text"]
        for block in call.args.get("blocks") or []
        if block.get("type") == "actions"
        for el in block["elements"]
    ]
