"""Lint and types are part of the suite: ruff (lint + format) on everything, mypy --strict on src."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import REPO


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(REPO / ".venv" / "bin")) or shutil.which(name)
    if not found:
        pytest.skip(f"{name} not installed (uv sync installs the dev group)")
    return found


def test_ruff_lint() -> None:
    subprocess.run([_tool("ruff"), "check", "src", "tests", "benchmarks"], cwd=REPO, check=True)


def test_ruff_format() -> None:
    subprocess.run(
        [_tool("ruff"), "format", "--check", "-q", "src", "tests", "benchmarks"],
        cwd=REPO,
        check=True,
    )


def test_mypy_strict_on_src() -> None:
    subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, check=True)
