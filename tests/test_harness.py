"""Tests of the test harness itself (tests/support): if these fail, trust nothing else."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient
from support.aws_sim import AwsSimulator
from support.botocore_hooks import simulate_creating, widen_window
from support.fake_slack import FakeSlack
from support.signed import (
    SlackSender,
    block_action_body,
    post_signed,
    sign,
    slash_command_body,
)

SECRET = "test-signing-secret"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


@pytest.fixture
def sim() -> Iterator[AwsSimulator]:
    with AwsSimulator() as s:
        yield s


def _web(fake: FakeSlack, **kwargs: Any) -> WebClient:
    return WebClient(base_url=fake.api_url, token="xoxb-test", **kwargs)


# -- FakeSlack -------------------------------------------------------------------------


def test_fake_slack_records_post_message_with_parsed_blocks(fake: FakeSlack) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    client = _web(fake)
    first = client.chat_postMessage(channel="C1", text="hello", blocks=blocks)
    second = client.chat_postMessage(channel="C1", text="again")

    [call, _] = fake.wait_for("chat.postMessage", count=2)
    assert call.args["channel"] == "C1"
    assert call.args["text"] == "hello"
    assert call.args["blocks"] == blocks  # parsed, not a JSON string
    assert call.token == "xoxb-test"
    assert not call.failed
    assert first["message"]["blocks"] == blocks
    assert float(second["ts"]) > float(first["ts"])


def test_fake_slack_form_encoded_blocks_are_parsed(fake: FakeSlack) -> None:
    blocks = [{"type": "divider"}]
    _web(fake).api_call(
        "chat.update", data={"channel": "C1", "ts": "1.2", "blocks": json.dumps(blocks)}
    )
    [call] = fake.calls("chat.update")
    assert call.args["blocks"] == blocks
    # JSON bodies (api_call(json=...)) are parsed too
    _web(fake).api_call("chat.postMessage", json={"channel": "C2", "blocks": blocks})
    [call] = fake.calls("chat.postMessage")
    assert (call.args["channel"], call.args["blocks"]) == ("C2", blocks)


def test_fake_slack_429_then_retry_handler_succeeds(fake: FakeSlack) -> None:
    fake.fail("chat.postMessage", times=1, status=429, retry_after=0)
    client = _web(fake, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    resp = client.chat_postMessage(channel="C1", text="x")
    assert resp["ok"]
    calls = fake.calls("chat.postMessage")
    assert [c.failed for c in calls] == [True, False]
    assert calls[0].status == 429


def test_fake_slack_fault_without_retry_raises(fake: FakeSlack) -> None:
    fake.fail("chat.update", status=500, error="internal_error")
    with pytest.raises(SlackApiError) as err:
        _web(fake).chat_update(channel="C1", ts="1.1", text="x")
    assert err.value.response.status_code == 500
    _web(fake).chat_update(channel="C1", ts="1.1", text="x")  # only `times` calls fail


def test_fake_slack_down(fake: FakeSlack) -> None:
    fake.set_down(True)
    with pytest.raises(SlackApiError):
        _web(fake).auth_test()
    fake.set_down(False)
    assert _web(fake).auth_test()["user_id"] == "UBOT"
    assert [c.failed for c in fake.calls("auth.test")] == [True, False]


def test_fake_slack_users_and_groups(fake: FakeSlack) -> None:
    fake.users = {"U1": {"name": "alice", "tz": "Asia/Kolkata"}}
    fake.groups = {"S1": ["U2", "U3"]}
    client = _web(fake)
    alice = client.users_info(user="U1")["user"]
    assert (alice["name"], alice["tz"], alice["tz_offset"]) == ("alice", "Asia/Kolkata", 19800)
    bob = client.users_info(user="UBOB")["user"]
    assert (bob["name"], bob["tz"], bob["tz_offset"]) == ("ubob", "UTC", 0)
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U2", "U3"]
    with pytest.raises(SlackApiError) as err:
        client.usergroups_users_list(usergroup="S9")
    assert err.value.response["error"] == "no_such_subteam"


def test_fake_slack_views_and_ephemeral(fake: FakeSlack) -> None:
    client = _web(fake)
    view = {"type": "modal", "callback_id": "restore", "title": {"type": "plain_text", "text": "R"}}
    opened = client.views_open(trigger_id="tbl", view=view)
    assert opened["view"]["id"] and opened["view"]["callback_id"] == "restore"
    assert fake.calls("views.open")[0].args["view"]["callback_id"] == "restore"
    assert client.chat_postEphemeral(channel="C1", user="U1", text="x")["message_ts"]


def test_fake_slack_response_url_recorded(fake: FakeSlack) -> None:
    url = fake.response_url("abc")
    resp = WebhookClient(url).send(text="done", replace_original=True)
    assert resp.status_code == 200
    [call] = fake.wait_for("response_url")
    assert call.args["text"] == "done"
    assert call.args["replace_original"] is True
    assert call.args["_path"] == "/respond/abc"


def test_fake_slack_wait_for_times_out_with_dump(fake: FakeSlack) -> None:
    _web(fake).auth_test()
    # Its own timeout, not the 30 s default: read from the message, not from a stopwatch.
    with pytest.raises(AssertionError, match=r"(?s)timed out after 0\.2s.*auth\.test"):
        fake.wait_for(lambda c: c.method == "chat.postMessage", timeout=0.2)
    fake.clear()
    assert fake.calls() == []


def test_fake_slack_wait_for_sees_later_calls(fake: FakeSlack) -> None:
    timer = threading.Timer(0.1, lambda: _web(fake).chat_postMessage(channel="C", text="tbl"))
    timer.start()
    try:
        assert fake.wait_for("chat.postMessage", timeout=30)[0].args["text"] == "tbl"
    finally:
        timer.join()


# -- signed requests -------------------------------------------------------------------


def test_sign_verifies_with_slack_sdk() -> None:
    body = slash_command_body("/pitr", "restore t", "U1", "C1", "http://x/respond")
    ts = int(time.time())
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(body, ts, sign(SECRET, body, ts))
    assert not verifier.is_valid(body, ts, sign("other", body, ts))
    assert not verifier.is_valid(body + b"x", ts, sign(SECRET, body, ts))


def test_post_signed_returns_error_status(fake: FakeSlack) -> None:
    resp = post_signed(f"http://127.0.0.1:{fake.port}/nope", SECRET, b"a=b")
    assert resp.status == 404
    assert json.loads(resp.body)["error"] == "unknown_path"


class _BoltServer:
    """Minimal HTTP front for a Bolt App, to exercise SlackSender over the wire."""

    def __init__(self, app: App) -> None:
        bolt = app

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                headers = {k.lower(): [v] for k, v in self.headers.items()}
                result = bolt.dispatch(BoltRequest(body=body, headers=headers))
                payload = result.body.encode()
                self.send_response(result.status)
                for k, vs in result.headers.items():
                    for v in vs:
                        if k.lower() != "content-length":
                            self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_slack_sender_payloads_route_in_bolt(fake: FakeSlack) -> None:
    app = App(signing_secret=SECRET, client=_web(fake))
    seen: dict[str, Any] = {}

    @app.command("/pitr")
    def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        ack()
        seen["command"] = command
        respond(text="got it")

    @app.action("approve")
    def on_click(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        seen["action"] = (action["value"], body["container"]["message_ts"], body["user"]["id"])

    @app.view("restore")
    def on_submit(ack: Any, view: dict[str, Any]) -> None:
        ack()
        seen["view"] = (view["state"]["values"], view["private_metadata"])

    @app.options("source")
    def on_options(ack: Any, payload: dict[str, Any]) -> None:
        text = payload["value"]
        ack(options=[{"text": {"type": "plain_text", "text": text}, "value": text}])

    server = _BoltServer(app)
    try:
        sender = SlackSender(server.url, SECRET)
        r = sender.command("/pitr", "restore orders", response_url=fake.response_url())
        assert r.status == 200, r.body
        fake.wait_for("response_url")
        assert seen["command"]["text"] == "restore orders"

        r = sender.click("approve", "req-1", user_id="U2", message_ts="1700000000.000101")
        assert r.status == 200, r.body

        values = {"b": {"a": {"type": "plain_text_input", "value": "x"}}}
        r = sender.submit("restore", values, private_metadata="meta")
        assert r.status == 200, r.body
        assert seen["view"] == (values, "meta")

        r = sender.suggest("source", "ord", callback_id="restore")
        assert r.status == 200, r.body
        assert r.json()["options"][0]["value"] == "ord"

        bad = post_signed(
            sender.url,
            SECRET,
            block_action_body("approve", "v", "U1", "C1", "1.1", "http://x"),
            signature="v0=bad",
        )
        assert bad.status == 401
        deadline = time.monotonic() + 30
        while "action" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen["action"] == ("req-1", "1700000000.000101", "U2")
    finally:
        server.close()


# -- AwsSimulator ------------------------------------------------------------------------


def test_aws_sim_pitr_window_is_wide(sim: AwsSimulator) -> None:
    sim.create_table("orders", pitr=True, items=3)
    desc = sim.client().describe_continuous_backups(TableName="orders")
    pitr = desc["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    now = datetime.now(UTC)
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    assert now - pitr["EarliestRestorableDateTime"] > timedelta(days=34)
    lag = now - pitr["LatestRestorableDateTime"]
    assert timedelta(minutes=4) < lag < timedelta(minutes=6)
    assert sim.count("DescribeContinuousBackups") == 1


def test_aws_sim_restore_is_creating_then_active(sim: AwsSimulator) -> None:
    sim.create_table("orders", items=3)
    # Long enough that no stall between the calls below ends it; then ended by the test.
    sim.creating_seconds = 600
    ddb = sim.client()
    when = datetime.now(UTC) - timedelta(hours=1)
    resp = ddb.restore_table_to_point_in_time(
        SourceTableName="orders", TargetTableName="orders-restored", RestoreDateTime=when
    )
    assert resp["TableDescription"]["TableStatus"] == "CREATING"
    assert ddb.describe_table(TableName="orders-restored")["Table"]["TableStatus"] == "CREATING"
    assert ddb.describe_table(TableName="orders")["Table"]["TableStatus"] == "ACTIVE"
    sim.creating_seconds = 0.0  # the time is up
    assert ddb.describe_table(TableName="orders-restored")["Table"]["TableStatus"] == "ACTIVE"
    assert ddb.scan(TableName="orders-restored")["Count"] == 3

    [req] = sim.requests("RestoreTableToPointInTime")
    assert req["TargetTableName"] == "orders-restored"
    assert req["RestoreDateTime"] == pytest.approx(when.timestamp(), abs=1)
    assert sim.count("DescribeTable") == 3


def test_aws_sim_per_target_creating_override(sim: AwsSimulator) -> None:
    sim.create_table("src-a", items=0)
    sim.creating_for = {"slow-target": 30}
    ddb = sim.client()
    ddb.restore_table_to_point_in_time(
        SourceTableName="src-a", TargetTableName="slow-target", UseLatestRestorableTime=True
    )
    ddb.restore_table_to_point_in_time(
        SourceTableName="src-a", TargetTableName="fast-target", UseLatestRestorableTime=True
    )
    assert ddb.describe_table(TableName="slow-target")["Table"]["TableStatus"] == "CREATING"
    assert ddb.describe_table(TableName="fast-target")["Table"]["TableStatus"] == "ACTIVE"


def test_aws_sim_fail_throttles(sim: AwsSimulator) -> None:
    sim.create_table("tbl", items=1)
    sim.fail("DescribeTable", times=1)
    ddb = sim.client(max_attempts=1)
    with pytest.raises(ClientError) as err:
        ddb.describe_table(TableName="tbl")
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ddb.describe_table(TableName="tbl")["Table"]["TableName"] == "tbl"
    assert sim.count("DescribeTable") == 2


def test_aws_sim_slow_and_env(sim: AwsSimulator) -> None:
    sim.create_table("tbl", pitr=False, items=0)
    sim.slow("DescribeTable", 0.3)
    start = time.monotonic()
    sim.client().describe_table(TableName="tbl")
    assert time.monotonic() - start >= 0.3
    env = sim.env()
    assert env["AWS_ENDPOINT_URL"] == sim.endpoint_url
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    # Same region => the same moto backend as the simulator's own client.
    other = boto3.client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id="AKIDOTHER",
        aws_secret_access_key="x",  # noqa: S106
    )
    assert "tbl" in other.list_tables()["TableNames"]


def test_aws_sim_hold_keeps_a_call_waiting_until_released(sim: AwsSimulator) -> None:
    sim.create_table("tbl", pitr=False, items=0)
    sim.hold("DescribeTable")
    answers: list[str] = []
    caller = threading.Thread(
        target=lambda: answers.append(
            sim.client().describe_table(TableName="tbl")["Table"]["TableName"]
        )
    )
    caller.start()
    deadline = time.monotonic() + 15
    while sim.gates.waiting("DescribeTable") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.gates.waiting("DescribeTable") == 1 and answers == []
    sim.release("DescribeTable")
    caller.join(timeout=15)
    assert answers == ["tbl"]
    sim.client().describe_table(TableName="tbl")  # no longer held
    assert sim.gates.waiting("DescribeTable") == 0


# -- botocore hooks (in-process moto) ------------------------------------------------------


def test_botocore_hooks_with_mock_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="src",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.update_continuous_backups(
            TableName="src",
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )

        now = [100.0]
        creating = simulate_creating(ddb, seconds=10, clock=lambda: now[0])
        window = widen_window(ddb, latest_lag=timedelta(minutes=2))

        resp = ddb.restore_table_to_point_in_time(
            SourceTableName="src", TargetTableName="dst", UseLatestRestorableTime=True
        )
        assert resp["TableDescription"]["TableStatus"] == "CREATING"
        assert ddb.describe_table(TableName="dst")["Table"]["TableStatus"] == "CREATING"
        assert ddb.describe_table(TableName="src")["Table"]["TableStatus"] == "ACTIVE"
        now[0] = 111.0
        assert ddb.describe_table(TableName="dst")["Table"]["TableStatus"] == "ACTIVE"
        assert creating.describe_calls == 3

        pitr = ddb.describe_continuous_backups(TableName="src")["ContinuousBackupsDescription"][
            "PointInTimeRecoveryDescription"
        ]
        lag = datetime.now(UTC) - pitr["LatestRestorableDateTime"]
        assert timedelta(minutes=1) < lag < timedelta(minutes=3)
        assert datetime.now(UTC) - pitr["EarliestRestorableDateTime"] > timedelta(days=34)

        creating.unregister()
        window.unregister()
        now[0] = 100.0
        assert ddb.describe_table(TableName="dst")["Table"]["TableStatus"] == "ACTIVE"
        assert creating.describe_calls == 3
        pitr = ddb.describe_continuous_backups(TableName="src")["ContinuousBackupsDescription"][
            "PointInTimeRecoveryDescription"
        ]
        assert datetime.now(UTC) - pitr["EarliestRestorableDateTime"] < timedelta(days=1)


def test_signed_body_shapes() -> None:
    body = block_action_body("approve", "v1", "U1", "C9", "1.5", "http://r", block_id="b")
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["actions"][0] == {
        "action_id": "approve",
        "block_id": "b",
        "value": "v1",
        "type": "button",
        "action_ts": payload["actions"][0]["action_ts"],
    }
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1.5",
        "channel_id": "C9",
        "is_ephemeral": False,
    }
    assert payload["channel"]["id"] == "C9" and payload["message"]["ts"] == "1.5"
