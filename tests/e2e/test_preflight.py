"""Every preflight refusal: a reason only the requester sees, no card, nothing changed in AWS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from support.aws_sim import AwsSimulator
from support.fake_slack import FakeSlack

from bot.policy import Policy
from e2e.harness import BotUnderTest, start_bot

MUTATIONS = (
    "RestoreTableToPointInTime",
    "UpdateContinuousBackups",
    "CreateTable",
    "DeleteTable",
    "UpdateTable",
)


def _future_unix() -> str:
    return str(int(time.time()) + 3600)


def _future_iso() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Iterator[tuple[BotUnderTest, FakeSlack, AwsSimulator]]:
    """One bot for the whole module: a refusal changes nothing, so cases can share it."""
    with FakeSlack() as fake, AwsSimulator() as sim:
        fake.users = {"U1": {"name": "requester", "tz": "Europe/Berlin"}}
        sim.create_table("MusicCollection", pitr=True, items=5)
        sim.create_table("NoPitrTable", pitr=False, items=1)
        bot = start_bot(tmp_path_factory.mktemp("preflight"), fake, sim)
        try:
            yield bot, fake, sim
        finally:
            bot.stop()


@pytest.fixture
def bot(shared) -> BotUnderTest:
    bot, fake, sim = shared
    fake.clear()
    sim.clear()
    return bot


@pytest.fixture
def fake(shared) -> FakeSlack:
    return shared[1]


@pytest.fixture
def sim(shared) -> AwsSimulator:
    return shared[2]


# (id, command text (a callable for time-dependent text), words the reason must contain)
CASES = [
    ("source-missing", "Missing MissingCopy latest", ["does not exist", "Missing"]),
    ("pitr-off", "NoPitrTable NoPitrCopy latest", ["DISABLED", "/pitr-enable NoPitrTable"]),
    (
        "before-window",
        'MusicCollection TooOld "40 days ago"',
        ["before the restorable window", "→", "UTC"],
    ),
    ("future-unix", lambda: f"MusicCollection FutureCopy {_future_unix()}", ["in the future"]),
    ("future-iso", lambda: f"MusicCollection FutureCopy {_future_iso()}", ["in the future"]),
    (
        "after-latest",
        'MusicCollection TooNew "1 minute ago"',
        ["after the latest restorable time", "latest"],
    ),
    ("unreadable-time", "MusicCollection Unreadable blah blah", ["can't read", "blah blah"]),
    # A bare number is never guessed at (dateparser made "11" a day in November, "5" May).
    ("bare-number-11", "MusicCollection Copy11 11", ["bare number", "`11`", "Unix seconds"]),
    ("bare-number-5", "MusicCollection CopyFive 5", ["bare number", "`5`", "latest"]),
    ("target-with-space", 'MusicCollection "a b" latest', ["Target table", "letters, digits"]),
    ("target-too-short", "MusicCollection x latest", ["Target table", "3 to 255"]),
    ("source-invalid", "'bad name!' GoodTarget latest", ["Source table", "letters, digits"]),
    ("target-exists", "MusicCollection NoPitrTable latest", ["already exists", "NoPitrTable"]),
    ("target-is-source", "MusicCollection MusicCollection latest", ["can't be the source"]),
    ("missing-target", "MusicCollection", ["source and a target", "Usage"]),
    ("unbalanced-quote", 'MusicCollection "Copy latest', ["quotes"]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_preflight_refusal_is_ephemeral_and_changes_nothing(bot, fake, sim, text, expected):
    text = text() if callable(text) else text
    requests_before = len(bot.services.store.find())
    resp = bot.command("/pitr-restore", text, user="U1")
    assert resp.status == 200

    reply = bot.wait_reply("U1", expected[0])
    for word in expected:
        assert word.lower() in reply.lower(), reply
    assert reply.startswith(":warning:"), reply

    # It went to the requester's response_url only, as an ephemeral message.
    refusals = [
        c
        for c in fake.calls("response_url")
        if expected[0].lower() in str(c.args.get("text", "")).lower()
    ]
    assert len(refusals) == 1
    assert refusals[0].args["_path"].endswith("/U1")
    assert refusals[0].args.get("response_type") == "ephemeral"
    assert refusals[0].args.get("replace_original") in (False, None)
    assert not any(c.args.get("response_type") == "in_channel" for c in fake.calls("response_url"))

    # Give a wrongly queued card the chance to show up before asserting it did not.
    time.sleep(0.3)
    assert fake.calls("chat.postMessage") == [], fake.dump()
    assert fake.calls("chat.update") == []
    assert len(bot.services.store.find()) == requests_before
    for op in MUTATIONS:
        assert sim.count(op) == 0, op
    assert not any("Approval card posted" in r for r in bot.replies_to("U1"))


def test_empty_restore_command_opens_the_form_and_posts_nothing(bot, fake, sim):
    resp = bot.command("/pitr-restore", "", user="U1")
    assert resp.status == 200
    fake.wait_for("views.open")
    time.sleep(0.3)
    assert fake.calls("chat.postMessage") == []
    assert sim.count("DescribeTable") == 0


def test_refusal_is_audited(bot, sim):
    def refused() -> list:
        events = bot.services.store.audit_events(table="NoPitrTable", limit=1000)
        return [e for e in events if e.event == "request_refused" and e.actor == "U1"]

    before = len(refused())
    bot.command("/pitr-restore", "NoPitrTable NoPitrCopy latest", user="U1")
    bot.wait_reply("U1", "/pitr-enable")
    after = refused()
    assert len(after) == before + 1
    assert all("/pitr-enable" in e.detail for e in after)


def test_target_already_requested_is_refused(bot, fake, sim):
    bot.command("/pitr-restore", "MusicCollection PendingTarget latest", user="U1")
    bot.wait_reply("U1", "Someone else has to click")
    assert len(bot.cards()) == 1
    requests_before = len(bot.services.store.find())

    bot.command("/pitr-restore", "MusicCollection PendingTarget latest", user="U3")
    reply = bot.wait_reply("U3", "already requested")
    assert "PendingTarget" in reply and "another target name" in reply
    time.sleep(0.3)
    assert len(bot.cards()) == 1
    assert len(bot.services.store.find()) == requests_before
    assert sim.count("RestoreTableToPointInTime") == 0


def test_target_outside_the_policy_target_pattern_is_refused_with_no_side_effect(
    tmp_path, fake, sim
):
    """Policy `target_pattern`: the refusal names the pattern, nothing reaches AWS or Slack."""
    bot = start_bot(tmp_path, fake, sim, policy=Policy(target_pattern="restored-*"))
    try:
        fake.clear()
        sim.clear()
        resp = bot.command("/pitr-restore", "MusicCollection MusicCopy latest", user="U1")
        assert resp.status == 200
        reply = bot.wait_reply("U1", "target_pattern")
        assert reply.startswith(":warning:") and "restored-*" in reply, reply
        assert bot.services.store.find() == []  # no request, so no card can follow
        assert fake.calls("chat.postMessage") == []
        assert [op for op in (*MUTATIONS, "DescribeTable") if sim.count(op)] == []

        # A name that matches goes through to a card.
        bot.command("/pitr-restore", "MusicCollection restored-music latest", user="U1")
        assert bot.wait_card().target == "restored-music"
    finally:
        bot.stop()
