"""docs/security.md stays true: every test its attack table names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^\]`]*\])?`")


def test_every_test_the_attack_table_names_exists():
    text = (ROOT / "docs/security.md").read_text()
    named = NAMED.findall(text)
    assert len(named) > 40  # the table is there, with a test for each attack
    missing = [
        f"{path}::{name}"
        for path, name in named
        if not (ROOT / path).exists()
        or not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M)
    ]
    assert not missing, missing
