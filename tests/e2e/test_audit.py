"""The audit trail: every decision and every restore, with who, where and which table.

One bot lives through a request that is restored, one that is denied and one nobody decides;
then the trail is read three ways: the store, `/pitr-status`, and `pitr-bot audit`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from bot.policy import Policy
from e2e.harness import BotUnderTest

TABLE = "MusicCollection"


def card_for(bot: BotUnderTest, target: str):
    bot.command("/pitr-restore", f"{TABLE} {target} latest")
    bot.fake.wait_for(
        lambda c: (
            c.method == "response_url"
            and target in str(c.args.get("text"))
            and "Someone else has to click" in str(c.args.get("text"))
        )
    )
    return next(r for r in bot.services.store.find() if r.target == target)


def live_through_everything(bot: BotUnderTest) -> dict[str, str]:
    """-> {"restored" | "denied" | "expired": restore id}."""
    expires = card_for(bot, "AuditExpires")  # nobody will decide this one

    restored = card_for(bot, "AuditRestored")
    bot.approve(restored.id, "U1")  # the requester: refused (four-eyes)
    bot.wait_reply("U1", "someone else has to approve")
    bot.approve(restored.id, "U2")
    bot.wait_state(restored.id, "ACTIVE")
    bot.fake.wait_for(lambda c: c.method == "chat.postMessage" and c.args.get("reply_broadcast"))

    denied = card_for(bot, "AuditDenied")
    bot.deny(denied.id, "U2")
    bot.wait_state(denied.id, "DENIED")

    # Nobody decided the first card; its time runs out now, and the tracker's tick expires it.
    # (Shortening it in the store, not a short TTL: the other cards must not expire on a busy
    # machine before their clicks are handled.)
    # The save is a compare-and-set: if the bot wrote the request in between, read it again.
    for _ in range(50):
        fresh = bot.services.store.get(expires.id)
        assert fresh is not None and fresh.state.value == "REQUESTED", fresh
        if bot.services.store.save(fresh, replace(fresh, expires_at=datetime.now(UTC))):
            break
    else:
        raise AssertionError(
            f"could not shorten {expires.id}: {bot.services.store.get(expires.id)}"
        )
    bot.wait_state(expires.id, "EXPIRED")
    return {"restored": restored.id, "denied": denied.id, "expired": expires.id}


# (event, which request, actor); None as actor means "the bot itself"
EXPECTED = [
    ("requested", "expired", "U1"),
    ("requested", "restored", "U1"),
    ("approval_refused", "restored", "U1"),
    ("approved", "restored", "U2"),
    ("restore_started", "restored", None),
    ("restore_finished", "restored", None),
    ("requested", "denied", "U1"),
    ("denied", "denied", "U2"),
    ("expired", "expired", None),
]


def check_trail(events: list[dict], ids: dict[str, str]) -> None:
    """`events` as JSON-like dicts; every expected event is there, once, fully attributed."""
    for event, which, actor in EXPECTED:
        matching = [e for e in events if e["event"] == event and e["restore_id"] == ids[which]]
        assert len(matching) == 1, f"{event} for the {which} request: {matching}\n{events}"
        found = matching[0]
        if actor is not None:
            assert found["actor"] == actor, found
        assert found["channel"] == "C1", found
        assert found["table"] == TABLE, found
        assert found["at"], found
    names = {e["event"] for e in events}
    assert {
        "requested",
        "approval_refused",
        "approved",
        "restore_started",
        "restore_finished",
        "denied",
        "expired",
    } <= names


def run_audit(state_db: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PITR_BOT_", "AWS_"))}
    env["PITR_BOT_STATE"] = f"sqlite:///{state_db}"
    script = Path(sys.executable).with_name("pitr-bot")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bot"]
    return subprocess.run(  # noqa: S603 - our own CLI
        [*command, "audit", *args],
        env=env,
        cwd=cwd,  # no stray .env
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_audit_trail_in_store_status_and_cli(make_bot, fake, sim, tmp_path):
    bot = make_bot(policy=Policy())
    ids = live_through_everything(bot)

    # 1. The store.
    events = [e.to_json() for e in bot.services.store.audit_events()]
    check_trail(events, ids)

    # 2. /pitr-status shows the recent activity to whoever asks.
    assert bot.command("/pitr-status", TABLE, user="U3").status == 200
    status = fake.wait_for(
        lambda c: (
            c.method == "response_url"
            and c.args.get("_path", "").endswith("/U3")
            and "Recent activity" in json.dumps(c.args.get("blocks"))
        )
    )[-1]
    shown = json.dumps(status.args["blocks"])
    assert status.args.get("response_type") == "ephemeral"
    assert "expired" in shown and "denied" in shown and "<@U2>" in shown, shown
    assert "No restores in flight" in shown

    # 3. `pitr-bot audit`, once the bot is stopped.
    bot.stop()
    state_db = tmp_path / "state.db"
    assert state_db.exists()
    out = run_audit(state_db, tmp_path, "--table", TABLE)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    printed = [json.loads(line) for line in lines]  # every line is one JSON object
    check_trail(printed, ids)
    assert {e["table"] for e in printed} == {TABLE}

    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert len(run_audit(state_db, tmp_path, "--since", since).stdout.splitlines()) == len(lines)

    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    later = run_audit(state_db, tmp_path, "--table", TABLE, "--since", future)
    assert later.returncode == 0, later.stderr
    assert later.stdout.strip() == ""

    other = run_audit(state_db, tmp_path, "--table", "NoPitrTable")
    assert other.returncode == 0 and other.stdout.strip() == ""

    bad = run_audit(state_db, tmp_path, "--since", "yesterday-ish")
    assert bad.returncode != 0 and "--since" in bad.stderr


def test_cli_since_with_a_utc_offset_means_the_same_instant(make_bot, fake, sim, tmp_path):
    """`--since` is "UTC unless it has an offset": 10:00+05:00 is 05:00 UTC, not 10:00 UTC."""
    bot = make_bot()
    card_for(bot, "AuditOffsets")
    bot.stop()
    state_db = tmp_path / "state.db"
    everything = run_audit(state_db, tmp_path).stdout.splitlines()
    assert everything, "no audit events at all"

    east = timezone(timedelta(hours=5))
    west = timezone(timedelta(hours=-8))
    hour_ago_east = (datetime.now(UTC) - timedelta(hours=1)).astimezone(east).isoformat()
    hour_ahead_west = (datetime.now(UTC) + timedelta(hours=1)).astimezone(west).isoformat()

    since_past = run_audit(state_db, tmp_path, "--since", hour_ago_east)
    assert since_past.returncode == 0, since_past.stderr
    assert since_past.stdout.splitlines() == everything, f"--since {hour_ago_east} (an hour ago)"

    since_future = run_audit(state_db, tmp_path, "--since", hour_ahead_west)
    assert since_future.returncode == 0, since_future.stderr
    assert since_future.stdout.strip() == "", f"--since {hour_ahead_west} (in an hour)"
