"""Refresh the user guide's console transcript: `python docs/update_transcript.py` from the root."""

import subprocess
import sys
from pathlib import Path

GUIDE = Path("docs/user-guide.md")
START, END = "<!-- transcript:start -->", "<!-- transcript:end -->"

out = subprocess.run(
    [sys.executable, "-m", "bot", "console", "--script", "docs/demo.script"],
    capture_output=True,
    text=True,
    check=True,
).stdout.rstrip()
text = GUIDE.read_text()
before, rest = text.split(START, 1)
after = rest.split(END, 1)[1]
GUIDE.write_text(f"{before}{START}\n```text\n{out}\n```\n{END}{after}")
