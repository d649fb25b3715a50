"""`pitr-bot console`: the real app in a terminal, asserted on its transcript."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

import commands.status
from bot.console.session import ConsoleSession

ROOT = Path(__file__).resolve().parent.parent


def run_console(lines: list[str]) -> str:
    out = io.StringIO()
    session = ConsoleSession(Console(file=out, width=200, highlight=False), poll_seconds=0.5)
    with session.running():
        session.run_lines(lines, echo=True)
        session.wait(30)
    return out.getvalue()


def test_scripted_restore_four_eyes_progress_and_active():
    transcript = run_console(
        [
            "/pitr-restore MusicCollection MusicCollectionMinutesAgo latest",
            "1",  # alice, the requester, clicks Approve: refused
            "/as bob",
            "1",  # bob approves
            "/wait",
        ]
    )
    refusal = transcript.index("someone else has to approve it")
    approve = transcript.index("@bob clicks Approve")
    assert refusal < approve
    assert "[1] Approve  [2] Deny" in transcript
    assert "is CREATING" in transcript  # progress shown while the restore runs
    final = transcript.index("MusicCollectionMinutesAgo is ACTIVE — restored from MusicCollection")
    assert final > approve
    assert "(also sent to the channel)" in transcript[approve:]
    assert "Restored — the table is ACTIVE" in transcript[final:]  # the card, updated


def test_a_script_waits_for_a_slow_bot_before_its_next_line():
    # On a busy machine the check before the card can outlast the console's quiet period;
    # the script's "1" must still click the card that line asked for.
    out = io.StringIO()
    session = ConsoleSession(Console(file=out, width=200, highlight=False), poll_seconds=0.5)
    with session.running():
        workflow = session.services.workflow
        checked = workflow.request

        def slow_request(*args, **kwargs):
            time.sleep(2)  # well past the 0.6 s of silence settle() used to trust
            return checked(*args, **kwargs)

        workflow.request = slow_request
        session.run_lines(
            ["/pitr-restore MusicCollection MusicCollectionSlow latest", "1"], echo=True
        )
    transcript = out.getvalue()
    assert "there is no button" not in transcript, transcript
    assert "someone else has to approve it" in transcript, transcript


def test_status_and_enable_work_in_the_console():
    transcript = run_console(
        [
            "/pitr-status MusicCollection",
            "/pitr-status Sessions",
            "/pitr-enable Sessions 7",
            "/pitr-status Sessions",
        ]
    )
    first, sessions, enabled, after = transcript.split("> /pitr-")[1:]
    assert "PITR: ENABLED, recovery period 35 days" in first
    assert "Restorable window" in first
    assert "PITR: DISABLED" in sessions and "/pitr-enable Sessions" in sessions
    assert "PITR is now ENABLED on Sessions with a recovery period of 7 days" in enabled
    assert "PITR: ENABLED, recovery period 7 days" in after


def test_console_runs_the_listeners_serve_runs(monkeypatch):
    """Change a listener's behaviour: the console shows the change, having no copy of its own."""
    monkeypatch.setattr(commands.status, "USAGE", "USAGE CHANGED IN THE LISTENER")
    transcript = run_console(["/pitr-status"])
    assert "USAGE CHANGED IN THE LISTENER" in transcript


def test_console_package_registers_no_listeners():
    for path in (ROOT / "bot" / "console").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"command", "action", "view"}:
                assert not (isinstance(node.value, ast.Name) and node.value.id == "app"), path


STEP = re.compile(r"^(\w+> |@\w+ clicks )")  # what a person typed, or the click it made


def normalise(text: str) -> list[str]:
    """Compare transcripts give or take clock times, durations, progress edits, whether a
    progress line was rendered before or after the first poll, and the order of the messages
    one step sets off.

    A step is a prompt line or a click, with the messages that follow it. Messages one step
    sets off can reach Slack in either order: a card's edit and a thread reply are sent by
    different lanes of the announcer, and which one goes first depends on how fast the
    machine is. So each step's messages are compared as a sorted list; every message must
    still be there, word for word."""
    text = re.sub(r"\d+", "9", text)
    # A reply is rendered from the restore as it is when sent: on a busy machine the first
    # poll can come before "Restore started" is out, so its progress line says either.
    text = text.replace("(last checked 9:9:9 UTC, check #9)", "(first check coming up)")
    steps: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        if STEP.match(line):
            steps.append((line.strip(), []))
        else:
            steps[-1][1].append(line)
    out: list[str] = []
    for head, lines in steps:
        blocks = [b.strip() for b in "\n".join(lines).split("\n\n")]
        messages = [b for b in blocks if b and not ("thread of card" in b and "(updated)" in b)]
        out += ([head] if head else []) + sorted(messages)
    return out


def test_readme_transcript_is_what_the_command_prints():
    guide = (ROOT / "docs" / "user-guide.md").read_text()
    shown = guide.split("<!-- transcript:start -->")[1].split("<!-- transcript:end -->")[0]
    shown = shown.strip().removeprefix("```text").removesuffix("```").strip()
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--script", "docs/demo.script"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert normalise(result.stdout) == normalise(shown)


@pytest.mark.parametrize("line", ["/as nobody", "42", "hello"])
def test_console_explains_what_it_does_not_understand(line):
    transcript = run_console([line])
    assert "unknown person" in transcript or "no button" in transcript or "/help" in transcript
