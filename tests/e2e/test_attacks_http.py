"""Attacks on the Slack endpoint, over HTTP against the real app, from one table.

Each row: (attack, how to build it, the HTTP status it must get). For every row: never a 5xx,
no DynamoDB call, no Slack call (Web API or response_url), no write to the store's requests or
audit trail. docs/security.md lists these rows next to the attacks other tests cover.

A builder gets the running bot and a restore waiting for approval (its card in C1, requested
by U1) and returns the function that sends the attack: anything a builder sends first (a
captured request, say) happens before the "nothing changed" snapshot is taken.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support.signed import Response, block_action_body, post_signed, sign, slash_command_body

from bot.blocks import APPROVE_ACTION, DENY_ACTION
from bot.policy import Policy
from bot.restores import RestoreRequest
from e2e.harness import SECRET, BotUnderTest

AWS_OPS = (
    "DescribeTable",
    "DescribeContinuousBackups",
    "UpdateContinuousBackups",
    "RestoreTableToPointInTime",
    "ListTables",
    "DeleteTable",
    "TagResource",
)
# Two approvals, so that one captured Approve leaves the request waiting (and replayable).
POLICY = Policy(required_approvals=2)


@dataclass
class Ctx:
    bot: BotUnderTest
    card: RestoreRequest
    elsewhere: str  # a URL on a server that is not Slack, which hangs and counts connections


Send = Callable[[], Response]


def raw_post(bot: BotUnderTest, body: bytes, headers: dict[str, str], method: str = "POST"):
    """POST exactly these headers (no signing help): for malformed headers."""
    req = urllib.request.Request(bot.sender.url, data=body, headers=headers, method=method)
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        status, raw = int(err.code), err.read()
    return Response(status, raw.decode("utf-8", "replace"), {}, time.monotonic() - start)


def command_body(ctx: Ctx, text: str = "MusicCollection AttackCopy latest", **kw: Any) -> bytes:
    kw.setdefault("response_url", ctx.bot.fake.response_url("attacker"))
    return slash_command_body("/pitr-restore", text, "U3", "C1", **kw)


def signed_headers(body: bytes, ts: int | None = None, ctype: str | None = None) -> dict:
    ts = int(time.time()) if ts is None else ts
    return {
        "Content-Type": ctype or "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(SECRET, body, ts),
    }


def with_headers(**changes: str | Callable[[int], str] | None) -> Callable[[Ctx], Send]:
    """A correctly built command whose headers are then changed (None removes one; a function
    gets the current Unix time)."""

    def build(ctx: Ctx) -> Send:
        body = command_body(ctx, response_url=ctx.elsewhere)
        headers = signed_headers(body)
        for name, value in changes.items():
            header = {"ts": "X-Slack-Request-Timestamp", "sig": "X-Slack-Signature"}[name]
            if value is None:
                headers.pop(header)
            else:
                headers[header] = value(int(time.time())) if callable(value) else value
        return lambda: raw_post(ctx.bot, body, headers)

    return build


def signed(
    make_body: Callable[[Ctx], bytes], ctype: str | None = None, age: int = 0
) -> Callable[[Ctx], Send]:
    """A body correctly signed with the real secret (only the body or its age is wrong)."""

    def build(ctx: Ctx) -> Send:
        body = make_body(ctx)
        return lambda: raw_post(ctx.bot, body, signed_headers(body, int(time.time()) - age, ctype))

    return build


def payload(text: str) -> Callable[[Ctx], bytes]:
    from urllib.parse import quote

    # Brackets unquoted (as a form allows): 50 000 of them then still fit the size limit.
    return lambda ctx: b"payload=" + quote(text, safe="[]{}").encode()


def click(action: str, user: str, channel: str = "C1", team: str = "T1") -> Callable[[Ctx], bytes]:
    def make(ctx: Ctx) -> bytes:
        return block_action_body(
            action,
            ctx.card.id,
            user,
            channel,
            ctx.card.card_ts or "",
            ctx.bot.fake.response_url(f"click-{user}"),
            team_id=team,
        )

    return make


def replayed(make_body: Callable[[Ctx], bytes], settle: Callable[[Ctx], None]):
    """Send a request once (accepted, it acts), wait for its effect; the attack re-sends it."""

    def build(ctx: Ctx) -> Send:
        body = make_body(ctx)
        headers = signed_headers(body)
        assert raw_post(ctx.bot, body, headers).status == 200
        settle(ctx)
        return lambda: raw_post(ctx.bot, body, headers)

    return build


def first_approval_recorded(ctx: Ctx) -> None:
    ctx.bot.wait_reply("U2", "approval")
    wait_for(lambda: ctx.bot.services.store.get(ctx.card.id).approvals == ("U2",))


def second_card_posted(ctx: Ctx) -> None:
    wait_for(lambda: len(ctx.bot.services.store.find()) == 2)
    ctx.bot.wait_reply("attacker", "Someone else has to click")


def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def enterprise_command(ctx: Ctx) -> bytes:
    return command_body(ctx) + b"&enterprise_id=E999&enterprise_name=evil"


# (attack, builder, expected HTTP status)
ATTACKS: list[tuple[str, Callable[[Ctx], Send], int]] = [
    ("no signature headers", with_headers(ts=None, sig=None), 401),
    ("no timestamp header", with_headers(ts=None), 401),
    ("empty signature", with_headers(sig=""), 401),
    ("timestamp not a number", with_headers(ts="yesterday"), 400),
    ("timestamp with digit separators (now as 1_764_…)", with_headers(ts="{:_}".format), 400),
    ("timestamp with a leading space", with_headers(ts=" {}".format), 400),
    ("timestamp with a plus sign", with_headers(ts="+{}".format), 400),
    ("timestamp of 40 digits", with_headers(ts="9" * 40), 400),
    ("negative timestamp", with_headers(ts="-1"), 400),
    ("signature of another version (v1=)", with_headers(sig="v1=" + "0" * 64), 400),
    ("signature not hex", with_headers(sig="v0=" + "z" * 64), 400),
    ("signature with a header injection", with_headers(sig="v0=abc\tX-Evil: 1"), 400),
    ("garbage signature, well formed", with_headers(sig="v0=" + "0" * 64), 401),
    ("stale: correctly signed 10 minutes ago", signed(command_body, age=600), 401),
    ("from the future: signed 10 minutes ahead", signed(command_body, age=-600), 401),
    (
        "signed with another secret",
        lambda ctx: (
            lambda: post_signed(
                ctx.bot.sender.url,
                SECRET,
                command_body(ctx),
                signature=sign("not-the-secret", command_body(ctx), int(time.time())),
            )
        ),
        401,
    ),
    ("oversize body (300 kB)", signed(lambda ctx: command_body(ctx, "x" * 300_000)), 413),
    ("wrong content type (text/plain)", signed(command_body, ctype="text/plain"), 415),
    ("wrong content type (multipart)", signed(command_body, ctype="multipart/form-data"), 415),
    ("bad UTF-8 in a signed form body", signed(lambda ctx: command_body(ctx) + b"%FF\xff"), 400),
    ("percent-encoded bad UTF-8", signed(lambda ctx: command_body(ctx) + b"&extra=%FF%FE"), 400),
    ("bad UTF-8 in a signed JSON payload", signed(lambda ctx: b"payload={\xc3\x28}"), 400),
    ("50 000 nested brackets in the payload", signed(payload(nested(50_000))), 400),
    (
        "50 000 nested brackets as a JSON body",
        signed(lambda ctx: nested(50_000).encode(), ctype="application/json"),
        400,
    ),
    ("payload that is not JSON", signed(payload("{not json")), 400),
    ("payload that is a JSON list", signed(payload("[1, 2]")), 400),
    ("repeated form fields", signed(lambda ctx: command_body(ctx) + b"&user_id=U2"), 400),
    ("GET instead of POST", lambda ctx: lambda: raw_post(ctx.bot, b"", {}, method="GET"), 405),
    (
        "response_url pointing elsewhere (signed)",
        signed(lambda ctx: command_body(ctx, response_url=ctx.elsewhere)),
        400,
    ),
    (
        "response_url pointing elsewhere on a malformed request",
        with_headers(ts="not-a-time", sig="v0=broken"),
        400,
    ),
    ("another team_id", signed(lambda ctx: command_body(ctx, team_id="T999")), 403),
    ("an enterprise_id on a non-Grid install", signed(enterprise_command), 403),
    ("a click from another team", signed(click(APPROVE_ACTION, "U2", team="T999")), 403),
    ("Approve clicked from another channel", signed(click(APPROVE_ACTION, "U2", "C2")), 200),
    ("Deny clicked from another channel", signed(click(DENY_ACTION, "U2", "C2")), 200),
    (
        "replay of a slash command",
        replayed(lambda ctx: command_body(ctx, "MusicCollection ReplayedCopy"), second_card_posted),
        200,
    ),
    (
        "replay of a captured Approve",
        replayed(click(APPROVE_ACTION, "U2"), first_approval_recorded),
        200,
    ),
]


class _Elsewhere:
    """An HTTP server that is not Slack: it counts connections and never answers in time."""

    def __init__(self) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                outer.hits += 1
                time.sleep(30)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def snapshot(bot: BotUnderTest) -> tuple[str, list[str]]:
    bot.quiet()  # once the bot owes Slack nothing: an edit on its way is not a side effect
    store = bot.services.store
    requests = json.dumps([repr(r) for r in store.find()])
    return requests, [repr(e) for e in store.audit_events()]


def aws_calls(bot: BotUnderTest) -> dict[str, int]:
    return {op: bot.sim.count(op) for op in AWS_OPS}


@pytest.mark.parametrize(
    ("attack", "build", "expected"), ATTACKS, ids=[name for name, _, _ in ATTACKS]
)
def test_attack_is_refused_without_side_effects(make_bot, attack, build, expected):
    elsewhere = _Elsewhere()
    try:
        bot = make_bot(policy=POLICY)
        bot.command("/pitr-restore", "MusicCollection WaitingCopy latest")
        card = bot.wait_card()
        bot.wait_reply("U1", "Someone else has to click")
        send = build(Ctx(bot, card, elsewhere.url))
        bot.quiet()  # everything the setup owes Slack is sent before the snapshot
        slack_before, aws_before = len(bot.fake.calls()), aws_calls(bot)
        store_before = snapshot(bot)

        resp = send()
        time.sleep(0.5)  # anything the attack (wrongly) set off would show by now

        assert resp.status < 500, (attack, resp)
        assert resp.status == expected, (attack, resp)
        assert bot.fake.calls()[slack_before:] == [], bot.fake.dump()
        assert aws_calls(bot) == aws_before
        assert snapshot(bot) == store_before
        assert elsewhere.hits == 0
    finally:
        elsewhere.close()


# -- crashes on input (issue 10, item 8): a clear refusal to the person, never a 500 --------

EXTREME_TIMES = ["0001-01-01", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"]


@pytest.mark.parametrize("when", EXTREME_TIMES)
def test_extreme_time_gets_a_clear_refusal_and_changes_nothing(make_bot, fake, sim, when):
    bot = make_bot()  # U1's Slack time zone is Europe/Berlin (east of UTC)
    resp = bot.command("/pitr-restore", f"MusicCollection ExtremeCopy {when}")
    assert resp.status == 200, resp
    reply = bot.wait_reply("U1", when)
    assert reply.startswith(":warning:") and "Something went wrong" not in reply, reply
    time.sleep(0.3)
    assert bot.cards() == []
    assert bot.services.store.find() == []
    assert sim.count("RestoreTableToPointInTime") == 0


# -- a slow response_url never holds the threads that answer Slack -------------------------


def test_a_hanging_response_url_never_delays_an_ack(make_bot, fake, sim):
    """Slack's hooks host hanging (here: FakeSlack's, the allowed host in tests).

    Each command below is refused with an ephemeral reply through its response_url, which
    does not answer until the test releases it. The server has 8 request threads: 9 such
    commands in a row must all be acked while every reply is still hanging (before: the 1st
    ack waited for its reply), and /healthz still answers.
    """
    bot = make_bot()
    fake.hold("response_url")
    for i in range(9):
        url = fake.response_url(f"slow{i}")
        resp = bot.sender.post(
            slash_command_body("/pitr-restore", f"OnlyASource{i}", "U1", "C1", url),
            timeout=15,  # an ack that waits for its reply never comes: urllib raises
        )
        assert resp.status == 200, resp
    fake.wait_for(lambda c: c.method == "response_url" and "/slow" in c.args["_path"])
    with urllib.request.urlopen(f"http://127.0.0.1:{bot.server.port}/healthz", timeout=15) as r:
        assert r.status == 200
    fake.release()


# -- what a refused request leaves in the log ----------------------------------------------

LEGACY_TOKEN = "legacy-token-Zq81vN"  # noqa: S105 - Slack's old verification token field


def test_refused_requests_leave_no_body_token_or_traceback_in_the_log(make_bot, fake, caplog):
    """Bolt logged an unverified body at INFO (legacy `token` included) on a bad signature."""
    from urllib.parse import urlencode

    caplog.set_level(logging.DEBUG)
    bot = make_bot()
    body = urlencode(
        {
            "token": LEGACY_TOKEN,
            "team_id": "T1",
            "user_id": "U3",
            "channel_id": "C1",
            "command": "/pitr-restore",
            "text": "MusicCollection LoggedAttack latest",
            "response_url": fake.response_url("attacker"),
        }
    ).encode()
    now = int(time.time())
    ctype = "application/x-www-form-urlencoded"
    attempts = {
        "garbage signature": {"X-Slack-Signature": "v0=" + "1" * 64},
        "malformed timestamp": {"X-Slack-Request-Timestamp": "soon"},
        "malformed signature": {"X-Slack-Signature": "not-a-signature"},
        "stale": {"X-Slack-Request-Timestamp": str(now - 3600)},
    }
    for how, change in attempts.items():
        headers = {**signed_headers(body, now, ctype), **change}
        if how == "stale":
            headers["X-Slack-Signature"] = sign(SECRET, body, now - 3600)
        assert raw_post(bot, body, headers).status in (400, 401), how
    time.sleep(0.3)

    assert LEGACY_TOKEN not in caplog.text
    assert "LoggedAttack" not in caplog.text
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "refused a request to /slack/events" in caplog.text  # the reason is logged
