"""Lint and types are part of the suite: ruff (lint + format) on everything, mypy --strict on src,
shellcheck on each section of the prolog (the joined prolog: tests/test_prolog.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from uvslurm import prolog


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


@pytest.mark.parametrize("section", [name for name, _ in prolog.SECTIONS])
def test_each_prolog_section_is_shellcheck_clean_on_its_own(section: str) -> None:
    path = REPO / "src" / "uvslurm" / "resources" / "prolog" / section
    subprocess.run([_tool("shellcheck"), "-S", "warning", str(path)], check=True)


def test_every_prolog_mutant_still_finds_its_text() -> None:
    """scripts/prolog-mutants plants each bug by replacing an exact piece of one section: a
    change of the prolog that moves such a piece must move its mutant along."""
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "prolog-mutants"), "--list"],
        check=True,
        capture_output=True,
    )
