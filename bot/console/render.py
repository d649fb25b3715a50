"""Shows what the bot sends to Slack, readably, in a terminal (with rich).

Cards are numbered, thread replies are indented under their card, ephemeral messages are
marked as only-for-you, and every button gets a number you can type to click it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.text import Text

DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
MENTION = re.compile(r"<@([A-Z0-9]+)>")
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

    def call(self, method: str, args: dict[str, Any]) -> None:
        with self._lock:
            self._call(method, args)

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
        elif method in ("views.open", "views.update", "views.push"):
            # A form: the console session asks for its fields as prompts.
            self.view = {**(args.get("view") or {}), "id": args.get("view_id") or "VCONSOLE"}
            self.view_version += 1
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
        line = DATE.sub(r"\1", line)
        for code, emoji in EMOJI.items():
            line = line.replace(code, emoji)
        line = MENTION.sub(lambda m: "@" + self.names.get(m.group(1), m.group(1)), line)
        line = line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        text = Text(style=style)
        for part in STYLE.split(line):
            if part.startswith("*") and part.endswith("*") and len(part) > 1:
                text.append(part[1:-1], style="bold")
            elif part.startswith("`") and part.endswith("`") and len(part) > 1:
                text.append(part[1:-1], style="cyan")
            else:
                text.append(part)
        return text


def _truthy(value: object) -> bool:
    return value in (True, "true", "1", 1)
