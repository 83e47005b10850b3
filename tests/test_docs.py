"""The README's promises: its commands are the ones CI runs, and the documented surface exists."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text()


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block, "README has no sh block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_two_commands_and_ci_runs_the_test_one() -> None:
    run_job, run_tests = readme_commands()[:2]
    assert "uvslurm submit" in run_job
    assert "pytest" in run_tests
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert run_tests in ci, ".ci/run must run the README's test command"


def test_every_documented_exit_code_is_the_one_in_code() -> None:
    from uvslurm import errors, prolog

    doc = (REPO / "docs" / "reference" / "exit-codes.md").read_text()
    for code in (errors.EXIT_ERROR, errors.EXIT_USAGE, errors.EXIT_UNEXPECTED, errors.EXIT_PREPARE,
                 errors.EXIT_INTERRUPTED):  # fmt: skip
        assert f"| {code} |" in doc
    assert "exit 75" in prolog.text()


@pytest.mark.parametrize("path", ["scripts/dev-cluster", ".ci/run"])
def test_repo_shell_scripts_are_shellcheck_clean(path: str) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    subprocess.run(["shellcheck", "-S", "warning", str(REPO / path)], check=True)
