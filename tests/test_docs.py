"""The README stays a first screen, and the docs/ it links to stay true and complete."""

from __future__ import annotations

import re
from pathlib import Path

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 250

FENCED = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# "issue 10", "issues 13 and 15", "PR #4", a bare "#12"; the console's "card #1" and
# "check #2" are what the bot prints, not references.
ISSUE_REF = re.compile(
    r"\bissues?\s+#?\d+|\b(?:PR|pull request)\s*#?\d+|(?<!card )(?<!check )(?<![\w&/])#\d+\b",
    re.I,
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def prose(text: str) -> str:
    return INLINE_CODE.sub("", FENCED.sub("", text))


def test_the_readme_is_a_first_screen_with_demo_and_test_on_it():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines: move detail to docs/"
    first_screen = "\n".join(lines[:40])
    assert "make demo" in first_screen and "make test" in first_screen


def test_no_internal_issue_numbers_in_the_readme_or_docs():
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)!r}"
        for path in [README, *DOCS]
        for match in ISSUE_REF.finditer(prose(path.read_text()))
    ]
    assert not found, found


def test_the_issue_reference_check_catches_what_it_is_for():
    caught = ["(issue 10, items 1, 2, 5, 8)", "see issue 15's section", "PR #4", "fixed in #12"]
    kept = ["card #1 (updated)", "check #2", "`#12` in code", "[a](#settings)"]
    assert all(ISSUE_REF.search(prose(text)) for text in caught)
    assert not any(ISSUE_REF.search(prose(text)) for text in kept)


def test_every_setting_is_documented_in_the_operator_guide():
    guide = (ROOT / "docs" / "operator-guide.md").read_text()
    settings = guide.split("## Settings", 1)[1]
    names = [field.alias for field in Settings.model_fields.values() if field.alias]
    assert len(names) > 15
    missing = [name for name in names if f"`{name}`" not in settings]
    assert not missing, f"add these to the Settings table of docs/operator-guide.md: {missing}"


def test_every_local_link_in_the_readme_and_docs_exists():
    broken = []
    for path in [README, *DOCS]:
        for target in LINK.findall(path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (path.parent / target).resolve()
            if not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_the_readme_excerpt_is_part_of_the_tested_transcript():
    """The README's short transcript is cut from the user guide's, which a test runs."""
    readme = README.read_text()
    excerpt = readme.split("## What it looks like", 1)[1].split("```text", 1)[1].split("```")[0]
    guide = (ROOT / "docs" / "user-guide.md").read_text()
    transcript = guide.split("<!-- transcript:start -->")[1].split("<!-- transcript:end -->")[0]
    full = {line.strip() for line in transcript.splitlines()}
    lines = [line.strip() for line in excerpt.splitlines() if line.strip() not in ("", "…")]
    assert len(lines) > 10
    assert [line for line in lines if line not in full] == []
