"""The restore card and form offer `/pitr-diff LIVE_TABLE WHEN` (items back without a restore)
when exports are set up for the source's account (issue 19, "What a user can do", item 1)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from support.slack_limits import balanced_backticks, texts, view_violations, violations

from bot.blocks import approval_card, to_dicts
from bot.items.export_plan import exports_set_up
from bot.modal_blocks import DIFF_OFFER_BLOCK, WHEN_PICK_BLOCK, Picked, restore_modal
from bot.policy_entries import Account
from bot.restores import RestoreRequest, State, Window
from bot.when import parse_when
from commands.export_diff import parse_export_diff

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
AT = datetime(2026, 12, 7, 10, 42, 17, 123456, tzinfo=UTC)
ROLE = "arn:aws:iam::111111111111:role/pitr-bot"
ACCOUNTS = {
    "prod": Account(role_arn=ROLE, export_s3="s3://prod-exports/pitr"),
    "dev": Account(role_arn=ROLE),
}
COMMAND = re.compile(r"`(/pitr-diff [^`]+)`")


def request(**changes: object) -> RestoreRequest:
    req = RestoreRequest(
        source="orders",
        target="orders-restored",
        requester="U1",
        channel="C1",
        restore_at=AT,
        created_at=NOW - timedelta(minutes=1),
        expires_at=NOW + timedelta(hours=1),
        requester_tz="Europe/Berlin",
        window=Window(NOW - timedelta(days=35), NOW - timedelta(minutes=5)),
    )
    return replace(req, **changes)  # type: ignore[arg-type]


def offered(req: RestoreRequest, exports: bool = True) -> list[str]:
    """The `/pitr-diff …` commands the card offers."""
    data = to_dicts(approval_card(req, NOW, exports)[1])
    assert violations(data) == []
    return [m for text in texts(data) for m in COMMAND.findall(text)]


def typed(command: str) -> tuple[str, datetime | None]:
    """What `/pitr-diff` makes of the command once typed: its own parsers."""
    parsed = parse_export_diff(command.removeprefix("/pitr-diff "))
    assert parsed is not None, command
    table, when, keys = parsed
    assert keys is None
    return table, parse_when(when, "Asia/Tokyo", NOW)  # whatever the typist's zone


@pytest.mark.parametrize(
    ("source", "own", "expected"),
    [
        ("orders", "s3://exports/pitr", True),
        ("orders@eu-west-1", "s3://exports", True),
        ("arn:aws:dynamodb:eu-west-1:123456789012:table/orders", "s3://exports", True),
        ("orders", None, False),
        ("prod:orders", None, True),
        ("prod:orders@eu-west-1", None, True),
        ("dev:orders", "s3://exports", False),  # the bot's own bucket is not dev's
        ("nobody:orders", "s3://exports", False),
        ("not a table", "s3://exports", False),
    ],
)
def test_exports_are_set_up_per_account(source: str, own: str | None, expected: bool) -> None:
    assert exports_set_up(source, own, ACCOUNTS) is expected


@pytest.mark.parametrize(
    "source", ["orders", "prod:orders@eu-west-1", "Orders.v2-x_y", "prod:" + "s" * 255]
)
def test_the_card_offers_a_diff_command_that_pitr_diff_accepts(source: str) -> None:
    req = request(source=source)
    (command,) = offered(req)
    table, instant = typed(command)
    assert table == source
    # The instant the card shows (to the second), whoever types it in whatever zone.
    assert instant == AT.replace(microsecond=0)
    assert "2026-12-07 10:42:17 UTC" in json.dumps(to_dicts(approval_card(req, NOW, True)[1]))
    line = next(t for t in texts(to_dicts(approval_card(req, NOW, True)[1])) if command in t)
    assert "Only need some items back?" in line and "without restoring the table" in line
    assert balanced_backticks(line)


def test_no_offer_without_exports_for_latest_or_once_decided() -> None:
    assert offered(request(), exports=False) == []
    assert offered(request(restore_at=None)) == []  # "latest": nothing changed since yet
    for state in set(State) - {State.REQUESTED}:
        assert offered(request(state=state)) == [], state


def test_the_offer_sits_above_the_decision() -> None:
    data = to_dicts(approval_card(request(), NOW, True)[1])
    kinds = [b["type"] for b in data]
    offer = next(i for i, b in enumerate(data) if COMMAND.search(json.dumps(b)))
    assert data[offer]["type"] == "context" and kinds[-1] == "actions"
    assert offer < kinds.index("actions")


def test_the_form_offers_it_under_the_instant_for_one_source_with_exports() -> None:
    picked = Picked("prod:orders", "orders-x", pitr=True, described=True, exports=True)
    data = restore_modal("C1", picked).to_dict()
    assert view_violations(data) == []
    ids = [b.get("block_id") for b in data["blocks"]]
    assert ids.index(DIFF_OFFER_BLOCK) == ids.index(WHEN_PICK_BLOCK) + 1
    text = data["blocks"][ids.index(DIFF_OFFER_BLOCK)]["elements"][0]["text"]
    assert "`/pitr-diff prod:orders WHEN`" in text and "without restoring the table" in text


@pytest.mark.parametrize(
    "picked",
    [
        None,
        Picked("orders", "orders-x", pitr=True, described=True, exports=False),
        Picked("a-table,b-table", "-x", described=True, exports=True),  # a batch: no offer
    ],
)
def test_the_form_has_no_offer_otherwise(picked: Picked | None) -> None:
    data = restore_modal("C1", picked).to_dict()
    assert all(b.get("block_id") != DIFF_OFFER_BLOCK for b in data["blocks"])
    assert "/pitr-diff" not in json.dumps(data)
