"""The bot serves one workspace, learnt from auth.test; operations endpoints can move away.

- `pitr-bot serve` with Slack unreachable at boot starts anyway: /readyz 503, Slack requests
  refused (fail closed, never a 5xx), until auth.test answers in the background; then 200.
- PITR_BOT_OPS_BIND serves /readyz and /metrics on their own address, not the Slack port,
  and what they read from the store is cached for a few seconds.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta

from support.signed import SlackSender

from e2e.process import cards, request_restore, serve_env, start_bot_process, wait_until

TOKEN = "xoxb-workspace-e2e-token-0b7d2e"  # noqa: S105 - a test secret
SECRET = "workspace-signing-secret-6e1c4a"  # noqa: S105


def test_serve_starts_with_slack_down_refuses_requests_then_serves_once_slack_answers(
    bots, fake, sim
):
    fake.set_down(True)  # every Web API call, auth.test included, answers 503
    bot = bots.spawn("bot")
    bot.wait_healthy(timeout=30)  # started, although Slack never answered

    status, body = bot.readyz()
    assert status == 503, body
    assert json.loads(body)["slack"] != "ok"

    # Meanwhile a (correctly signed) request is refused: fail closed, no 5xx, nothing done.
    resp = SlackSender(bot.url, SECRET).command(
        "/pitr-restore",
        "MusicCollection TooEarlyCopy latest",
        response_url=fake.response_url("U1"),
    )
    assert resp.status == 200, resp
    assert "still connecting to Slack" in resp.body
    assert sim.count("RestoreTableToPointInTime") == 0
    assert sim.count("DescribeContinuousBackups") == 0
    assert fake.calls("response_url") == []

    fake.set_down(False)
    wait_until(lambda: bot.readyz()[0] == 200, 60, "/readyz 200 once Slack answers")
    restore_id = request_restore(bot, SECRET, fake, "OnTimeCopy")
    assert restore_id
    assert cards(fake, "TooEarlyCopy") == []
    assert bot.proc.poll() is None
    assert "Traceback" not in bot.stderr()


def test_socket_mode_with_slack_down_at_boot_starts_then_becomes_ready(bots, fake):
    # Socket Mode opens its connection at boot too (apps.connections.open): unreachable
    # Slack there must not end serve either.
    fake.set_down(True)
    bot = bots.spawn("socket", SLACK_APP_TOKEN="xapp-1-A1-1-socket-mode-test")
    bot.wait_healthy(timeout=30)
    assert bot.readyz()[0] == 503
    wait_until(lambda: "Socket Mode connection to Slack failed" in bot.stderr(), 30, "a retry")
    fake.set_down(False)
    wait_until(lambda: bot.readyz()[0] == 200, 60, "/readyz 200 once Slack answers")
    assert bot.proc.poll() is None
    assert "Traceback" not in bot.stderr()


def test_a_port_already_taken_stops_serve_with_one_clear_line(bots, fake):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = serve_env(
            token=TOKEN,
            secret=SECRET,
            slack_api_url=fake.api_url,
            aws_env=bots.aws_env(),
            state=bots.state,
            port=port,
        )
        bot = start_bot_process(env, bots.tmp_path, port, name="taken")
        bots.started.append(bot)
        assert bot.proc.wait(timeout=60) == 2
    errors = [line for line in bot.log_lines() if "cannot listen" in line]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0], bot.stderr()
    assert "PITR_BOT_PORT" in errors[0]
    assert "Traceback" not in bot.stderr()


def get(url: str) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()


def test_ops_bind_moves_readyz_and_metrics_off_the_slack_port(make_bot, fake, sim):
    bot = make_bot(PITR_BOT_OPS_BIND="127.0.0.1:0")
    slack_port, ops_port = bot.server.port, bot.server.ops_port
    assert ops_port and ops_port != slack_port

    for path in ("/readyz", "/metrics"):
        assert get(f"http://127.0.0.1:{slack_port}{path}")[0] == 404, path
    status, body = get(f"http://127.0.0.1:{ops_port}/readyz")
    assert status == 200 and json.loads(body) == {"store": "ok", "slack": "ok"}
    status, body = get(f"http://127.0.0.1:{ops_port}/metrics")
    assert status == 200 and "pitr_bot_restores" in body
    # The ops address serves nothing of Slack's; the Slack port still does.
    assert get(f"http://127.0.0.1:{ops_port}/slack/events")[0] == 404
    assert get(f"http://127.0.0.1:{slack_port}/healthz")[0] == 200
    assert bot.command("/pitr-restore", "MusicCollection OpsCopy latest").status == 200
    bot.wait_card()


def test_readyz_and_metrics_do_not_query_the_store_on_every_request(make_bot, monkeypatch):
    bot = make_bot(PITR_BOT_OPS_BIND="127.0.0.1:0", poll_seconds=60)  # tracker all but idle
    store = bot.services.store
    counts = {"ping": 0, "find": 0, "drill_find": 0}
    real_ping, real_find, real_drill_find = store.ping, store.find, store.drill_find

    def ping():
        counts["ping"] += 1
        return real_ping()

    def find(*args, **kwargs):
        counts["find"] += 1
        return real_find(*args, **kwargs)

    def drill_find(*args, **kwargs):
        counts["drill_find"] += 1
        return real_drill_find(*args, **kwargs)

    monkeypatch.setattr(store, "ping", ping)
    monkeypatch.setattr(store, "find", find)
    monkeypatch.setattr(store, "drill_find", drill_find)
    # Time stands still for both caches, so what is counted is the cache, not the machine.
    frozen_mono, frozen_now = [time.monotonic()], [bot.services.clock()]
    monkeypatch.setattr(bot.server.http, "_monotonic", lambda: frozen_mono[0])
    monkeypatch.setattr(bot.services.metrics.store_gauges, "clock", lambda: frozen_now[0])
    base = f"http://127.0.0.1:{bot.server.ops_port}"

    def scrape(times: int) -> None:
        for _ in range(times):
            assert get(f"{base}/readyz")[0] == 200
            assert get(f"{base}/metrics")[0] == 200

    scrape(20)
    # Before: 20 pings and 20 x 3 finds (one a tracked state); now once per cache period.
    assert counts["ping"] <= 1, counts  # 0 if start-up's own check is still kept
    assert counts["find"] <= 3 + 3, counts  # + the tracker's own ticks
    assert counts["drill_find"] <= 1 + 3, counts  # drill gauges are kept with the rest
    pings, finds = counts["ping"], counts["find"]
    frozen_mono[0] += 3  # past the 2 s the answers are kept
    frozen_now[0] += timedelta(seconds=3)
    scrape(5)
    assert counts["ping"] == pings + 1, counts  # read again once, then kept again
    assert finds < counts["find"] <= finds + 3 + 3, counts
    assert 1 <= counts["drill_find"] <= 2 + 3 + 3, counts


def test_slacks_request_url_check_is_answered_though_it_names_no_workspace(make_bot):
    bot = make_bot()
    body = json.dumps(
        {"token": "legacy", "challenge": "3eZbrw1aBm2rZgRNFdxV", "type": "url_verification"}
    ).encode()
    resp = bot.sender.post(body, content_type="application/json")
    assert resp.status == 200, resp
    assert "3eZbrw1aBm2rZgRNFdxV" in resp.body


def test_a_token_slack_refuses_stops_serve_with_one_clear_line(bots, fake):
    # The same `pitr-bot: …` line as every other start-up problem, not a JSON log record.
    fake.fail("auth.test", times=100, status=200, error="invalid_auth")
    bot = bots.spawn("bot")
    assert bot.proc.wait(timeout=60) == 2
    ours = [line for line in bot.log_lines() if line.startswith("pitr-bot:")]
    assert len(ours) == 1, bot.stderr()
    assert "did not accept the bot token (invalid_auth)" in ours[0], ours
    assert "SLACK_BOT_TOKEN" in ours[0]
    assert not [line for line in bot.log_lines() if "token" in line and line not in ours]
    assert TOKEN not in bot.stderr()
    assert "Traceback" not in bot.stderr()


def test_slack_unreachable_at_start_logs_one_line_per_retry_with_backoff(bots, fake):
    fake.set_down(True)
    bot = bots.spawn("bot")
    bot.wait_healthy(timeout=30)
    retry = re.compile(r"Slack unreachable \(auth.test: [^)]*\); retrying in (\d+) s")

    def retries() -> list[int]:
        found = (retry.search(line) for line in bot.log_lines())
        return [int(m.group(1)) for m in found if m]

    wait_until(lambda: len(retries()) >= 4, 60, "four retries")
    assert retries()[:4] == [1, 2, 4, 8]  # each attempt waits twice as long as the one before
    # Nothing else about Slack on stderr meanwhile: one line per attempt, not one per call.
    about_slack = [
        line for line in bot.log_lines() if "auth.test" in line or '"logger": "slack' in line
    ]
    assert len(about_slack) == len(retries()), "\n".join(about_slack)
    fake.set_down(False)
    wait_until(lambda: bot.readyz()[0] == 200, 90, "/readyz 200 once Slack answers")


def test_socket_mode_requests_pass_the_same_workspace_check(bot, fake, sim):
    """Socket Mode requests skip HTTP signing; the workspace check (a Bolt middleware) holds."""
    from slack_bolt.request import BoltRequest
    from support.signed import slash_command_body

    def dispatch(team: str):
        body = slash_command_body(
            "/pitr-restore",
            f"MusicCollection Socket{team} latest",
            "U1",
            "C1",
            fake.response_url("U1"),
            team_id=team,
        )
        return bot.server.app.dispatch(BoltRequest(body=body.decode(), mode="socket_mode"))

    assert dispatch("T999").status == 403
    time.sleep(0.3)
    assert bot.services.store.find() == []
    assert sim.count("DescribeContinuousBackups") == 0
    assert fake.calls("response_url") == []

    assert dispatch("T1").status == 200
    assert bot.wait_card().target == "SocketT1"


def test_sigusr1_prints_every_threads_stack_and_serve_keeps_running(bots):
    # The way to see where a stalled tracker or request waits, without stopping the bot.
    bot = bots.spawn("bot")
    bot.wait_healthy(timeout=30)
    bot.proc.send_signal(signal.SIGUSR1)
    # The dump is written thread by thread while we read: wait for the scheduler's thread,
    # not merely the dump's first line (reading at the first line failed once under load).
    wait_until(lambda: "apscheduler" in bot.stderr(), 20, "the tracker's thread in the dump")
    assert "most recent call first" in bot.stderr()
    assert "Traceback" not in bot.stderr()
    assert bot.proc.poll() is None
    assert bot.healthz() == 200


def test_a_stuck_tracker_tick_turns_healthz_503_and_the_log_says_where(make_bot, caplog):
    # Every AWS and store call has a timeout, so a tick that never ends is a defect; until it
    # ends, this process tracks nothing. The platform must see it (and restart the process),
    # and the log must show where the tick waits.
    bot = make_bot(poll_seconds=0.2)
    tracker = bot.services.tracker
    tracker.stall_seconds = 1.0
    healthz = f"http://127.0.0.1:{bot.server.port}/healthz"
    wait_until(lambda: get(healthz)[0] == 200, 30, "healthz 200")

    stuck, entered = threading.Event(), threading.Event()
    track = bot.services.workflow.track

    def stuck_in_track() -> int:
        entered.set()
        stuck.wait(120)
        return track()

    bot.services.workflow.track = stuck_in_track
    try:
        assert entered.wait(30), "the tracker never ticked"
        status, body = wait_until(
            lambda: (answer := get(healthz))[0] == 503 and answer, 30, "healthz 503"
        )
        assert json.loads(body)["status"] == "tracker stalled"
        for _ in range(3):
            assert get(healthz)[0] == 503
        said = [r for r in caplog.records if "tracker's tick has run" in r.getMessage()]
        assert len(said) == 1, said  # once a stall, not once a probe
        assert "stuck_in_track" in said[0].getMessage()  # where it waits
    finally:
        bot.services.workflow.track = track
        stuck.set()
    wait_until(lambda: get(healthz)[0] == 200, 30, "healthz 200 once the tick ends")
