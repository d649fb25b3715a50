"""Shows what the bot sends to Slack, readably, in a terminal (with rich).

Cards are numbered, thread replies are indented under their card, ephemeral messages are
marked as only-for-you, and every button gets a number you can type to click it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Console
from rich.text import Text

DATE = re.compile(r"<!date\^(\d+)\^[^|>]*\|([^>]*)>")
MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|@?([^>]*))?>")
CHANNEL_REF = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
# A shortcode stands alone (`:rocket: Restore`), unlike the parts of an ARN or a clock time.
SHORTCODE = re.compile(r"(?<![\w:]):([a-z][a-z0-9_+-]*):(?!\w)")
STYLE = re.compile(r"(\*[^*\n]+\*|`[^`\n]+`)")
EMOJI = {
    ":warning:": "⚠️ ",
    ":rocket:": "🚀",
    ":hourglass_flowing_sand:": "⏳",
    ":hourglass:": "⌛",
    ":white_check_mark:": "✅",
    ":no_entry:": "⛔",
    ":x:": "❌",
    ":heavy_multiplication_x:": "✖️ ",
    ":shield:": "🛡️ ",
    ":scissors:": "✂️ ",
    ":wastebasket:": "🗑️ ",
    ":broom:": "🧹",
    ":robot_face:": "🤖",
    ":raised_hand:": "✋",
    ":mag:": "🔍",
    ":leftwards_arrow_with_hook:": "↩️ ",
    ":test_tube:": "🧪",
    ":globe_with_meridians:": "🌐",
    ":boom:": "💥",
    ":house:": "🏠",
    ":information_source:": "ℹ️ ",
    ":page_facing_up:": "📄",
    ":paperclip:": "📎",
    ":bell:": "🔔",
    ":tada:": "🎉",
    ":alarm_clock:": "⏰",
    ":no_entry_sign:": "🚫",
    ":rotating_light:": "🚨",
}
# Words between colons that are not emoji: parts of ARNs (arn:aws:dynamodb:…:table/x) and
# sqlite's :memory:. Any other shortcode the terminal has no picture for is dropped, as a
# person would not read it either.
NOT_EMOJI = {
    *("aws", "dynamodb", "table", "kms", "iam", "cloudwatch", "alarm", "memory", "unknown"),
    *("events", "s3"),
}
CHANNELS = {"C0INCIDENT": "incident"}


@dataclass(frozen=True)
class Button:
    number: int
    label: str
    action_id: str
    value: str
    block_id: str
    channel: str
    message_ts: str


class Renderer:
    def __init__(self, console: Console, names: dict[str, str]):
        self.console = console
        self.names = names  # user ID -> display name
        self.buttons: dict[int, Button] = {}
        self.cards: dict[str, int] = {}  # card ts -> card number
        self._threads: dict[str, str] = {}  # message ts -> thread parent ts
        self._lock = threading.Lock()
        self._next_button = 1
        self.view: dict[str, Any] | None = None  # the form (modal) the bot last opened/updated
        self.view_version = 0
        # While the person is typing at a prompt: -> the prompt and what they have typed so
        # far, so that output from background work is drawn above the line, not on it.
        self.prompt: Callable[[], str] | None = None
        # Slack draws a date token in the zone of the person looking: the console's person.
        self.viewer_tz: Callable[[], str] = lambda: "UTC"

    def call(self, method: str, args: dict[str, Any]) -> None:
        with self._above_prompt():
            self._call(method, args)

    def log_line(self, text: str) -> None:
        """A log line from background work: above the line being typed, never on it."""
        with self._above_prompt():
            self.console.print(Text(text, style="dim"))

    @contextmanager
    def _above_prompt(self) -> Iterator[None]:
        with self._lock:
            redraw = self.prompt
            if redraw is not None:
                self.console.file.write("\r\x1b[K")  # clear the prompt line, draw, redraw it
            yield
            if redraw is not None:
                self.console.file.write(redraw())
                self.console.file.flush()

    def _call(self, method: str, args: dict[str, Any]) -> None:
        channel = CHANNELS.get(str(args.get("channel", "")), str(args.get("channel", "")))
        if method == "chat.postMessage":
            ts, parent = str(args.get("ts")), args.get("thread_ts")
            if parent:
                self._threads[ts] = str(parent)
                note = " (also sent to the channel)" if _truthy(args.get("reply_broadcast")) else ""
                title = f"  ↳ reply in the thread of card #{self._card(parent)}{note}"
                self._show(title, args, 4, ts, channel)
            else:
                self.cards[ts] = len(self.cards) + 1
                self._show(f"#{channel} · card #{self.cards[ts]}", args, 0, ts, channel)
        elif method == "chat.update":
            ts = str(args.get("ts"))
            if ts in self.cards:
                self._show(f"#{channel} · card #{self.cards[ts]} (updated)", args, 0, ts, channel)
            else:
                parent = self._threads.get(ts, "")
                title = f"  ↳ thread of card #{self._card(parent)} (updated)"
                self._show(title, args, 4, ts, channel)
        elif method == "chat.postEphemeral":
            who = self.names.get(str(args.get("user")), args.get("user"))
            self._show(f"only @{who} sees this", args, 0, style="italic")
        elif method == "views.publish":
            who = self.names.get(str(args.get("user_id")), args.get("user_id"))
            self._show(f"App Home of @{who} (the bot's Home tab)", args.get("view") or {}, 0)
        elif method in ("views.open", "views.update", "views.push"):
            # A form: the console session asks for its fields as prompts.
            self.view = {**(args.get("view") or {}), "id": args.get("view_id") or "VCONSOLE"}
            self.view_version += 1
        elif method == "files.completeUploadExternal":
            files = args.get("files")
            files = json.loads(files) if isinstance(files, str) else files or []
            titles = ", ".join(str(f.get("title")) for f in files)
            parent = str(args.get("thread_ts") or "")
            title = f"  ↳ file in the thread of card #{self._card(parent)}"
            self._show(title, {"text": f"📎 {titles}"}, 4)
        elif method == "response_url":
            who = self.names.get(str(args.get("_to", "")).removeprefix("click-"), "you")
            if args.get("response_type") == "in_channel":
                self._show("in the channel", args, 0)
            else:
                self._show(f"only @{who} sees this", args, 0, style="italic")

    def ack(self, body: dict[str, Any], user: str) -> None:
        """What Slack shows from the HTTP answer to a command (an ephemeral text, if any)."""
        if body.get("text"):
            with self._lock:
                self._show(f"only @{self.names.get(user, user)} sees this", body, 0, style="italic")

    def story(self, text: str) -> None:
        """What the simulated account did (not a Slack message)."""
        with self._lock:
            for line in text.splitlines():
                self.console.print(Text(line, style="yellow"))
            self.console.print()

    def note(self, text: str) -> None:
        with self._lock:
            self.console.print(Text(text, style="dim"))

    def where(self, button: Button) -> str:
        """'on card #1' or 'in the thread of card #1', for the note about a click."""
        if button.message_ts in self.cards:
            return f"on card #{self.cards[button.message_ts]}"
        parent = self._threads.get(button.message_ts, "")
        return f"in the thread of card #{self._card(parent)}"

    # -- drawing ----------------------------------------------------------------------------
    def _card(self, ts: object) -> int | str:
        return self.cards.get(str(ts), "?")

    def _show(
        self,
        title: str,
        message: dict[str, Any],
        indent: int,
        ts: str | None = None,
        channel: str = "",
        style: str = "",
    ) -> None:
        pad = " " * indent
        self.console.print(Text(pad + title, style="bold magenta" if not style else "dim " + style))
        lines = self._lines(message)
        for line in lines:
            self.console.print(Text(pad + "  ") + self._mrkdwn(line, style))
        buttons = self._buttons(message, ts, channel)
        if buttons:
            row = Text(pad + "  ")
            for button in buttons:
                row.append(f"[{button.number}] {button.label}", style="bold reverse")
                row.append("  ")
            self.console.print(row)
        self.console.print()

    def _lines(self, message: dict[str, Any]) -> list[str]:
        blocks = message.get("blocks") or []
        if not blocks:
            return str(message.get("text", "")).splitlines() or [""]
        lines: list[str] = []
        for block in blocks:
            kind = block.get("type")
            if kind == "header":
                lines.append(f"*{block['text']['text']}*")
            elif kind == "section":
                if block.get("text"):
                    lines += block["text"]["text"].splitlines()
                for field in block.get("fields", []):
                    label, _, value = field["text"].partition("\n")
                    lines.append(f"{label} {value.replace(chr(10), ' · ')}")
            elif kind == "context":
                for element in block.get("elements", []):
                    lines += element.get("text", "").splitlines()
            elif kind == "divider":
                lines.append("─" * 40)
        return lines

    def _buttons(self, message: dict[str, Any], ts: str | None, channel: str) -> list[Button]:
        found = []
        for block in message.get("blocks") or []:
            if block.get("type") != "actions" or ts is None:
                continue
            for element in block.get("elements", []):
                if element.get("type") != "button":
                    continue
                button = Button(
                    self._next_button,
                    element["text"]["text"],
                    element["action_id"],
                    element.get("value", ""),
                    block.get("block_id", ""),
                    channel,
                    ts,
                )
                self.buttons[button.number] = button
                self._next_button += 1
                found.append(button)
        return found

    def _mrkdwn(self, line: str, style: str) -> Text:
        """Slack's mrkdwn as a person reads it: emoji, bold, names instead of IDs, no markup."""
        line = readable(line, self.names, self.viewer_tz())
        text = Text(style=style)
        for part in STYLE.split(line):
            if part.startswith("*") and part.endswith("*") and len(part) > 1:
                text.append(part[1:-1].replace("`", ""), style="bold")
            elif part.startswith("`") and part.endswith("`") and len(part) > 1:
                text.append(part[1:-1], style="cyan")
            else:
                text.append(part)
        return text


def readable(line: str, names: dict[str, str], tz: str = "UTC") -> str:
    """Slack's escapes and references replaced by what Slack shows (styles are left); dates
    in the zone `tz` of the person looking, as Slack does."""
    line = DATE.sub(lambda m: _date(int(m.group(1)), tz), line)
    head, mark, tail = line.partition("your time: ")
    if mark and (f" {tz})" in head or (tz == "UTC" and " UTC" in head)):
        line = head.rstrip(" ·")  # the time was already shown in this person's zone
    line = SHORTCODE.sub(_emoji, line)
    line = MENTION.sub(lambda m: "@" + names.get(m.group(1), m.group(1)), line)
    line = GROUP.sub(lambda m: "@" + (m.group(2) or names.get(m.group(1), m.group(1))), line)
    line = CHANNEL_REF.sub(
        lambda m: "#" + (m.group(2) or CHANNELS.get(m.group(1), m.group(1))), line
    )
    line = SPECIAL.sub(r"@\1", line)
    line = LINK.sub(lambda m: m.group(2) or m.group(1), line)
    # &amp; last: "&amp;lt;" is the text "&lt;", not "<".
    return line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _date(epoch: int, tz: str) -> str:
    try:
        zone = ZoneInfo(tz)
    except (ValueError, ZoneInfoNotFoundError):
        zone, tz = ZoneInfo("UTC"), "UTC"
    return datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M:%S ") + tz


def _channel(channel_id: str) -> str:
    return CHANNELS.get(channel_id, channel_id)


def _emoji(match: re.Match[str]) -> str:
    word = match.group(1)
    if word in NOT_EMOJI:
        return match.group(0)
    return EMOJI.get(match.group(0), "")


def _truthy(value: object) -> bool:
    return value in (True, "true", "1", 1)
