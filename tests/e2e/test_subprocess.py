"""The shipped entry point: `pitr-bot serve` in its own process, configured by environment only.

Nothing is shared with the test process but the wire: signed HTTP in, FakeSlack and the AWS
proxy out (CREATING comes from the proxy, since botocore hooks cannot reach another process).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from support.fake_slack import buttons
from support.signed import SlackSender

from bot.blocks import APPROVE_ACTION
from e2e.process import BotProcess, base_env, free_port, run_cli, start_bot_process

TOKEN = "xoxb-subprocess-e2e-token-7f3a9c"  # noqa: S105 - a test secret
SECRET = "51d2e8a09b7c6d5e4f3a2b1c0d9e8f7a"  # noqa: S105 - shaped like Slack's (32 hex)
BROADCAST = (True, "true", "1")


def action_values(call) -> set[str]:
    return {
        el.get("value", "")
        for block in call.args.get("blocks", [])
        if block["type"] == "actions"
        for el in block["elements"]
    }


def texts_to(fake, name: str) -> list[str]:
    return [
        str(c.args.get("text", ""))
        for c in fake.calls("response_url")
        if c.args.get("_path", "").endswith(f"/{name}")
    ]


def wait_text_to(fake, name: str, contains: str, timeout: float = 30) -> str:
    calls = fake.wait_for(
        lambda c: (
            c.method == "response_url"
            and c.args.get("_path", "").endswith(f"/{name}")
            and contains.lower() in str(c.args.get("text", "")).lower()
        ),
        timeout=timeout,
    )
    return str(calls[0].args["text"])


@pytest.fixture
def proc(tmp_path, fake, sim) -> Iterator[BotProcess]:
    sim.creating_seconds = 1.5
    port = free_port()
    run = tmp_path / "run"
    run.mkdir()
    env = base_env(
        **sim.env(),
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        PITR_BOT_STATE=f"sqlite:///{tmp_path / 'state.db'}",
        PITR_BOT_POLL_SECONDS="0.2",
        PITR_BOT_PORT=str(port),
        PITR_BOT_HOST="127.0.0.1",
    )
    assert "SLACK_APP_TOKEN" not in env
    bot = start_bot_process(env, run, port)
    try:
        bot.wait_healthy(timeout=60)
        yield bot
    finally:
        bot.kill()


def test_restore_to_active_through_pitr_bot_serve(proc, fake, sim):
    slack = SlackSender(proc.url, SECRET)

    resp = slack.command(
        "/pitr-restore",
        "MusicCollection MusicCollectionMinutesAgo latest",
        user_id="U1",
        channel_id="C1",
        response_url=fake.response_url("U1"),
    )
    assert resp.status == 200, resp.body
    assert "Checking" in resp.body

    card = fake.wait_for(
        lambda c: c.method == "chat.postMessage" and not c.args.get("thread_ts"), timeout=60
    )[0]
    assert card.args["channel"] == "C1"
    assert card.token == TOKEN
    assert buttons(card) == ["Approve", "Deny"]
    blocks = str(card.args["blocks"])
    assert "MusicCollection" in blocks and "MusicCollectionMinutesAgo" in blocks
    assert "<@U1>" in blocks and "Restorable window" in blocks
    (restore_id,) = action_values(card)
    wait_text_to(fake, "U1", "Someone else has to click")

    def click(user: str):
        return slack.click(
            APPROVE_ACTION,
            restore_id,
            user_id=user,
            channel_id="C1",
            message_ts="1700000000.000101",
            response_url=fake.response_url(f"click-{user}"),
        )

    # The requester's own Approve is refused, only to them, and starts nothing.
    assert click("U1").status == 200
    wait_text_to(fake, "click-U1", "someone else has to approve")
    assert sim.count("RestoreTableToPointInTime") == 0

    # Another person approves: exactly one restore, tracked to ACTIVE. CREATING until the
    # progress reply has been edited while CREATING (a fixed 1.5 s can pass before the first
    # edit on a busy machine).
    target = "MusicCollectionMinutesAgo"
    sim.hold_creating(target)
    approved = click("U2")
    assert approved.status == 200
    fake.wait_for(
        lambda c: (
            c.method == "chat.update" and f"`{target}` is CREATING" in str(c.args.get("text", ""))
        ),
        timeout=60,
    )
    deadline = time.monotonic() + 60
    while sim.count("DescribeTable") < 3:
        assert time.monotonic() < deadline, sim.count("DescribeTable")
        time.sleep(0.05)
    sim.finish_creating(target)
    final = fake.wait_for(
        lambda c: c.method == "chat.postMessage" and c.args.get("reply_broadcast") in BROADCAST,
        timeout=60,
    )[0]
    final_text = final.args.get("text", "") + str(final.args.get("blocks"))
    assert "MusicCollectionMinutesAgo" in final_text and "ACTIVE" in final_text
    card_ts = final.args["thread_ts"]

    restores = sim.requests("RestoreTableToPointInTime")
    assert len(restores) == 1
    assert restores[0]["SourceTableName"] == "MusicCollection"
    assert restores[0]["TargetTableName"] == "MusicCollectionMinutesAgo"
    assert restores[0]["UseLatestRestorableTime"] is True
    assert not any(":warning:" in t for t in texts_to(fake, "click-U2"))

    # Progress: one thread reply, edited in place, which showed CREATING along the way. The
    # after-ACTIVE comparison is one more reply, from the announcer's other lane, before or
    # after the broadcast: wait for it, then count the rest.
    fake.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.args.get("thread_ts") == card_ts
            and "compared with" in str(c.args.get("text", ""))
        ),
        timeout=60,
    )
    thread = [
        c
        for c in fake.calls("chat.postMessage")
        if c.args.get("thread_ts") == card_ts
        and not c.failed
        and "compared with" not in str(c.args.get("text", ""))
    ]
    assert len(thread) == 2, fake.dump()  # the progress reply and the final broadcast
    progress_updates = [
        c for c in fake.calls("chat.update") if c.args.get("ts") not in (None, card_ts)
    ]
    assert any("CREATING" in c.args.get("text", "") for c in progress_updates), fake.dump()
    assert sim.count("DescribeTable") >= 3

    # The card ends without buttons, naming the approver.
    fake.wait_for(
        lambda c: (
            c.method == "chat.update"
            and c.args.get("ts") == card_ts
            and "ACTIVE" in c.args.get("text", "")
        ),
        timeout=30,
    )
    last_card = [c for c in fake.calls("chat.update") if c.args.get("ts") == card_ts][-1]
    assert buttons(last_card) == []
    assert "<@U2>" in str(last_card.args["blocks"])

    # SIGTERM: a clean exit, and no secret ever written out.
    assert proc.terminate() == 0, proc.stderr()
    output = proc.stderr() + proc.stdout()
    assert TOKEN not in output
    assert SECRET not in output
    assert proc.healthz() is None  # the port is closed


def test_sigterm_while_idle_exits_zero(proc):
    assert proc.healthz() == 200
    assert proc.terminate() == 0, proc.stderr()
    assert TOKEN not in proc.stderr() and SECRET not in proc.stderr()


def test_check_config_lists_every_missing_setting_at_once(tmp_path):
    result = run_cli("check-config", env=base_env(AWS_REGION="eu-west-1"), cwd=tmp_path)
    assert result.returncode != 0
    assert "SLACK_BOT_TOKEN" in result.stderr
    assert "SLACK_SIGNING_SECRET" in result.stderr
    assert "2 problem(s)" in result.stderr, result.stderr


def test_check_config_names_an_unsatisfiable_policy(tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text("approvers: [U2]\nrequired_approvals: 2\n", encoding="utf-8")
    env = base_env(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        PITR_BOT_POLICY=str(policy),
    )
    result = run_cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "2 approvals required but only 1 approver(s) listed" in result.stderr, result.stderr
    assert TOKEN not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout


def test_check_config_reports_settings_and_policy_problems_together(tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text("approvers: [U2]\nrequired_approvals: 2\n", encoding="utf-8")
    env = base_env(PITR_BOT_POLICY=str(policy), AWS_REGION="eu-west-1")
    result = run_cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode != 0
    for problem in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "approver(s) listed"):
        assert problem in result.stderr, result.stderr
    assert "3 problem(s)" in result.stderr


def test_check_config_ok(tmp_path):
    env = base_env(SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, AWS_REGION="eu-west-1")
    result = run_cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_serve_refuses_to_start_without_config(tmp_path):
    result = run_cli("serve", env=base_env(), cwd=tmp_path, timeout=60)
    assert result.returncode != 0
    assert "SLACK_BOT_TOKEN" in result.stderr and "SLACK_SIGNING_SECRET" in result.stderr
    assert "not starting" in result.stderr


def test_iam_policy_command_prints_the_pinned_policy_for_the_policy_file(tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text('tables: ["orders"]\ntarget_pattern: "restored-*"\n')
    env = base_env(PITR_BOT_POLICY=str(policy), PITR_BOT_STATE="dynamodb://pitr-state")
    result = run_cli(
        "iam-policy", "--account", "123456789012", "--region", "eu-west-1", env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    resources = json.dumps(document)
    assert "arn:aws:dynamodb:eu-west-1:123456789012:table/orders" in resources
    assert "arn:aws:dynamodb:eu-west-1:123456789012:table/restored-*" in resources
    assert "arn:aws:dynamodb:eu-west-1:123456789012:table/pitr-state" in resources
    assert result.stderr == ""


def test_iam_policy_command_with_a_bad_policy_says_why_in_one_line(tmp_path):
    policy = tmp_path / "policy.yml"
    policy.write_text('target_pattern: "restored-[ab]*"\nkms_keys: ["not a key"]\n')
    result = run_cli("iam-policy", env=base_env(PITR_BOT_POLICY=str(policy)), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "target_pattern" in result.stderr and "not a key" in result.stderr
    assert "Traceback" not in result.stderr
