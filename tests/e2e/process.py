"""Run `pitr-bot` (python -m bot) as a child process, configured only through its environment."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.fake_slack import Call, FakeSlack
from support.signed import Response, SlackSender

from bot.blocks import APPROVE_ACTION

REPO = Path(__file__).resolve().parents[2]
# Settings the child must not inherit from whoever runs the tests.
_SCRUBBED = ("SLACK_", "PITR_BOT_", "AWS_")


def free_port() -> int:
    """A TCP port that was free a moment ago (bind to 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    """The test runner's environment without any Slack/bot/AWS settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def serve_env(
    *,
    token: str,
    secret: str,
    slack_api_url: str,
    aws_env: dict[str, str],
    state: str,
    port: int,
    poll_seconds: float = 0.3,
    **extra: str,
) -> dict[str, str]:
    """The environment for `pitr-bot serve` in HTTP mode against FakeSlack and the AWS proxy."""
    return base_env(
        **aws_env,
        SLACK_BOT_TOKEN=token,
        SLACK_SIGNING_SECRET=secret,
        SLACK_API_URL=slack_api_url,
        PITR_BOT_STATE=state,
        PITR_BOT_POLL_SECONDS=str(poll_seconds),
        PITR_BOT_PORT=str(port),
        PITR_BOT_HOST="127.0.0.1",
        **extra,
    )


_FAST_BOTOCORE = '''"""Written by tests/e2e/process.py: botocore's retry clock, run faster.

Only the timing changes (backoff sleeps and the adaptive client-side rate limiter's minimum
rate are scaled); the number of attempts and which errors are retried stay botocore's own.
"""
import os

_scale = float(os.environ.get("PITR_E2E_BOTOCORE_TIME_SCALE") or 1)
if 0 < _scale < 1:
    from botocore.retries import bucket, standard

    _delay = standard.ExponentialBackoff.delay_amount

    def _scaled_delay(self, context):
        return _delay(self, context) * _scale

    standard.ExponentialBackoff.delay_amount = _scaled_delay
    _init = bucket.TokenBucket.__init__

    def _fast_init(self, max_rate, clock, min_rate=bucket.TokenBucket._MIN_RATE):
        _init(self, max_rate, clock, min_rate=min_rate / _scale)

    bucket.TokenBucket.__init__ = _fast_init
'''


def compress_botocore_time(env: dict[str, str], directory: Path, scale: float = 0.02) -> None:
    """Make a child's botocore back off `1/scale` times faster (in place on `env`).

    Exhausting botocore's retries (7 attempts with adaptive mode's client-side rate limiting)
    takes 25-60 s of wall clock per call; with this a test can exceed them in about a second.
    Works through a sitecustomize module put first on the child's PYTHONPATH.
    """
    hooks = directory / "botocore_time"
    hooks.mkdir(parents=True, exist_ok=True)
    (hooks / "sitecustomize.py").write_text(_FAST_BOTOCORE, encoding="utf-8")
    env["PYTHONPATH"] = os.pathsep.join([str(hooks), env.get("PYTHONPATH", str(REPO))])
    env["PITR_E2E_BOTOCORE_TIME_SCALE"] = str(scale)


def run_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60):
    """`pitr-bot ARGS` to completion; cwd should be empty (Settings reads ./.env)."""
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class BotProcess:
    proc: subprocess.Popen
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def healthz(self) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:  # noqa: S310
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            return None

    def get(self, path: str, timeout: float = 15) -> tuple[int | None, str]:
        """GET `path`: (status, body); status None if nothing answered."""
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as resp:  # noqa: S310
                return int(resp.status), resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            return int(err.code), err.read().decode("utf-8", "replace")
        except OSError:
            return None, ""

    def readyz(self) -> tuple[int | None, str]:
        return self.get("/readyz")

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200, (status, body)
        return body

    def log_lines(self) -> list[str]:
        """Non-empty stderr lines, in order."""
        return [line for line in self.stderr().splitlines() if line.strip()]

    def json_logs(self) -> list[dict]:
        """stderr parsed as JSON lines; AssertionError naming the first line that is not JSON."""
        records = []
        for line in self.log_lines():
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"stderr line is not JSON: {line!r}") from None
            assert isinstance(record, dict), line
            records.append(record)
        return records

    def wait_healthy(self, timeout: float = 20, interval: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"pitr-bot exited with {self.proc.returncode} before it was healthy:\n"
                    + self.stderr()
                )
            if self.healthz() == 200:
                return
            time.sleep(interval)
        raise AssertionError(f"pitr-bot not healthy after {timeout}s:\n{self.stderr()}")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait; AssertionError (after a SIGKILL) if it does not exit in time."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"pitr-bot did not exit within {timeout}s of SIGTERM:\n{self.stderr()}"
            ) from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start_bot_process(env: dict[str, str], cwd: Path, port: int, name: str = "bot") -> BotProcess:
    """Start `python -m bot serve`; its output goes to files in `cwd` (no pipe to fill up).

    `name` names the output files (NAME.stdout, NAME.stderr), so that several processes (or
    one process started again) can share a directory without overwriting each other's logs.
    """
    stdout_path, stderr_path = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bot", "serve"],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    return BotProcess(proc, port, stdout_path, stderr_path)


# -- driving `serve` processes over the wire (shared by the reliability and replica tests) ----

BROADCAST = (True, "true", "1")
SOURCE = "MusicCollection"


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _text(call: Call) -> str:
    return str(call.args.get("text", "")) + str(call.args.get("blocks", ""))


def cards(fake: FakeSlack, target: str) -> list[Call]:
    """Approval cards that Slack accepted (top-level chat.postMessage naming `target`)."""
    return [
        c
        for c in fake.calls("chat.postMessage")
        if not c.failed and not c.args.get("thread_ts") and target in _text(c)
    ]


def broadcasts(fake: FakeSlack, target: str) -> list[Call]:
    """Thread replies broadcast to the channel (the completion or failure) that Slack accepted."""
    return [
        c
        for c in fake.calls("chat.postMessage")
        if not c.failed
        and c.args.get("thread_ts")
        and c.args.get("reply_broadcast") in BROADCAST
        and target in _text(c)
    ]


def request_restore(
    bot: BotProcess,
    secret: str,
    fake: FakeSlack,
    target: str,
    user: str = "U1",
    channel: str = "C1",
    timeout: float = 15,
) -> str:
    """/pitr-restore SOURCE TARGET latest through `bot`; waits for the card, returns its id."""
    resp = SlackSender(bot.url, secret).command(
        "/pitr-restore",
        f"{SOURCE} {target} latest",
        user_id=user,
        channel_id=channel,
        response_url=fake.response_url(user),
    )
    assert resp.status == 200, resp.body
    wait_until(lambda: cards(fake, target), timeout, f"the approval card for {target}")
    (card,) = cards(fake, target)
    values = {
        el.get("value", "")
        for block in card.args.get("blocks", [])
        if block["type"] == "actions"
        for el in block["elements"]
    }
    (restore_id,) = values
    return restore_id


def approve(
    bot: BotProcess, secret: str, fake: FakeSlack, restore_id: str, user: str, channel: str = "C1"
) -> Response:
    """Click Approve on the card of `restore_id`, as `user`, through `bot`."""
    return SlackSender(bot.url, secret).click(
        APPROVE_ACTION,
        restore_id,
        user_id=user,
        channel_id=channel,
        message_ts="1700000000.000101",
        response_url=fake.response_url(f"click-{user}"),
    )


def sqlite_request(path: Path, restore_id: str) -> dict[str, Any] | None:
    """The stored request (its JSON document) read straight from a SQLite state file."""
    db = sqlite3.connect(path, timeout=5)
    try:
        row = db.execute("SELECT doc FROM restores WHERE id = ?", (restore_id,)).fetchone()
    finally:
        db.close()
    return json.loads(row[0]) if row else None


def dynamo_request(client: Any, table: str, restore_id: str) -> dict[str, Any] | None:
    """The stored request read straight from a DynamoDB state table (pass a direct client)."""
    item = client.get_item(
        TableName=table,
        Key={"pk": {"S": f"R#{restore_id}"}, "sk": {"S": "R"}},
        ConsistentRead=True,
    ).get("Item")
    return json.loads(item["doc"]["S"]) if item else None


class Bots:
    """`serve` processes for one test, all on the same FakeSlack and AWS simulator.

    Each gets its own port and directory (logs in DIR/NAME.stderr); all share `state` unless
    told otherwise. kill_all() (the fixture's teardown) SIGKILLs whatever is still running.
    """

    def __init__(
        self,
        tmp_path: Path,
        fake: FakeSlack,
        aws_env: Callable[[], dict[str, str]],
        token: str,
        secret: str,
        state: str | None = None,
    ):
        self.tmp_path = tmp_path
        self.fake = fake
        self.aws_env = aws_env
        self.token = token
        self.secret = secret
        self.sqlite_path = tmp_path / "state.db"
        self.state = state or f"sqlite:///{self.sqlite_path}"
        self.started: list[BotProcess] = []

    def spawn(
        self,
        name: str,
        poll_seconds: float = 0.3,
        fast_botocore: bool = False,
        **extra: str,
    ) -> BotProcess:
        """Start a process (not waiting for it to be healthy)."""
        port = free_port()
        cwd = self.tmp_path / name
        cwd.mkdir(parents=True, exist_ok=True)
        env = serve_env(
            token=self.token,
            secret=self.secret,
            slack_api_url=self.fake.api_url,
            aws_env=self.aws_env(),
            state=self.state,
            port=port,
            poll_seconds=poll_seconds,
            **extra,
        )
        if fast_botocore:
            compress_botocore_time(env, self.tmp_path)
        bot = start_bot_process(env, cwd, port, name=name)
        self.started.append(bot)
        return bot

    def start(self, name: str, **kwargs: Any) -> BotProcess:
        """Start a process and wait until /healthz answers 200."""
        bot = self.spawn(name, **kwargs)
        bot.wait_healthy(timeout=30)
        return bot

    def kill_all(self) -> None:
        for bot in self.started:
            bot.kill()
