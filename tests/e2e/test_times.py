"""WHEN, as people type it, reaches DynamoDB as the instant they meant.

Each test runs the whole journey over signed HTTP: U1 (Europe/Berlin) asks, the card is
posted, U2 approves, and the RestoreDateTime that arrives at the AWS proxy is checked.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

BERLIN = ZoneInfo("Europe/Berlin")


def card_text(call) -> str:
    return str(call.args.get("text", "")) + str(call.args.get("blocks", ""))


def restore_at(bot, sim, target: str, when: str) -> tuple[float, str]:
    """U1 asks for `when`, U2 approves; -> (RestoreDateTime sent to AWS, card text)."""
    resp = bot.command("/pitr-restore", f"MusicCollection {target} {when}", user="U1")
    assert resp.status == 200, resp.body
    req = bot.wait_card()
    card = bot.cards()[0]
    assert bot.approve(req.id, "U2").status == 200
    bot.wait_state(req.id, "ACTIVE", timeout=30)
    restores = sim.requests("RestoreTableToPointInTime")
    assert len(restores) == 1, restores
    body = restores[0]
    assert body["SourceTableName"] == "MusicCollection"
    assert body["TargetTableName"] == target
    assert not body.get("UseLatestRestorableTime")
    assert isinstance(body["RestoreDateTime"], int | float), body
    return float(body["RestoreDateTime"]), card_text(card)


def assert_card_shows(text: str, instant: datetime) -> None:
    """The card states the instant in UTC and in the requester's own zone."""
    utc = instant.astimezone(UTC)
    local = instant.astimezone(BERLIN)
    assert utc.strftime("%Y-%m-%d %H:%M") in text, text
    assert "UTC" in text
    assert f"{local:%H:%M} Europe/Berlin" in text, text


def test_relative_time_reaches_aws_as_the_right_instant(bot, sim):
    # "1 hour ago" is read at some moment between sending the command and the restore call:
    # bracket it by those moments, not by a fixed few seconds a busy machine may exceed.
    asked = time.time()
    sent, text = restore_at(bot, sim, "MusicCollectionHourAgo", "1 hour ago")
    done = time.time()
    assert asked - 3600 - 1 <= sent <= done - 3600 + 1, (sent, asked - 3600, done - 3600)
    assert_card_shows(text, datetime.fromtimestamp(sent, UTC))


def test_iso_without_zone_is_read_in_the_requesters_slack_zone(bot, sim):
    # Three hours ago, written as a Berlin wall-clock time (U1's Slack zone), no offset.
    instant = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    typed = instant.astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M:%S")
    sent, text = restore_at(bot, sim, "MusicCollectionIso", typed)
    assert sent == instant.timestamp(), (
        f"typed {typed} (Europe/Berlin) meant {instant.isoformat()}, "
        f"AWS got {datetime.fromtimestamp(sent, UTC).isoformat()}"
    )
    assert_card_shows(text, instant)
    assert instant.strftime("%Y-%m-%d %H:%M:%S UTC") in text


@pytest.mark.parametrize("offset", [7200, 10 * 86400])
def test_unix_seconds_reach_aws_exactly(bot, sim, offset):
    epoch = int(time.time()) - offset
    sent, text = restore_at(bot, sim, f"MusicCollectionUnix{offset}", str(epoch))
    assert sent == epoch
    assert_card_shows(text, datetime.fromtimestamp(epoch, UTC))


def test_iso_with_explicit_offset_ignores_the_slack_zone(bot, sim):
    instant = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0)
    typed = instant.astimezone(ZoneInfo("Asia/Tokyo")).isoformat()  # ...+09:00
    sent, text = restore_at(bot, sim, "MusicCollectionTokyo", typed)
    assert sent == instant.timestamp()
    assert_card_shows(text, instant)
