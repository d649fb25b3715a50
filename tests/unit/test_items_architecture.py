"""House rules for bot/items: a pure core, and AWS reached only through a client it is given."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ITEMS = sorted((ROOT / "bot" / "items").glob("*.py"))
PURE = ["values.py", "diff.py", "conditions.py", "pacing.py", "jobs.py"]


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("name", PURE)
def test_the_pure_core_imports_neither_slack_nor_aws(name):
    found = imported(ROOT / "bot" / "items" / name) & {
        "slack_sdk",
        "slack_bolt",
        "boto3",
        "botocore",
        "sqlite3",
    }
    assert not found, f"{name} imports {found}"


@pytest.mark.parametrize("path", ITEMS, ids=lambda p: p.name)
def test_no_items_module_makes_its_own_aws_client(path):
    # Clients (and their retry configuration) come from the gateway, bot/pitr.py.
    assert "boto3" not in imported(path), path.name
    assert "boto3.client" not in path.read_text(), path.name


@pytest.mark.parametrize("path", ITEMS, ids=lambda p: p.name)
def test_the_items_engine_knows_nothing_of_slack_or_commands(path):
    assert not imported(path) & {"slack_sdk", "slack_bolt", "commands"}, path.name
