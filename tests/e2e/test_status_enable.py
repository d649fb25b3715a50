"""/pitr-status and /pitr-enable over signed HTTP, against moto behind the AWS proxy."""

from __future__ import annotations

import time


def reply_calls(fake, user: str) -> list:
    return [c for c in fake.calls("response_url") if c.args.get("_path", "").endswith(f"/{user}")]


def wait_response(fake, user: str, contains: str, timeout: float = 30):
    """The response_url call to `user` whose text or blocks mention `contains`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in reply_calls(fake, user):
            if contains.lower() in full_text(call).lower():
                return call
        time.sleep(0.02)
    raise AssertionError(f"no response to {user} containing {contains!r}:\n{fake.dump()}")


def full_text(call) -> str:
    return str(call.args.get("text", "")) + "\n" + str(call.args.get("blocks", ""))


def pitr_of(sim, table: str) -> dict:
    desc = sim.client(direct=True).describe_continuous_backups(TableName=table)
    return desc["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]


def test_status_of_protected_table_shows_window_and_period(bot, fake, sim):
    resp = bot.command("/pitr-status", "MusicCollection", user="U3")
    assert resp.status == 200
    call = wait_response(fake, "U3", "Restorable window")
    text = full_text(call)
    assert call.args.get("response_type") == "ephemeral"
    assert "MusicCollection" in text
    assert "ENABLED" in text
    assert "recovery period 35 days" in text
    assert "→" in text and "UTC" in text
    assert "No restores in flight" in text
    assert fake.calls("chat.postMessage") == []


def test_status_lists_a_request_in_flight_from_that_table(bot, fake, sim):
    bot.command("/pitr-restore", "MusicCollection PendingCopy latest", user="U1")
    req = bot.wait_card()
    bot.command("/pitr-status", "MusicCollection", user="U3")
    call = wait_response(fake, "U3", "in flight")
    text = full_text(call)
    assert "Restores in flight from this table" in text
    assert "PendingCopy" in text and "REQUESTED" in text
    assert "No restores in flight" not in text
    # Recent activity names who asked.
    assert "requested" in text and "<@U1>" in text
    assert bot.services.store.get(req.id).state.value == "REQUESTED"


def test_status_of_unprotected_table_says_disabled_and_how_to_enable(bot, fake, sim):
    bot.command("/pitr-status", "NoPitrTable", user="U1")
    call = wait_response(fake, "U1", "DISABLED")
    text = full_text(call)
    assert call.args.get("response_type") == "ephemeral"
    assert "/pitr-enable NoPitrTable" in text
    assert "Restorable window" not in text


def test_status_of_missing_table(bot, fake, sim):
    bot.command("/pitr-status", "Missing", user="U1")
    call = wait_response(fake, "U1", "does not exist")
    assert "Missing" in full_text(call)
    assert call.args.get("response_type") == "ephemeral"
    assert full_text(call).startswith(":warning:")


def test_status_usage_and_bad_name(bot, fake, sim):
    bot.command("/pitr-status", "", user="U1")
    wait_response(fake, "U1", "Usage: `/pitr-status TABLE`")
    bot.command("/pitr-status", "no way", user="U2")
    wait_response(fake, "U2", "Usage")
    bot.command("/pitr-status", "x", user="U3")
    wait_response(fake, "U3", "3 to 255")
    assert sim.count("DescribeTable") == 0


def test_enable_turns_pitr_on_with_the_period_and_tells_the_channel(bot, fake, sim):
    assert pitr_of(sim, "NoPitrTable")["PointInTimeRecoveryStatus"] == "DISABLED"
    resp = bot.command("/pitr-enable", "NoPitrTable 7", user="U1")
    assert resp.status == 200
    call = wait_response(fake, "U1", "PITR is now")
    assert call.args.get("response_type") == "in_channel"
    text = full_text(call)
    assert "ENABLED" in text and "NoPitrTable" in text and "7 days" in text
    assert "<@U1>" in text

    pitr = pitr_of(sim, "NoPitrTable")
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    assert pitr["RecoveryPeriodInDays"] == 7
    requests = sim.requests("UpdateContinuousBackups")
    assert len(requests) == 1
    assert requests[0]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True,
        "RecoveryPeriodInDays": 7,
    }

    # And /pitr-status now agrees.
    bot.command("/pitr-status", "NoPitrTable", user="U3")
    status = full_text(wait_response(fake, "U3", "recovery period"))
    assert "ENABLED" in status and "recovery period 7 days" in status


def test_enable_refuses_a_period_over_35_days(bot, fake, sim):
    bot.command("/pitr-enable", "NoPitrTable 99", user="U1")
    call = wait_response(fake, "U1", "1 to 35")
    assert call.args.get("response_type") == "ephemeral"
    assert full_text(call).startswith(":warning:")
    time.sleep(0.2)
    assert sim.count("UpdateContinuousBackups") == 0
    assert pitr_of(sim, "NoPitrTable")["PointInTimeRecoveryStatus"] == "DISABLED"
    assert not [
        c for c in fake.calls("response_url") if c.args.get("response_type") == "in_channel"
    ]


def test_enable_refuses_zero_and_words_and_missing_tables(bot, fake, sim):
    bot.command("/pitr-enable", "NoPitrTable 0", user="U1")
    wait_response(fake, "U1", "1 to 35")
    bot.command("/pitr-enable", "NoPitrTable seven", user="U2")
    wait_response(fake, "U2", "1 to 35")
    bot.command("/pitr-enable", "Missing 7", user="U3")
    wait_response(fake, "U3", "does not exist")
    time.sleep(0.2)
    assert sim.count("UpdateContinuousBackups") == 0
    assert pitr_of(sim, "NoPitrTable")["PointInTimeRecoveryStatus"] == "DISABLED"
