"""A captured request replayed to another replica is dropped: the seen-signature record lives in
the shared store (PITR_BOT_STATE=dynamodb://...), not in one process's memory."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from support.signed import block_action_body, post_signed, slash_command_body

from bot.blocks import APPROVE_ACTION
from e2e.process import BotProcess, Bots, cards, request_restore, wait_until

TOKEN = "xoxb-replay-e2e-token-91c3aa"  # noqa: S105 - a test secret
SECRET = "replay-signing-secret-2f7d0b"  # noqa: S105


@pytest.fixture
def replicas(tmp_path, fake, sim) -> Iterator[tuple[BotProcess, BotProcess]]:
    sim.serialize = True  # moto's conditional writes are not atomic; DynamoDB's are
    group = Bots(tmp_path, fake, sim.env, TOKEN, SECRET, state="dynamodb://pitr-replay-state")
    try:
        a = group.start("a", poll_seconds=0.5)
        b = group.start("b", poll_seconds=0.5)
        yield a, b
    finally:
        group.kill_all()


def test_command_and_click_replayed_to_another_replica_do_nothing(replicas, fake, sim):
    a, b = replicas
    ts = int(time.time())
    body = slash_command_body(
        "/pitr-restore",
        "MusicCollection ReplayedTwice latest",
        "U1",
        "C1",
        fake.response_url("U1"),
    )
    assert post_signed(f"{a.url}/slack/events", SECRET, body, timestamp=ts).status == 200
    wait_until(lambda: cards(fake, "ReplayedTwice"), 20, "the card")
    fake.wait_for(lambda c: c.method == "response_url" and "Someone else" in str(c.args))

    replay = post_signed(f"{b.url}/slack/events", SECRET, body, timestamp=ts)
    assert replay.status == 200 and replay.body == ""

    # A captured Approve on another card, replayed to the other replica.
    restore_id = request_restore(a, SECRET, fake, "ApprovedOnce")
    click = block_action_body(
        APPROVE_ACTION,
        restore_id,
        "U2",
        "C1",
        "1700000000.000101",
        fake.response_url("click-U2"),
    )
    assert post_signed(f"{a.url}/slack/events", SECRET, click, timestamp=ts).status == 200
    wait_until(lambda: sim.count("RestoreTableToPointInTime") == 1, 20, "the restore call")
    replayed_click = post_signed(f"{b.url}/slack/events", SECRET, click, timestamp=ts)
    assert replayed_click.status == 200 and replayed_click.body == ""
    time.sleep(1)

    assert len(cards(fake, "ReplayedTwice")) == 1
    replies_u1 = [c for c in fake.calls("response_url") if c.args["_path"].endswith("/U1")]
    assert sum("ReplayedTwice" in str(c.args) for c in replies_u1) == 1, replies_u1
    replies_u2 = [c for c in fake.calls("response_url") if c.args["_path"].endswith("/click-U2")]
    assert not any("already" in str(c.args).lower() for c in replies_u2), replies_u2
    assert sim.count("RestoreTableToPointInTime") == 1
