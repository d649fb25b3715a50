"""The console shows Slack's text as a person reads it in Slack: no markup, names not IDs."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from bot.console.render import EMOJI, NOT_EMOJI, Renderer

ROOT = Path(__file__).resolve().parents[2]
NAMES = {"U0ALICE": "alice", "U0BOB": "bob"}


def shown(message: dict) -> str:
    out = io.StringIO()
    renderer = Renderer(Console(file=out, width=200, highlight=False), NAMES)
    renderer.call("chat.postMessage", {"channel": "C0INCIDENT", "ts": "1.000001", **message})
    return out.getvalue()


def test_slack_markup_is_shown_as_a_person_reads_it():
    text = shown(
        {
            "text": ":leftwards_arrow_with_hook: *Copy back into `orders` undone* by <@U0BOB> "
            "in <#C0INCIDENT> and <#C0123ABCD|ops>: a &lt; b &amp;&amp; c &gt; d "
            ":some_unknown_emoji: <https://example.com/x|the docs> <!here>"
        }
    )
    body = text.splitlines()[1].strip()
    assert body == (
        "↩️  Copy back into orders undone by @bob in #incident and #ops: a < b && c > d "
        " the docs @here"
    )


def test_bold_and_code_lose_their_markers_even_nested():
    text = shown({"text": "*`MusicCollection`* — ACTIVE · `orders` and *bold*"})
    assert "MusicCollection — ACTIVE · orders and bold" in text
    assert "`" not in text and "*" not in text


def test_arn_parts_and_clock_times_are_not_taken_for_emoji():
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/orders at 12:30:00 UTC"
    assert arn in shown({"text": arn})


def test_every_emoji_the_bot_sends_has_a_picture_in_the_terminal():
    used: set[str] = set()
    for folder in ("bot", "commands"):
        for path in (ROOT / folder).rglob("*.py"):
            used |= set(re.findall(r":[a-z][a-z0-9_+-]*:", path.read_text(encoding="utf-8")))
    missing = {c for c in used if c.strip(":") not in NOT_EMOJI and c not in EMOJI}
    assert not missing


def test_name_refusals_read_with_one_period_at_the_end():
    from bot.tableref import RefError, parse_ref, parse_sources, targets_for

    messages = []
    for attempt in (
        lambda: parse_ref("no spaces allowed"),
        lambda: targets_for(parse_sources("orders,payments"), "-bad!suffix"),
    ):
        try:
            attempt()
        except RefError as exc:
            messages.append(str(exc))
    assert len(messages) == 2
    for message in messages:
        read = shown({"text": message}).splitlines()[1]
        assert ".." not in read, read


def card_seen_by(tz: str) -> str:
    from datetime import UTC, datetime

    from bot.blocks import slack_date
    from bot.when import format_instant

    instant = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    shown_text = format_instant(instant, "Europe/Berlin")  # the requester's zone
    field = f"*Restore to*\n{shown_text}, 10 min ago\nyour time: {slack_date(instant, shown_text)}"
    out = io.StringIO()
    renderer = Renderer(Console(file=out, width=200, highlight=False), NAMES)
    renderer.viewer_tz = lambda: tz
    block = {"type": "section", "fields": [{"type": "mrkdwn", "text": field}]}
    renderer.call("chat.postMessage", {"channel": "C0INCIDENT", "ts": "1.1", "blocks": [block]})
    return out.getvalue().splitlines()[1].strip()


def test_a_dated_card_shows_its_time_once_to_a_person_in_the_shown_zone():
    assert card_seen_by("Europe/Berlin") == (
        "Restore to 2026-11-26 14:00:00 UTC (15:00 Europe/Berlin), 10 min ago"
    )
    assert card_seen_by("America/New_York") == (
        "Restore to 2026-11-26 14:00:00 UTC (15:00 Europe/Berlin), 10 min ago"
        " · your time: 2026-11-26 09:00:00 America/New_York"
    )


def test_a_warning_logged_while_someone_types_is_drawn_above_their_line():
    """On a busy machine a background warning came out on the prompt line ("bob> WARNING:…")."""
    import logging

    from bot.console.session import _AbovePrompt

    out = io.StringIO()
    renderer = Renderer(Console(file=out, width=200, highlight=False), NAMES)
    renderer.prompt = lambda: "bob> /pitr-st"
    log = logging.getLogger("bot.test.console")
    log.propagate = False
    log.addHandler(_AbovePrompt(renderer))
    try:
        log.warning("Slack answered slowly")
        log.info("not shown: below WARNING")
    finally:
        log.handlers.clear()
    text = out.getvalue()
    assert text.startswith("\r\x1b[K")  # the half-typed line is cleared first
    assert "Slack answered slowly\n" in text
    assert text.endswith("bob> /pitr-st")  # and drawn again below the warning
    assert "not shown" not in text
