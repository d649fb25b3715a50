"""The house rules of ARCHITECTURE.md, checked: arrows point one way, one door to AWS."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "commands")
# The only modules that may build AWS clients or sessions.
GATEWAY = {"bot/aws.py"}
# Entry points: the outer shell that wires the engine and the commands together (through
# commands.app.create_app, the composition root). Nothing in the engine imports them.
ENTRY_POINTS = {"bot/__main__.py", "bot/cli.py"} | {
    str(p.relative_to(ROOT)) for p in (ROOT / "bot" / "console").glob("*.py")
}
SOURCES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in SOURCES}


def imported(path: Path) -> set[str]:
    """Top-level names of every package `path` imports (anywhere in the file)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def project_imports(path: Path) -> set[str]:
    """The project's modules `path` imports, relative imports resolved, `from pkg import mod`
    counted as the module `pkg.mod`."""
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, me: str, is_package: bool = False) -> set[str]:
    package = me if is_package else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import mod` imports the module pkg.mod; `from pkg import name`, pkg.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            # The longest prefix that is one of our modules: bot.store.codec, bot.store, ...
            parts = target.split(".")
            for end in range(len(parts), 0, -1):
                name = ".".join(parts[:end])
                if name in MODULES:
                    if name != me:
                        found.add(name)
                    break
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A depth-first search; returns one cycle as a path (first == last), or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in done and (cycle := visit(nxt)):
                return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"x"}}) == ["x", "x"]


def test_imports_are_resolved_to_the_projects_modules():
    source = "from . import codec\nfrom ..restores import State\nfrom bot import blocks\n"
    assert imports_in(source, "bot.store.sqlite") == {
        "bot.store.codec",
        "bot.restores",
        "bot.blocks",
    }
    assert imports_in("from .codec import x", "bot.store", is_package=True) == {"bot.store.codec"}


def test_no_import_cycle_among_the_projects_modules():
    graph = {name: project_imports(path) for name, path in MODULES.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


PURE_CORE = [
    "bot/restores.py",
    "bot/restore_events.py",
    "bot/policy.py",
    "bot/policy_entries.py",
    "bot/aftercare/rules.py",
    "bot/iam.py",
    "bot/tableref.py",
    "bot/places.py",
    "bot/batches/model.py",
    "bot/drills/model.py",
    "bot/documents.py",
    "bot/items/jobs.py",
    "bot/period_change.py",
    "bot/table_identity.py",
    "bot/overrides.py",
    "bot/eta.py",
    "bot/polling.py",
    "bot/poll_plan.py",
    "bot/items/values.py",
    "bot/items/diff.py",
    "bot/items/conditions.py",
    "bot/items/pacing.py",
    "bot/suggest.py",
    "bot/items/export_plan.py",
]


@pytest.mark.parametrize("module", PURE_CORE)
def test_pure_core_imports_neither_slack_nor_boto3(module):
    found = imported(ROOT / module) & {"slack_sdk", "slack_bolt", "boto3", "botocore"}
    assert not found, f"{module} imports {found}"


@pytest.mark.parametrize("module", PURE_CORE)
def test_pure_core_imports_only_the_pure_core(module):
    # Adapters -> core, never back: a core module that imports a gateway, a store or a
    # builder would carry boto3 or slack in with it, whatever its own imports say.
    core = {module_name(ROOT / m) for m in PURE_CORE}
    found = project_imports(ROOT / module) - core
    assert not found, f"{module} imports {sorted(found)}, which are not pure"


@pytest.mark.parametrize("path", sorted((ROOT / "commands").glob("*.py")), ids=lambda p: p.name)
def test_commands_never_talk_to_aws_directly(path):
    assert not imported(path) & {"boto3", "botocore"}, path.name


ENGINE = [
    p
    for p in SOURCES
    if p.is_relative_to(ROOT / "bot") and str(p.relative_to(ROOT)) not in ENTRY_POINTS
]


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_engine_never_imports_commands_nor_the_entry_points(path):
    assert "commands" not in imported(path), path.name
    shell = {module_name(ROOT / p) for p in ENTRY_POINTS}
    assert not project_imports(path) & shell, path.name


# What opens a door to AWS: boto3's client/resource/session makers (and its default session)
# and botocore's own sessions. A bare `import boto3` opens nothing (bot/store/dynamodb_docs.py
# uses boto3.dynamodb.types, botocore.exceptions is everywhere).
BOTO3_DOORS = {
    "client",
    "resource",
    "session",
    "Session",
    "setup_default_session",
    "DEFAULT_SESSION",
    "_get_default_session",
}
DOOR_MODULES = {"boto3.session", "botocore.session"}


def boto3_doors(path: Path) -> list[str]:
    """Every `boto3.client(...)`-like use in `path`: `boto3.Session()`, `boto3.resource(...)`,
    `botocore.session.get_session()`, `from boto3 import client`, `import boto3.session`,
    also under another name (`import boto3 as b3; b3.client(...)`)."""
    tree = ast.parse(path.read_text())
    # The names this file binds to boto3, botocore or a session module.
    aliases = {"boto3": "boto3", "botocore": "botocore"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname: a.name for a in node.names if a.asname}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if (module == "boto3" and node.attr in BOTO3_DOORS) or (
                module == "botocore" and node.attr == "session"
            ):
                found.append(f"line {node.lineno}: {module}.{node.attr}")
            elif module in DOOR_MODULES:
                found.append(f"line {node.lineno}: {module}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module, names = node.module or "", {a.name for a in node.names}
            if (
                module in DOOR_MODULES
                or (module == "boto3" and names & BOTO3_DOORS)
                or (module == "botocore" and "session" in names)
            ):
                found.append(f"line {node.lineno}: from {module} import ...")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in DOOR_MODULES:
                    found.append(f"line {node.lineno}: import {a.name}")
    return found


def test_the_door_check_sees_each_way_in(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import boto3\nimport boto3.session\nfrom boto3 import Session\n"
        "boto3.client('dynamodb')\nboto3.resource('s3')\nboto3.session.Session()\n"
        "import botocore.session\nfrom botocore.session import get_session\n"
        "from botocore import session\nimport boto3 as b3\nb3.client('sts')\n"
        "boto3.setup_default_session()\nimport boto3.session as bs\n"
        "import botocore.exceptions\nfrom boto3.dynamodb.types import TypeSerializer\n"
    )
    lines = {int(found.split()[1].rstrip(":")) for found in boto3_doors(sample)}
    # A bare `import boto3` (1, 10), botocore's exceptions (14) and boto3's types (15) open
    # nothing.
    assert lines == {2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13}


OUTSIDE_GATEWAY = [p for p in SOURCES if str(p.relative_to(ROOT)) not in GATEWAY]


@pytest.mark.parametrize("path", OUTSIDE_GATEWAY, ids=lambda p: str(p.relative_to(ROOT)))
def test_aws_clients_are_built_only_in_the_gateway(path):
    assert not boto3_doors(path), f"{path.name}: {boto3_doors(path)} (use bot.aws)"


# A module past this many lines is usually one class holding several concerns, as the
# 786-line workflow.py did before it was split into bot/engine/. The longest modules today
# (bot/console/session.py, bot/drills/engine.py, bot/items/recovery.py) are 543-591 lines:
# one concern each, so the bound sits above them, and a new flow grows a sibling module.
MAX_MODULE_LINES = 600


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if p.is_relative_to(ROOT / "bot")],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_module_in_the_engine_is_too_long(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines: split it by concern"


def readme_tree() -> set[str]:
    """The modules docs/architecture.md's "How it works" tree names, as paths
    (bot/engine/context.py):
    a name belongs to the last folder at the left edge (bot/) and the last one it opens
    (engine/), whose continuation lines are indented deeper."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    tree = text.split("# How it works", 1)[1].split("```")[1]
    named: set[str] = set()
    top = sub = ""
    for line in tree.splitlines():
        indent, words = len(line) - len(line.lstrip()), line.split()
        if words and indent == 0:
            top, sub = words[0], ""
        elif words and indent == 2:
            sub = words[0] if words[0].endswith("/") else ""
        for name in re.findall(r"[\w/]+\.py\b", line):
            named.add(name if "/" in name else top + sub + name)
    return named


def test_the_readme_tree_names_every_module_and_no_other():
    # docs/architecture.md draws the house; a module added (or removed) without it goes stale.
    ours = tuple(f"{package}/" for package in PACKAGES)
    modules = {str(p.relative_to(ROOT)) for p in SOURCES if p.name != "__init__.py"}
    named = {n for n in readme_tree() if n.startswith(ours) and not n.endswith("__init__.py")}
    tree = "the tree in docs/architecture.md"
    assert not modules - named, f"{tree} misses {sorted(modules - named)}"
    assert not named - modules, f"{tree} names {sorted(named - modules)}: gone"
