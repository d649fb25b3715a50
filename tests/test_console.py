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
WAIT = re.compile(r"^\w+> /wait\b")


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
    # `/wait` only waits: what lands after it was set off by the step before, and on a busy
    # machine a job's last reply can land on either side of it, so it joins that step.
    steps: list[tuple[list[str], list[str]]] = [([], [])]
    for line in text.splitlines():
        if WAIT.match(line):
            steps[-1][0].append(line.strip())
        elif STEP.match(line):
            steps.append(([line.strip()], []))
        else:
            steps[-1][1].append(line)
    out: list[str] = []
    for heads, lines in steps:
        blocks = [b.strip() for b in "\n".join(lines).split("\n\n")]
        messages = [b for b in blocks if b and not _progress_edit(b)]
        out += heads + sorted(messages)
    return out


def _progress_edit(message: str) -> bool:
    """An edit whose number depends on the machine's speed: a thread's progress, or an export
    card's (`Export running`, `Reading the export`, redrawn at each step of the job)."""
    if "(updated)" not in message.split("\n", 1)[0]:
        return False
    return "thread of card" in message or any(
        words in message for words in ("⏳ Export running", "⏳ Reading the export")
    )


def assert_transcript_is_what_the_script_prints(document: str) -> None:
    """The transcript `document` shows is what its script prints (docs/update_transcript.py)."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import update_transcript
    finally:
        sys.path.remove(str(ROOT / "docs"))
    shown = update_transcript.shown(str(ROOT / document))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "console",
            "--script",
            update_transcript.TRANSCRIPTS[document],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert normalise(result.stdout) == normalise(shown)


def test_readme_transcript_is_what_the_command_prints():
    # The user guide's transcript (the README shows an excerpt of it, tests/test_docs.py).
    assert_transcript_is_what_the_script_prints("docs/user-guide.md")


def test_walkthrough_transcript_is_what_the_command_prints():
    """The user guide's console walk-through: a bad deploy, a restore with approval, Compare
    items, Copy back (approved), Undo copy back, a drill and the App Home, as written."""
    assert_transcript_is_what_the_script_prints("docs/console-walkthrough.md")


@pytest.mark.parametrize("line", ["/as nobody", "42", "hello"])
def test_console_explains_what_it_does_not_understand(line):
    transcript = run_console([line])
    assert "unknown person" in transcript or "no button" in transcript or "/help" in transcript


# -- every feature, in the console (issue: a newcomer sees every feature in five minutes) ----
def manifest_commands() -> dict[str, str]:
    import yaml

    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    commands = manifest["features"]["slash_commands"]
    return {c["command"]: str(c.get("usage_hint", "")) for c in commands}


def test_help_lists_every_command_the_batch_form_and_table_references():
    transcript = run_console(["/help"])
    for command in manifest_commands():
        assert command in transcript, command
    assert "/pitr-diff RESTORED_TABLE [keys: K1,K2]" in transcript
    assert "/pitr-diff LIVE_TABLE WHEN [keys: K1,K2]" in transcript
    assert "/pitr-restore SOURCE1,SOURCE2 -SUFFIX [WHEN]" in transcript  # a batch
    for form in ("NAME@REGION", "ALIAS:NAME", "ARN", "/home", "/simulate bad-deploy TABLE"):
        assert form in transcript, form


def test_slacks_usage_hints_name_the_same_forms_as_the_console_help():
    hints = manifest_commands()
    assert "RESTORED_TABLE" in hints["/pitr-diff"] and "LIVE_TABLE WHEN" in hints["/pitr-diff"]
    assert "SOURCE1,SOURCE2 -SUFFIX" in hints["/pitr-restore"]


def test_home_draws_the_app_home_in_the_terminal():
    transcript = run_console(["/home"])
    home = transcript.split("App Home of @alice", 1)[1]
    assert "MusicCollection" in home and "Sessions" in home  # PITR coverage of the policy's tables
    assert "Restore drills" in home  # the console's policy has one


def button(session: ConsoleSession, label: str) -> str:
    """The number of the newest button whose label starts with `label`."""
    numbers = [n for n, b in session.renderer.buttons.items() if b.label.startswith(label)]
    assert numbers, f"no button {label!r}"
    return str(max(numbers))


def test_a_bad_deploy_gives_compare_copy_back_and_undo_something_to_show():
    out = io.StringIO()
    session = ConsoleSession(Console(file=out, width=200, highlight=False), poll_seconds=0.5)
    with session.running():
        session.run_lines(
            [
                "/simulate bad-deploy MusicCollection",
                '/pitr-restore MusicCollection MusicCollectionBefore "30 minutes ago"',
                "/as bob",
                "1",
                "/wait",
            ],
            echo=True,
        )
        session.run_lines([button(session, "Compare items")], echo=True)
        session.wait(30)
        compared = out.getvalue()
        session.run_lines([button(session, "Copy back"), "/as alice"], echo=True)
        session.run_lines([button(session, "Approve")], echo=True)
        session.wait(30)
        copied = out.getvalue()
        session.run_lines([button(session, "Undo copy back"), "/as bob"], echo=True)
        session.run_lines([button(session, "Approve")], echo=True)
        session.wait(30)
    transcript = out.getvalue()
    assert "Simulated a bad deploy on MusicCollection" in transcript
    assert '/pitr-restore MusicCollection MusicCollection-before-deploy "30 minutes ago"' in (
        transcript
    )
    assert "1 missing from MusicCollection" in compared
    assert "1 changed since" in compared and "1 added since" in compared
    assert "Copy back into MusicCollection done" in copied
    assert "Copy back into MusicCollection undone" in transcript


def test_pitr_diff_reads_the_bad_deploy_from_an_export_then_copy_back_and_undo():
    """The export path in the console: `/pitr-diff TABLE WHEN` after a bad deploy runs an
    (simulated) incremental export into the console's bucket, shows its progress and the
    compared reply; Copy back (approved) and Undo (approved) put the table back and forth."""
    out = io.StringIO()
    session = ConsoleSession(Console(file=out, width=200, highlight=False), poll_seconds=0.5)
    with session.running():
        session.run_lines(
            [
                "/simulate bad-deploy MusicCollection",
                '/pitr-diff MusicCollection "30 minutes ago"',
                "/wait",
            ],
            echo=True,
        )
        compared = out.getvalue().split("> /pitr-diff", 1)[1]
        session.run_lines([button(session, "Copy back 1 missing + 1 changed"), "/as bob"], True)
        session.run_lines([button(session, "Approve"), "/wait"], echo=True)
        copied = out.getvalue()
        client = session.services.pitr.client
        after_copy = {i["pk"]["S"]: i for i in client.scan(TableName="MusicCollection")["Items"]}
        session.run_lines([button(session, "Undo copy back"), "/as alice"], echo=True)
        session.run_lines([button(session, "Approve"), "/wait"], echo=True)
        after_undo = {i["pk"]["S"]: i for i in client.scan(TableName="MusicCollection")["Items"]}
    transcript = out.getvalue()
    assert '/pitr-diff MusicCollection "30 minutes ago"' in transcript.split("> /pitr-diff")[0]
    assert "Export running" in compared, compared  # its progress, in the channel
    assert "read from DynamoDB's point-in-time log" in compared, compared
    assert "1 deleted since" in compared and "1 changed since" in compared, compared
    assert "1 added since" in compared, compared
    assert "Copy back 1 missing items" in compared and "Exports are not set up" not in compared
    assert "Copy back into MusicCollection done" in copied and "2 written" in copied, copied
    # The copy back put the deleted item and the changed item's old version back...
    assert "song-0" in after_copy and "overwritten" not in after_copy["song-1"]["Artist"]["S"]
    # ...and the undo took both away again, as the deploy had left them.
    assert "Copy back into MusicCollection undone" in transcript, transcript
    assert "song-0" not in after_undo and "overwritten" in after_undo["song-1"]["Artist"]["S"]


def test_the_console_policy_has_a_drill_and_pitr_drill_runs_it():
    out = io.StringIO()
    session = ConsoleSession(Console(file=out, width=200, highlight=False), poll_seconds=0.5)
    with session.running():
        session.run_lines(["/pitr-drill MusicCollection"], echo=True)
        store = session.services.store
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(d.final for d in store.drill_find()):
            time.sleep(0.1)
        session.wait(30)
        drills = store.drill_find()
    transcript = out.getvalue()
    assert "no restore drill in the policy" not in transcript, transcript
    assert "Restoring into" in transcript, transcript
    assert [d.final for d in drills] == [True], transcript


def test_after_pitr_enable_the_window_starts_now_not_weeks_ago():
    transcript = run_console(
        [
            "/pitr-enable Sessions 7",
            '/pitr-restore Sessions SessionsYesterday "1 day ago"',
        ]
    )
    assert "Restores can reach back from now on" in transcript
    refusal = transcript.split("/pitr-restore Sessions", 1)[1]
    assert "Approval card posted" not in refusal, refusal
    assert "[1] Approve" not in refusal, refusal


def screen_lines(raw: bytes) -> list[str]:
    """The lines a terminal shows for `raw`: carriage returns go back to the line's start,
    ESC[K clears to its end, other escape sequences (colours, modes) draw nothing."""
    text = raw.decode("utf-8", "replace")
    lines, line, cursor = [], [], 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b.|.|\n", text, re.DOTALL):
        if token == "\n":
            lines.append("".join(line).rstrip())
            line, cursor = [], 0
        elif token == "\r":
            cursor = 0
        elif token == "\x1b[K":
            del line[cursor:]
        elif token.startswith("\x1b") or token in "\x01\x02\x07":
            continue
        else:
            line[cursor : cursor + 1] = [token]
            cursor += 1
    return [*lines, "".join(line).rstrip()]


def test_background_output_never_lands_on_the_line_being_typed():
    """In a terminal, what the bot sends while a person is at the prompt (the restore's
    progress, its final reply) is drawn above the prompt, which is drawn again below it."""
    import os
    import pty
    import select

    master, slave = pty.openpty()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "TERM": "xterm", "COLUMNS": "200"}
    proc = subprocess.Popen(  # noqa: S603 - our own command
        [sys.executable, "-m", "bot", "console"],
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    raw = b""

    def until(done, timeout: float = 120) -> None:
        nonlocal raw
        deadline = time.monotonic() + timeout
        while not done("\n".join(screen_lines(raw))):
            assert time.monotonic() < deadline, screen_lines(raw)
            if select.select([master], [], [], 0.2)[0]:
                try:
                    raw += os.read(master, 65536)
                except OSError:  # the console has exited
                    return

    typed = [
        "/pitr-restore MusicCollection MusicCollectionTyped latest",
        "/as bob",
        "1",
        "/quit",
    ]
    try:
        until(lambda screen: "alice>" in screen)
        os.write(master, typed[0].encode() + b"\r")
        until(lambda screen: screen.count("alice>") >= 2)  # the card is out, the prompt is back
        os.write(master, typed[1].encode() + b"\r")
        until(lambda screen: "bob>" in screen)
        os.write(master, typed[2].encode() + b"\r")
        # The restore's progress and final reply come from the tracker while bob is at the
        # prompt; the card's last edit says so.
        until(lambda screen: "Restored — the table is ACTIVE" in screen)
        os.write(master, typed[3].encode() + b"\r")
        assert proc.wait(timeout=60) == 0
        until(lambda screen: False)  # the rest of the output, up to the end of the terminal
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    lines = screen_lines(raw)
    prompts = [line for line in lines if line.startswith(("alice>", "bob>"))]
    assert prompts, lines
    for line in prompts:
        assert line.partition("> ")[2] in ["", *typed], lines
    assert any("is ACTIVE" in line for line in lines), lines


def test_a_mistyped_or_wrongly_cased_table_gets_did_you_mean():
    transcript = run_console(
        [
            "/pitr-status musiccollection",
            "/pitr-restore MusicColection MusicCollectionCopy latest",
        ]
    )
    status, restore = transcript.split("> /pitr-")[1:]
    assert "does not exist" in status and "Did you mean MusicCollection?" in status, status
    assert "does not exist" in restore and "Did you mean MusicCollection?" in restore, restore


def test_a_drill_of_a_table_without_one_says_how_to_add_it():
    transcript = run_console(["/pitr-drill Sessions"])
    assert "no restore drill in the policy" in transcript, transcript
    assert "drills:" in transcript and 'tables: ["Sessions"]' in transcript, transcript
