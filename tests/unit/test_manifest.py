"""manifest.yml tells people what the commands take: keep it true to the parsers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml

from bot.when import parse_when
from commands.restore import parse_restore

MANIFEST = Path(__file__).parents[2] / "manifest.yml"


def usage_hint(command: str) -> str:
    manifest = yaml.safe_load(MANIFEST.read_text())
    for entry in manifest["features"]["slash_commands"]:
        if entry["command"] == command:
            return entry["usage_hint"]
    raise AssertionError(f"{command} is not in manifest.yml")


def test_restore_usage_hint_mentions_the_reason() -> None:
    hint = usage_hint("/pitr-restore")
    assert "reason:" in hint
    # What the hint shows parses: the reason is split off as the command does.
    assert parse_restore("orders orders-copy latest reason: bad deploy") == (
        "orders",
        "orders-copy",
        "latest",
        "bad deploy",
    )


def test_restore_usage_hint_examples_are_accepted() -> None:
    hint = usage_hint("/pitr-restore")
    examples = hint.split("[", 1)[1].split("]", 1)[0].split(" | ")
    now = datetime(2027, 1, 1, tzinfo=UTC)
    for example in examples:
        parse_when(example, "UTC", now)  # raises WhenError if one is not a WHEN we take


def test_the_item_data_delivery_has_its_scopes() -> None:
    # Item data goes by direct message (conversations.open: im:write) as a file (files:write);
    # chat:write.public posts cards without an invitation but shares no file.
    scopes = yaml.safe_load(MANIFEST.read_text())["oauth_config"]["scopes"]["bot"]
    assert {"files:write", "im:write", "chat:write.public"} <= set(scopes)
    from bot.delivery import ADVICE

    assert "im:write" in ADVICE["missing_scope"] and "/invite" in ADVICE["not_in_channel"]
