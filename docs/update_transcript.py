"""Refresh the console transcripts the docs show: `python docs/update_transcript.py` from the root.

Each document holds the output of `pitr-bot console --script SCRIPT` between the markers;
tests/test_console.py checks that they still agree (give or take times).
"""

import subprocess
import sys
from pathlib import Path

START, END = "<!-- transcript:start -->", "<!-- transcript:end -->"
# document -> the script whose output it shows
TRANSCRIPTS = {
    "docs/user-guide.md": "docs/demo.script",
    "docs/console-walkthrough.md": "docs/walkthrough.script",
}


def run(script: str) -> str:
    return subprocess.run(  # noqa: S603 - our own command, a script named in TRANSCRIPTS
        [sys.executable, "-m", "bot", "console", "--script", script],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.rstrip()


def shown(document: str) -> str:
    """The transcript a document shows now."""
    text = Path(document).read_text(encoding="utf-8")
    inside = text.split(START, 1)[1].split(END, 1)[0]
    return inside.strip().removeprefix("```text").removesuffix("```").strip()


def update(document: str, script: str) -> None:
    text = Path(document).read_text(encoding="utf-8")
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    out = run(script)
    Path(document).write_text(f"{before}{START}\n```text\n{out}\n```\n{END}{after}")


if __name__ == "__main__":
    wanted = sys.argv[1:] or list(TRANSCRIPTS)
    for document in wanted:
        update(document, TRANSCRIPTS[document])
