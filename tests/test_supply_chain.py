"""The lock file and the image: every runtime dependency locked with hashes, inside the ranges of
pyproject.toml, installed hash-checked from a base image pinned by digest."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"


def locked() -> dict[str, tuple[Version, list[str]]]:
    """{canonical name: (version, [sha256 hashes])} from a pip-compile --generate-hashes file."""
    out: dict[str, tuple[Version, list[str]]] = {}
    text = LOCK.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split(" --hash=")
        name, _, version = spec.strip().partition("==")
        assert version, f"not pinned with ==: {line}"
        hashes = [o.strip() for o in options]
        out[canonicalize_name(name)] = (Version(version), hashes)
    return out


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_lock_covers_every_runtime_dependency_within_its_range():
    lock = locked()
    for req in runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is a dependency but not in requirements.lock"
        version, _ = lock[name]
        assert req.specifier.contains(version), f"{req.name} {version} outside {req.specifier}"


def test_every_locked_package_has_sha256_hashes_and_the_build_backend_is_locked():
    lock = locked()
    for name, (_, hashes) in lock.items():
        assert hashes, f"{name} has no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for req in map(Requirement, backend):
        assert canonicalize_name(req.name) in lock, f"build requirement {req.name} not locked"
        assert req.specifier.contains(lock[canonicalize_name(req.name)][0])


def test_every_runtime_dependency_has_an_upper_bound():
    for req in runtime_requirements():
        assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), (
            f"{req.name} has no upper bound"
        )


def test_image_installs_from_the_lock_with_hashes_on_a_pinned_base():
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    base = next(line for line in lines if line.startswith("FROM "))
    assert re.fullmatch(r"FROM python:[\w.-]+@sha256:[0-9a-f]{64}", base), base
    runs = [line for line in lines if line.startswith("RUN pip install")]
    assert runs == [
        "RUN pip install --no-cache-dir --require-hashes -r requirements.lock",
        "RUN pip install --no-cache-dir --no-deps --no-build-isolation .",
    ]
    assert "COPY requirements.lock ./" in lines
