"""The house rules of ARCHITECTURE.md, checked: arrows point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "module", ["bot/restores.py", "bot/policy.py", "bot/period_change.py", "bot/table_identity.py"]
)
def test_pure_core_imports_neither_slack_nor_boto3(module):
    found = imported(ROOT / module) & {"slack_sdk", "slack_bolt", "boto3", "botocore"}
    assert not found, f"{module} imports {found}"


@pytest.mark.parametrize("path", sorted((ROOT / "commands").glob("*.py")), ids=lambda p: p.name)
def test_commands_never_talk_to_aws_directly(path):
    assert not imported(path) & {"boto3", "botocore"}, path.name


# app.py is where the command modules are registered: the one allowed arrow back.
ENGINE = sorted(p for p in (ROOT / "bot").rglob("*.py") if p.name != "app.py")


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_engine_never_imports_commands(path):
    assert "commands" not in imported(path), path.name
