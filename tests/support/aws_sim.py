"""moto served over HTTP behind a small DynamoDB-simulating proxy.

A bot running in another process only sees AWS through AWS_ENDPOINT_URL, so
botocore event hooks cannot help there. The proxy sits between it and moto and
adds what moto cannot do: restored tables that stay CREATING for a while, a
PITR window that moves with the clock, throttling/slow responses, and a record
of every DynamoDB request for assertions.
"""

from __future__ import annotations

import http.client
import json
import logging
import sys
import threading
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from support.dynamodb_limits import limit_error
from support.export_sim import ExportSimulator
from support.gates import Gates

__all__ = ["AwsSimulator"]

REGION = "us-east-1"
_TARGET_PREFIX = "DynamoDB_20120810."
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "expect",
}


@dataclass
class _Fault:
    times: int
    code: str
    status: int
    message: str


def _table_name(value: Any) -> str:
    """TableName may be a name or an ARN (arn:aws:dynamodb:...:table/<name>)."""
    text = str(value or "")
    if text.startswith("arn:") and "/" in text:
        return text.split("/", 1)[1].split("/")[0]
    return text


class AwsSimulator:
    """ThreadedMotoServer + simulating proxy; point the bot at `endpoint_url`.

    Note: moto keeps its backends in module globals, so all simulators (and
    mock_aws) in one process share state; start() resets it.
    """

    def __init__(self, serialize: bool = False) -> None:
        # serialize: forward one request at a time. moto applies conditional writes and
        # transactions without locking, whereas DynamoDB is linearizable; tests of several
        # replicas racing on one state table need this to see DynamoDB's guarantees.
        self.serialize = serialize
        self._serial = threading.Lock()
        self.creating_seconds: float = 0.0
        self.creating_for: dict[str, float] = {}
        self.widen_window: bool = True
        self.expression_limits: bool = True  # refuse what AWS refuses (support.dynamodb_limits)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = defaultdict(int)
        self._requests: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._faults: dict[str, _Fault] = {}
        self._slow: dict[str, float] = {}
        self.gates = Gates()
        self._restored_at: dict[str, float] = {}
        self._restored_to: dict[str, float] = {}  # target -> RestoreDateTime asked for
        self._lost_replies: dict[str, int] = {}
        self._accepted: dict[str, int] = defaultdict(int)
        self._accepted_bodies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._moto: ThreadedMotoServer | None = None
        self._moto_port = 0
        self._proxy: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # The simulator's clock (`now()`): time.time() moved by `offset` seconds, so a test can
        # make writes happen "hours ago" or reach a moment in the future (exports, PITR window).
        self.offset = 0.0
        self.exports = ExportSimulator(self)
        # S3 object reads (GET paths, e.g. an export's data files), each delayed by this.
        self.s3_get_delay = 0.0
        self.s3_gets: list[str] = []

    def now(self) -> float:
        return time.time() + self.offset

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> AwsSimulator:
        """Start moto (fresh state) and the proxy, both on free 127.0.0.1 ports."""
        if self._proxy is not None:
            return self
        # werkzeug logs every request to stderr at INFO; keep test output clean.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        self._moto_port = int(self._moto.get_host_and_port()[1])
        self._reset_moto()
        self._proxy = QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._proxy.daemon_threads = True
        self._thread = threading.Thread(
            target=self._proxy.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="aws-sim-proxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def reset(self) -> None:
        """Fresh moto state and every knob back to its default, without restarting servers.

        Starting and stopping moto's server costs about a second; tests share one instead.
        """
        with self._lock:
            self._counts.clear()
            self._requests.clear()
            self._faults.clear()
            self._slow.clear()
            self._restored_at.clear()
            self._restored_to.clear()
            self._lost_replies.clear()
            self._accepted.clear()
            self._accepted_bodies.clear()
        self.gates.release()
        self.creating_seconds = 0.0
        self.creating_for = {}
        self.widen_window = True
        self.serialize = False
        self.offset = 0.0
        self.exports.reset()
        self.s3_get_delay = 0.0
        self.s3_gets = []
        self._reset_moto()

    def _reset_moto(self) -> None:
        # Generous: on a busy machine resetting every backend took over 10 s (a setup error).
        conn = http.client.HTTPConnection("127.0.0.1", self._moto_port, timeout=60)
        try:
            conn.request("POST", "/moto-api/reset")
            conn.getresponse().read()
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop proxy and moto server."""
        if self._proxy is not None:
            self._proxy.shutdown()
            self._proxy.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._proxy = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None

    def __enter__(self) -> AwsSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        """The proxy URL (what the bot should use as AWS_ENDPOINT_URL)."""
        if self._proxy is None:
            raise RuntimeError("AwsSimulator is not started")
        return f"http://127.0.0.1:{self._proxy.server_address[1]}"

    @property
    def moto_url(self) -> str:
        """moto itself, bypassing the proxy (no simulation, not counted)."""
        return f"http://127.0.0.1:{self._moto_port}"

    def env(self) -> dict[str, str]:
        """Environment for a child process so its boto3 talks to the proxy."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    # -- clients & fixtures ----------------------------------------------------------

    def client(self, direct: bool = False, max_attempts: int | None = None) -> Any:
        """boto3 DynamoDB client on the proxy (or on moto if direct=True).

        max_attempts is the total number of tries; 1 disables botocore's own
        retries (which would otherwise swallow an injected ThrottlingException).
        """
        config = None
        if max_attempts is not None:
            # NB: botocore's retries["max_attempts"] counts *retries*; total_ counts all tries.
            config = Config(retries={"total_max_attempts": max_attempts, "mode": "standard"})
        return boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=self.moto_url if direct else self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
            config=config,
        )

    def create_table(self, name: str, pitr: bool = True, items: int = 3) -> dict[str, Any]:
        """Create an on-demand table (hash key "pk" S) directly in moto; returns its Table."""
        ddb = self.client(direct=True)
        ddb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        if pitr:
            ddb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        for i in range(items):
            ddb.put_item(TableName=name, Item={"pk": {"S": f"item-{i}"}, "n": {"N": str(i)}})
        return dict(ddb.describe_table(TableName=name)["Table"])

    # -- assertions & knobs ----------------------------------------------------------

    def count(self, op: str) -> int:
        """How many requests of DynamoDB operation `op` reached the proxy."""
        with self._lock:
            return self._counts.get(op, 0)

    def requests(self, op: str) -> list[dict[str, Any]]:
        """Parsed JSON bodies of `op` requests, in arrival order."""
        with self._lock:
            return list(self._requests.get(op, []))

    def clear(self) -> None:
        """Forget counts and recorded requests."""
        with self._lock:
            self._counts.clear()
            self._requests.clear()

    def fail(
        self,
        op: str,
        times: int = 1,
        code: str = "ThrottlingException",
        status: int = 400,
        message: str = "Rate exceeded",
    ) -> None:
        """Answer the next `times` calls of `op` with a DynamoDB error, not forwarding.

        Remember botocore retries throttles/5xx itself (see client(max_attempts=1)).
        """
        with self._lock:
            self._faults[op] = _Fault(times, code, status, message)

    def lose_reply(self, op: str, times: int = 1) -> None:
        """Forward the next `times` calls of `op` to moto, then answer 500 instead of its reply.

        As when AWS accepted a call but the answer was lost: botocore retries it.
        """
        with self._lock:
            self._lost_replies[op] = times

    def accepted(self, op: str) -> int:
        """How many `op` calls moto carried out (answered 200), lost replies included."""
        with self._lock:
            return self._accepted.get(op, 0)

    def accepted_requests(self, op: str) -> list[dict[str, Any]]:
        """Parsed bodies of the `op` calls moto carried out (answered 200), in order: e.g. the
        PutItems that succeeded, as opposed to those refused by their condition."""
        with self._lock:
            return list(self._accepted_bodies.get(op, []))

    def heal(self, op: str | None = None) -> None:
        """Drop the faults still pending from fail() (for `op`, or all of them)."""
        with self._lock:
            if op is None:
                self._faults.clear()
            else:
                self._faults.pop(op, None)

    def slow(self, op: str, seconds: float) -> None:
        """Delay every `op` call by `seconds` before forwarding (0 to undo)."""
        with self._lock:
            if seconds > 0:
                self._slow[op] = seconds
            else:
                self._slow.pop(op, None)

    def hold(self, op: str) -> None:
        """Hold every `op` call (before it reaches moto) until release(op)."""
        self.gates.hold(op)

    def release(self, op: str | None = None) -> None:
        """Let held `op` calls (or all held calls) go on to moto."""
        self.gates.release(op)

    def hold_creating(self, table: str) -> None:
        """A restored `table` stays CREATING until finish_creating(table), however long."""
        self.creating_for[table] = float("inf")

    def finish_creating(self, table: str) -> None:
        """The next DescribeTable of `table` reports ACTIVE."""
        self.creating_for[table] = 0.0

    def is_creating(self, table: str) -> bool:
        """Whether DescribeTable would currently report `table` as CREATING."""
        with self._lock:
            started = self._restored_at.get(table)
            seconds = self.creating_for.get(table, self.creating_seconds)
        return started is not None and time.monotonic() < started + seconds

    # -- proxy internals -------------------------------------------------------------

    def _on_request(self, op: str, body: dict[str, Any]) -> tuple[_Fault | None, float]:
        with self._lock:
            self._counts[op] += 1
            self._requests[op].append(body)
            # DynamoDB's expression limits (300 operators, 4 KB), which moto does not check.
            refused = limit_error(op, body) if self.expression_limits else None
            if refused is not None:
                return _Fault(1, refused[0], 400, refused[1]), 0.0
            fault = self._faults.get(op)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[op]
            return fault, self._slow.get(op, 0.0)

    def _take_lost_reply(self, op: str) -> bool:
        with self._lock:
            left = self._lost_replies.get(op, 0)
            if left <= 0:
                return False
            self._lost_replies[op] = left - 1
            return True

    def _rewrite(self, op: str, req: dict[str, Any], resp: dict[str, Any]) -> bool:
        """Adjust a successful moto response in place; True if changed."""
        if op == "RestoreTableToPointInTime":
            desc = resp.get("TableDescription")
            if not isinstance(desc, dict):
                return False
            target = str(desc.get("TableName") or req.get("TargetTableName"))
            with self._lock:
                self._restored_at[target] = time.monotonic()
                if isinstance(req.get("RestoreDateTime"), int | float):
                    # moto puts "now" here; AWS puts the instant restored to.
                    self._restored_to[target] = float(req["RestoreDateTime"])
            desc["TableStatus"] = "CREATING"
            self._restore_summary(target, desc)
            return True
        if op == "DescribeTable":
            table = resp.get("Table")
            if not isinstance(table, dict):
                return False
            name = _table_name(req.get("TableName"))
            changed = self._restore_summary(name, table)
            if self.is_creating(name):
                table["TableStatus"] = "CREATING"
                changed = True
            return changed
        if op == "DescribeContinuousBackups" and self.widen_window:
            desc = resp.get("ContinuousBackupsDescription", {}).get(
                "PointInTimeRecoveryDescription"
            )
            if not isinstance(desc, dict) or desc.get("PointInTimeRecoveryStatus") != "ENABLED":
                return False
            days = float(desc.get("RecoveryPeriodInDays") or 35)
            now = self.now()
            desc["EarliestRestorableDateTime"] = now - days * 86400
            desc["LatestRestorableDateTime"] = now - 300.0
            return True
        return False

    def _restore_summary(self, table: str, desc: dict[str, Any]) -> bool:
        summary = desc.get("RestoreSummary")
        with self._lock:
            restored_to = self._restored_to.get(table)
        if not isinstance(summary, dict) or restored_to is None:
            return False
        summary["RestoreDateTime"] = restored_to
        return True


class QuietServer(ThreadingHTTPServer):
    """A client that went away (a killed bot) is expected here, not an error worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _make_handler(sim: AwsSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Silence: keep stderr clean."""

        def do_GET(self) -> None:
            self._forward()

        def do_POST(self) -> None:
            self._forward()

        def do_PUT(self) -> None:
            self._forward()

        def do_DELETE(self) -> None:
            self._forward()

        def do_HEAD(self) -> None:
            self._forward()

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            target = self.headers.get("X-Amz-Target") or ""
            op = target[len(_TARGET_PREFIX) :] if target.startswith(_TARGET_PREFIX) else ""
            req: dict[str, Any] = {}
            if not op and self.command == "GET":  # an S3 read (moto serves every service)
                with sim._lock:
                    sim.s3_gets.append(self.path)
                if sim.s3_get_delay:
                    time.sleep(sim.s3_get_delay)
            if op:
                try:
                    parsed = json.loads(raw or b"{}")
                    req = parsed if isinstance(parsed, dict) else {}
                except ValueError:
                    req = {}
                fault, delay = sim._on_request(op, req)
                if delay:
                    time.sleep(delay)
                sim.gates.pass_through(op)
                if fault is not None:
                    body = json.dumps(
                        {
                            "__type": f"com.amazonaws.dynamodb.v20120810#{fault.code}",
                            "message": fault.message,
                        }
                    ).encode()
                    headers = [
                        ("Content-Type", "application/x-amz-json-1.0"),
                        ("x-amzn-RequestId", f"sim-{time.monotonic_ns()}"),
                        ("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)),
                    ]
                    self._reply(fault.status, headers, body)
                    return
                answer = sim.exports.answer(op, req)  # incremental exports: simulated here
                if answer is not None:
                    body = json.dumps(answer[1]).encode()
                    headers = [
                        ("Content-Type", "application/x-amz-json-1.0"),
                        ("x-amzn-RequestId", f"sim-{time.monotonic_ns()}"),
                        ("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)),
                    ]
                    self._reply(answer[0], headers, body)
                    return

            fwd_headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in _HOP_BY_HOP and k.lower() not in ("host", "content-length")
            }
            fwd_headers["Host"] = f"127.0.0.1:{sim._moto_port}"
            fwd_headers["Content-Length"] = str(len(raw))

            def upstream() -> tuple[int, list[tuple[str, str]], bytes]:
                # Writes are logged (with their time) for the export simulator.
                return sim.exports.around_write(
                    op, req, lambda: self._upstream(op, req, raw, fwd_headers)
                )

            if sim.serialize:
                with sim._serial:  # one request at a time, as if DynamoDB were linearizable
                    status, resp_headers, body = upstream()
            else:
                status, resp_headers, body = upstream()
            out = [
                (k, v)
                for k, v in resp_headers
                # send_response() adds its own Server/Date headers.
                if k.lower() not in _HOP_BY_HOP
                and k.lower() not in ("content-length", "server", "date")
            ]
            self._reply(status, out, body)

        def _upstream(
            self, op: str, req: dict[str, Any], raw: bytes, fwd_headers: dict[str, str]
        ) -> tuple[int, list[tuple[str, str]], bytes]:
            """Forward to moto, then apply the simulation to a successful answer."""
            conn = http.client.HTTPConnection("127.0.0.1", sim._moto_port, timeout=60)
            try:
                conn.request(self.command, self.path, body=raw, headers=fwd_headers)
                upstream = conn.getresponse()
                status = upstream.status
                resp_headers = upstream.getheaders()
                body = upstream.read()
            finally:
                conn.close()

            if op and status == 200 and body:
                try:
                    resp = json.loads(body)
                except ValueError:
                    resp = None
                if isinstance(resp, dict) and sim._rewrite(op, req, resp):
                    body = json.dumps(resp).encode()
                    resp_headers = [
                        (k, str(zlib.crc32(body) & 0xFFFFFFFF) if k.lower() == "x-amz-crc32" else v)
                        for k, v in resp_headers
                    ]
            # After the simulation's bookkeeping above: AWS did the work, only the reply is lost.
            if op and status == 200:
                with sim._lock:
                    sim._accepted[op] += 1
                    sim._accepted_bodies[op].append(req)
                if sim._take_lost_reply(op):
                    body = json.dumps(
                        {
                            "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                            "message": "Internal server error (the reply was lost)",
                        }
                    ).encode()
                    headers = [
                        ("Content-Type", "application/x-amz-json-1.0"),
                        ("x-amzn-RequestId", f"sim-{time.monotonic_ns()}"),
                        ("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)),
                    ]
                    return 500, headers, body
            return status, resp_headers, body

    return Handler
