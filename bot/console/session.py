"""`pitr-bot console`: the real bot, in a terminal, with no Slack and (by default) no AWS.

What you type becomes the signed request Slack would send, dispatched through the same Bolt
app and listeners `serve` uses; what the bot sends back to "Slack" goes to a local double that
draws it here. So the console has no listener code of its own: it only translates.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from rich.console import Console
from slack_bolt import App
from slack_bolt.request import BoltRequest

from bot.console.help import HELP
from bot.console.render import CHANNELS, Button, Renderer
from bot.console.slack_double import SlackDouble
from bot.console.story import (
    CREATING_SECONDS,
    DEMO_POLICY,
    EXPORT_S3,
    BadDeploys,
    simulated_account,
)
from bot.drills.model import LIVE as DRILL_LIVE
from bot.items.jobs import RUNNING as JOB_RUNNING
from bot.pitr import PitrService
from bot.policy import load_policy
from bot.restores import IN_FLIGHT
from bot.services import Services, build_services
from bot.settings import Settings
from bot.store import open_store
from commands.app import create_app

CHANNEL = "C0INCIDENT"
PEOPLE = {
    "alice": {"id": "U0ALICE", "tz": "Europe/Berlin", "role": "requester"},
    "bob": {"id": "U0BOB", "tz": "America/New_York", "role": "approver"},
}


class ConsoleSession:
    def __init__(self, console: Console, real_aws: bool = False, poll_seconds: float = 1.0):
        self.console = console
        self.real_aws = real_aws
        self.poll_seconds = poll_seconds
        self.user = "alice"
        names = {p["id"]: name for name, p in PEOPLE.items()}
        names.update({"UPITRBOT": "pitr-bot"})
        self.renderer = Renderer(console, names)
        self.renderer.viewer_tz = lambda: str(PEOPLE[self.user]["tz"])
        users = {p["id"]: {"name": name, "tz": p["tz"]} for name, p in PEOPLE.items()}
        self.slack = SlackDouble(self.renderer.call, users)
        self.secret = secrets.token_hex(16)
        self.app: App | None = None
        self.services: Services | None = None
        self._script: Iterator[str] | None = None  # in --script mode, answers to form prompts
        self.bad_deploys: BadDeploys | None = None  # None with real AWS

    # -- lifecycle --------------------------------------------------------------------------
    @contextmanager
    def running(self) -> Iterator[ConsoleSession]:
        # Simulated, /pitr-diff TABLE WHEN exports to a bucket of the simulated account.
        exports = os.environ.get("PITR_BOT_EXPORT_S3") or (None if self.real_aws else EXPORT_S3)
        account = simulated_account(self.real_aws, exports)
        with account as aws, tempfile.TemporaryDirectory() as tmp:
            client, self.bad_deploys = aws
            self.slack.start()
            state = os.environ.get("PITR_BOT_STATE") or f"sqlite:///{Path(tmp) / 'console.db'}"
            policy_path = os.environ.get("PITR_BOT_POLICY")
            if not policy_path:
                policy_path = str(Path(tmp) / "console-policy.yml")
                Path(policy_path).write_text(DEMO_POLICY, encoding="utf-8")
            settings = Settings(
                _env_file=None,
                SLACK_BOT_TOKEN="xoxb-console",  # noqa: S106 - talks only to the local double
                SLACK_SIGNING_SECRET=self.secret,
                SLACK_API_URL=self.slack.api_url,
                PITR_BOT_STATE=state,
                PITR_BOT_POLL_SECONDS=self.poll_seconds,
                PITR_BOT_POLICY=policy_path,
                PITR_BOT_EXPORT_S3=exports,
            )
            policy = load_policy(settings.policy_path)
            store = open_store(settings.state)
            pitr = PitrService(client)
            self.services = build_services(settings, policy, store, pitr=pitr)
            self.app = create_app(settings, self.services)
            self.services.start_background()
            self.services.workspace.wait(10)  # the double answers auth.test at once
            try:
                self._banner(pitr, exports)
                yield self
            finally:
                self.services.stop_background()
                store.close()
                self.slack.stop()

    def _banner(self, pitr: PitrService, exports: str | None) -> None:
        if self.real_aws:
            aws = f"AWS: REAL, your default credentials, region {pitr.region}. Restores are real."
        else:
            aws = (
                "AWS: SIMULATED (moto) — tables MusicCollection (PITR on) and Sessions "
                f"(PITR off); restores stay CREATING for {CREATING_SECONDS:.0f} s; "
                f"exports go to {exports}."
            )
        self.console.print(f"[bold]pitr-bot console[/bold] — Slack: simulated, #incident. {aws}")
        self.console.print("You are @alice (requester); @bob approves. /help for help.\n")

    # -- input ------------------------------------------------------------------------------
    def run_lines(self, lines: Iterable[str], echo: bool) -> None:
        self._script = iter(lines)  # a form's prompts take their answers from the next lines
        while (raw := next(self._script, None)) is not None:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if echo:
                self.console.print(f"[bold green]{self.user}>[/bold green] {line}")
            if not self.handle(line):
                break

    def handle(self, line: str) -> bool:
        """Act on one line; False means quit."""
        word, _, rest = line.partition(" ")
        if word in {"/quit", "/exit"}:
            return False
        if word == "/help":
            self.console.print(HELP + "\n", markup=False)
        elif word == "/as":
            name = rest.strip().lstrip("@").lower()
            if name in PEOPLE:
                self.user = name
                self.renderer.note(f"you are now @{name} ({PEOPLE[name]['role']})")
            else:
                self.renderer.note(f"unknown person {name!r}; try: {', '.join(PEOPLE)}")
        elif word == "/home":
            self.open_home()
        elif word == "/simulate":
            self.simulate(rest)
        elif word == "/wait":
            self.wait(float(rest) if rest.strip().replace(".", "", 1).isdigit() else 120)
        elif word.startswith("/pitr-"):
            seen = self.renderer.view_version
            self.command(word, rest)
            if self.renderer.view_version != seen and self.renderer.view:
                self.fill_form(self.renderer.view)
        elif word.isdigit():
            self.click(int(word))
        else:
            self.renderer.note("type a /pitr- command, a button number, or /help")
        return True

    def read_line(self, prompt: str) -> str:
        """One line typed at `prompt`; what the bot sends meanwhile is drawn above the line,
        which is then drawn again with what was typed so far."""
        terminal = self.console.is_terminal
        bold = ("\x1b[1;32m", "\x1b[0m") if terminal else ("", "")
        # readline needs the prompt's escape codes marked as taking no room (\001 … \002).
        shown = f"\001{bold[0]}\002{prompt}\001{bold[1]}\002" if terminal else prompt
        if terminal:
            self.renderer.prompt = lambda: f"{bold[0]}{prompt}{bold[1]}{_typed()}"
        try:
            return input(shown)
        finally:
            self.renderer.prompt = None

    def command(self, command: str, text: str) -> None:
        user_id = PEOPLE[self.user]["id"]
        body = urlencode(
            {
                "command": command,
                "text": text,
                "user_id": user_id,
                "user_name": self.user,
                "channel_id": CHANNEL,
                "channel_name": "incident",
                "team_id": "TCONSOLE",
                "response_url": self.slack.response_url(user_id),
                "trigger_id": secrets.token_hex(8),
            }
        )
        self._dispatch(body, "application/x-www-form-urlencoded", user_id)

    def open_home(self) -> None:
        """Open the bot's App Home tab: Slack's app_home_opened event, drawn when published."""
        user_id = PEOPLE[self.user]["id"]
        event = {
            "type": "event_callback",
            "team_id": "TCONSOLE",
            "api_app_id": "ACONSOLE",
            "event": {
                "type": "app_home_opened",
                "user": user_id,
                "channel": "DCONSOLE",
                "tab": "home",
                "event_ts": f"{time.time():.6f}",
            },
            "event_id": "Ev" + secrets.token_hex(6),
            "event_time": int(time.time()),
        }
        self._dispatch(json.dumps(event), "application/json", user_id)

    def simulate(self, text: str) -> None:
        """`/simulate bad-deploy TABLE`: something for the bot to get back (simulated AWS only)."""
        what, _, table = text.strip().partition(" ")
        if self.bad_deploys is None:
            self.renderer.note("/simulate works on the simulated account only (not with --aws)")
        elif what != "bad-deploy" or not table.strip():
            self.renderer.note("usage: /simulate bad-deploy TABLE   (e.g. MusicCollection)")
        else:
            self.renderer.story(self.bad_deploys.run(table.strip()))

    def click(self, number: int) -> None:
        button = self.renderer.buttons.get(number)
        if button is None:
            self.renderer.note(f"there is no button [{number}]")
            return
        user_id = PEOPLE[self.user]["id"]
        self.renderer.note(f"@{self.user} clicks {button.label} {self.renderer.where(button)}")
        payload = _click_payload(button, user_id, self.slack.response_url(f"click-{user_id}"))
        self._dispatch(
            urlencode({"payload": json.dumps(payload)}),
            "application/x-www-form-urlencoded",
            user_id,
        )

    def _dispatch(
        self, body: str, content_type: str, user_id: str, settle: bool = True
    ) -> dict[str, Any]:
        """Sign and dispatch through the app; -> the parsed HTTP answer ({} if none)."""
        assert self.app is not None
        timestamp = str(int(time.time()))
        base = f"v0:{timestamp}:{body}".encode()
        signature = "v0=" + hmac.new(self.secret.encode(), base, hashlib.sha256).hexdigest()
        response = self.app.dispatch(
            BoltRequest(
                body=body,
                headers={
                    "content-type": [content_type],
                    "x-slack-request-timestamp": [timestamp],
                    "x-slack-signature": [signature],
                },
            )
        )
        answer: dict[str, Any] = {}
        if response.status != 200:
            self.renderer.note(f"(Slack would have seen HTTP {response.status})")
        elif response.body:
            try:
                answer = json.loads(response.body)
            except ValueError:
                answer = {"text": response.body}
            self.renderer.ack(answer, user_id)
        if settle:
            self.settle()
        return answer

    # -- forms (modals) ---------------------------------------------------------------------
    # A modal becomes a short sequence of prompts: each input block in turn, an options
    # request (block_suggestion) for an external select, a block_actions when an input
    # dispatches, and finally a view_submission. Only translation: the listeners decide.
    def fill_form(self, view: dict[str, Any]) -> None:
        title = (view.get("title") or {}).get("text", "form")
        self.renderer.note(f"form: {title} — answer each field; Enter keeps the default")
        values: dict[str, dict[str, Any]] = {}
        blocks, i = view.get("blocks") or [], 0
        while i < len(blocks):
            block = blocks[i]
            if block.get("type") == "header":
                section = _section(blocks, i + 1)
                if section and all(b.get("optional") for b in section):
                    answer = self.ask(f"{block['text']['text']} — y to fill in, Enter to skip")
                    if answer is None:
                        return self._abandon()
                    if answer.lower() not in {"y", "yes"}:
                        i = blocks.index(section[-1]) + 1
                        continue
            elif block.get("type") == "input":
                seen = self.renderer.view_version
                answer = self._field(view, block)
                if answer is _CLOSED:
                    return self._abandon()
                if answer is not None:
                    values[block["block_id"]] = {block["element"]["action_id"]: answer}
                if block.get("dispatch_action") and answer:
                    view = self._form_action(view, block, answer, seen)
                    blocks = view.get("blocks") or []
                    ids = [b.get("block_id") for b in blocks]
                    i = ids.index(block["block_id"]) if block["block_id"] in ids else i
            i += 1
        for _ in range(5):
            answer = self._dispatch_payload(
                {
                    "type": "view_submission",
                    "team": {"id": "TCONSOLE"},
                    "user": {"id": PEOPLE[self.user]["id"]},
                    "view": {**_view_ref(view), "state": {"values": values}},
                }
            )
            errors = answer.get("errors") if answer.get("response_action") == "errors" else None
            if not errors:
                return None
            by_id = {b.get("block_id"): b for b in view.get("blocks") or []}
            for block_id, message in errors.items():
                block = by_id.get(block_id)
                label = block["label"]["text"] if block else block_id
                self.renderer.note(f"⚠️  {label}: {message}")
                if block is None:
                    continue
                fixed = self._field(view, block)
                if fixed is _CLOSED:
                    return self._abandon()
                values[block_id] = {block["element"]["action_id"]: fixed}
        return self._abandon()

    def ask(self, prompt: str) -> str | None:
        """One answer: the next script line (blank = Enter) or what the person types."""
        if self._script is None:
            try:
                line = self.read_line(f"  {prompt}: ").strip()
            except (EOFError, KeyboardInterrupt):
                return None
            return None if line.startswith("/") else line
        line = next(self._script, None)
        if line is None or line.startswith("/"):  # a command closes the form, then runs
            self._script = itertools.chain([line] if line else [], self._script)
            return None
        self.console.print(f"  [bold]{prompt}[/bold]: {line.strip()}", highlight=False)
        return line.strip()

    def _field(self, view: dict[str, Any], block: dict[str, Any]) -> Any:
        """Ask for one input; -> its state value, None when left empty, _CLOSED to give up."""
        element, label = block["element"], block["label"]["text"]
        kind = element.get("type")
        if kind == "plain_text_input":
            default = element.get("initial_value") or ""
            hint = f" [{default}]" if default else f" ({_text(element.get('placeholder'))})"
            answer = self.ask(label + hint)
            if answer is None:
                return _CLOSED
            return {"type": kind, "value": answer or default or None}
        if kind == "static_select":
            options = element.get("options") or []
            initial = element.get("initial_option")
            choices = "  ".join(f"[{n}] {_text(o['text'])}" for n, o in enumerate(options, 1))
            answer = self.ask(f"{label} {choices}")
            if answer is None:
                return _CLOSED
            number = int(answer) if answer.isdigit() else 0
            picked = options[number - 1] if 1 <= number <= len(options) else initial
            return {"type": kind, "selected_option": picked} if picked else None
        if kind in ("external_select", "multi_external_select"):
            chosen = self._external(view, block)
            if kind == "external_select" or chosen is _CLOSED:
                return chosen
            # A multi-select: the console picks one table (the command takes several).
            return {"type": kind, "selected_options": [chosen["selected_option"]]}
        return None  # e.g. a date-time picker: type the time in a text field instead

    def _external(self, view: dict[str, Any], block: dict[str, Any]) -> Any:
        element, label = block["element"], block["label"]["text"]
        prompt, shown = f"{label} (type to search)", []
        while True:
            typed = self.ask(prompt)
            if typed is None:
                return _CLOSED
            if typed.isdigit() and 1 <= int(typed) <= len(shown):
                return {"type": "external_select", "selected_option": shown[int(typed) - 1]}
            answer = self._dispatch_payload(
                {
                    "type": "block_suggestion",
                    "team": {"id": "TCONSOLE"},
                    "user": {"id": PEOPLE[self.user]["id"]},
                    "action_id": element["action_id"],
                    "block_id": block["block_id"],
                    "value": typed,
                    "container": {"type": "view", "view_id": view.get("id")},
                    "view": _view_ref(view),
                },
                settle=False,
            )
            groups = answer.get("option_groups") or []
            options = answer.get("options") or [o for g in groups for o in g.get("options", [])]
            for group in groups:
                self.renderer.note(_text(group.get("label")))
            exact = [o for o in options if o.get("value") == typed]
            if len(exact) == 1 or len(options) == 1:
                chosen = (exact or options)[0]
                self.renderer.note(f"→ {_text(chosen['text'])}")
                return {"type": "external_select", "selected_option": chosen}
            if not options:
                self.renderer.note("nothing matches; type part of another name")
                continue
            for n, option in enumerate(options, 1):
                self.renderer.note(f"[{n}] {_text(option['text'])}")
            prompt, shown = f"{label}: a number, or search again", options

    def _form_action(
        self, view: dict[str, Any], block: dict[str, Any], state: dict[str, Any], seen: int
    ) -> dict[str, Any]:
        """An input that dispatches (picking the source): the bot may update the form."""
        action = {
            **state,
            "action_id": block["element"]["action_id"],
            "block_id": block["block_id"],
            "action_ts": str(time.time()),
        }
        self._dispatch_payload(
            {
                "type": "block_actions",
                "team": {"id": "TCONSOLE"},
                "user": {"id": PEOPLE[self.user]["id"]},
                "trigger_id": secrets.token_hex(8),
                "container": {"type": "view", "view_id": view.get("id")},
                "view": _view_ref(view),
                "actions": [action],
            }
        )
        deadline = time.monotonic() + 5
        while self.renderer.view_version == seen and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.renderer.view or view

    def _dispatch_payload(self, payload: dict[str, Any], settle: bool = True) -> dict[str, Any]:
        user_id = PEOPLE[self.user]["id"]
        body = urlencode({"payload": json.dumps(payload)})
        return self._dispatch(body, "application/x-www-form-urlencoded", user_id, settle)

    def _abandon(self) -> None:
        self.renderer.note("form closed without submitting")

    # -- waiting ----------------------------------------------------------------------------
    def settle(self, quiet: float = 0.6, limit: float = 60) -> None:
        """Wait until the bot has done what the last line asked (it works after acking): its
        work pool idle, no item job running, nothing it owes Slack due, then silent for
        `quiet` seconds. Silence alone is not enough: on a busy machine one AWS call can
        outlast it."""
        assert self.services is not None
        start = time.monotonic()
        while time.monotonic() - start < limit:
            now = time.monotonic()
            if (
                now - start >= quiet
                and now - self.slack.last_call >= quiet
                and self.services.work.idle()
                and not self.services.store.outbox_due(self.services.clock(), limit=1)
                # item jobs run on threads of their own (not the work pool): a comparison
                # can pause longer than `quiet` between two progress edits on a busy machine
                and not self.services.store.job_find(states=JOB_RUNNING, limit=1)
            ):
                return
            time.sleep(0.05)

    def wait(self, limit: float) -> None:
        """Until no restore, drill or item job is running and every announcement is out (or
        `limit`)."""
        assert self.services is not None
        store = self.services.store
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            busy = (
                store.find(states=list(IN_FLIGHT), limit=1)
                or store.drill_find(states=DRILL_LIVE, limit=1)
                or store.job_find(states=JOB_RUNNING, limit=1)
            )
            pending = store.outbox_due(self.services.clock(), limit=1)
            if not busy and not pending:
                break
            time.sleep(0.1)
        self.settle()


def _click_payload(button: Button, user_id: str, response_url: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": "TCONSOLE"},
        "user": {"id": user_id},
        # The renderer keeps the channel's name; Slack sends its id (the bot checks it).
        "channel": {"id": CHANNEL_IDS.get(button.channel, button.channel)},
        "container": {"type": "message", "message_ts": button.message_ts},
        "message": {"ts": button.message_ts, "text": ""},
        "response_url": response_url,
        "trigger_id": secrets.token_hex(8),
        "actions": [
            {
                "type": "button",
                "action_id": button.action_id,
                "block_id": button.block_id,
                "value": button.value,
                "action_ts": str(time.time()),
            }
        ],
    }


CHANNEL_IDS = {name: cid for cid, name in CHANNELS.items()}
_CLOSED = object()  # the person closed the form (EOF, or the script ran out)


def _section(blocks: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    """The input blocks after a header, up to the next header."""
    out = []
    for block in blocks[start:]:
        if block.get("type") == "header":
            break
        if block.get("type") == "input":
            out.append(block)
    return out


def _view_ref(view: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "type", "callback_id", "private_metadata", "hash")
    return {k: view.get(k, "") for k in keys} | {"id": view.get("id") or "VCONSOLE"}


def _typed() -> str:
    """What the person has typed at the prompt so far (readline's buffer)."""
    try:
        import readline
    except ImportError:  # no readline (Windows): only the prompt is drawn again
        return ""
    return readline.get_line_buffer()


def _text(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else str(obj or "")


class _AbovePrompt(logging.Handler):
    """Warnings from background work, drawn above the line being typed (not on it)."""

    def __init__(self, renderer: Renderer) -> None:
        super().__init__(logging.WARNING)
        self.renderer = renderer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.renderer.log_line(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break the console
            self.handleError(record)


def main(script: str | None, real_aws: bool) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # A tick skipped because the last one still runs (a busy machine) is not something the
    # person at the console can act on: the next tick runs. Errors still show.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    console = Console(highlight=False, soft_wrap=True, force_terminal=None if not script else False)
    if not script:
        try:
            import readline  # noqa: F401 - line editing for input(), and its buffer to redraw
        except ImportError:
            pass
    session = ConsoleSession(console, real_aws=real_aws)
    if not script:  # a script's transcript is stdout; its log lines stay on stderr
        root = logging.getLogger()
        root.handlers = [_AbovePrompt(session.renderer)]
    with session.running():
        if script:
            lines = Path(script).read_text(encoding="utf-8").splitlines()
            session.run_lines(lines, echo=True)
            session.wait(60)
            return 0
        while True:
            try:
                line = session.read_line(f"{session.user}> ")
            except (EOFError, KeyboardInterrupt):
                console.print()
                return 0
            if not session.handle(line.strip()):
                return 0
