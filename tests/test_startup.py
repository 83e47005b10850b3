"""What `uvslurm submit --dry-run` imports (issue 15: 100 ms end to end, Python's own start
included). A structural guard, not a timing: a module that costs the dry run milliseconds and
that it does not need must not come back onto its path through a top-level import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# each is measured in docs/performance.md, or is a whole subsystem the dry run has no use for
NOT_ON_THE_DRY_RUN = (
    "rich",  # the console: a dry run prints the script with print()
    "dataclasses",  # with inspect, ast, dis, tokenize: ~15 ms, and ~1 ms per class made
    "inspect",
    "simple_slurm",  # its option list is read as a file where sbatch is missing
    "platformdirs",  # paths.user_dir applies its Linux rule
    "email",
    "importlib.metadata",
    "importlib.resources",
    "zipfile",
    "subprocess",  # no process starts: the site's options come from their cache
    "tempfile",
    "random",
    "difflib",  # suggestions are for mistakes only
    "tomllib",  # a file's table parsed before is read from the cache (sources.read_toml)
    "urllib.request",
    "uvslurm.api",
    "uvslurm.manifest",
    "uvslurm.depot",
    "uvslurm.names",
)


def _imported(argv: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """The CLI run as a user runs it, with `-X importtime`: every module it imported."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    first = subprocess.run([sys.executable, "-m", "uvslurm", *argv], cwd=cwd, env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert first.returncode == 0, first.stderr  # the first run of a user caches sbatch's options
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "uvslurm", *argv], cwd=cwd,
                       env=env, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in r.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return r, names


def _loaded(names: set[str], module: str) -> bool:
    return module in names or any(n.startswith(module + ".") for n in names)


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "--dry-run", "--", "python", "-c", "pass"],
        ["submit", "--dry-run", "-p", "debug", "-t", "00:05:00", "train.py", "--lr", "3"],
    ],
    ids=["command", "py-file"],
)
def test_the_dry_run_imports_nothing_it_does_not_need(project: Path, argv: list[str]) -> None:
    (project / "train.py").write_text("print('hi')\n")
    r, names = _imported(argv, project)
    assert r.stdout.startswith("#!/bin/bash\n") and "#SBATCH" in r.stdout
    # the list is read from the real output: a run that imported nothing proves nothing
    assert {"uvslurm.cli", "uvslurm.pipeline", "uvslurm.render", "argparse"} <= names
    loaded = [m for m in NOT_ON_THE_DRY_RUN if _loaded(names, m)]
    assert loaded == [], f"imported on the dry run's path: {loaded}"


def test_a_mistake_still_gets_its_suggestion(project: Path) -> None:
    """difflib moved into the functions that suggest: they still do."""
    r = subprocess.run([sys.executable, "-m", "uvslurm", "submit", "--dry-run", "--tiem", "5",
                        "--", "python"], cwd=project, capture_output=True, text=True)  # fmt: skip
    assert r.returncode != 0
    assert "did you mean '--time'?" in r.stderr
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text() + "\n[tool.uvslurm]\ndepott = '/tmp'\n"
    )
    r = subprocess.run([sys.executable, "-m", "uvslurm", "submit", "--dry-run", "--", "python"],
                       cwd=project, capture_output=True, text=True)  # fmt: skip
    assert r.returncode != 0
    assert "did you mean 'depot'?" in r.stderr


def test_the_prolog_is_cut_into_its_parts_once_per_process() -> None:
    """warm_text and rest_text share one cut of the sections (~3 ms of the dry run)."""
    from uvslurm import prolog

    for f in (prolog._parts, prolog.warm_text, prolog.rest_text):
        f.cache_clear()
    prolog.text()
    assert prolog._parts.cache_info().misses == 1


SUBMIT_LINES = [
    ["submit", "--dry-run", "--", "python", "-c", "pass"],
    ["submit", "--dry-run", "train.py", "--lr", "3", "-p", "x", "--", "-t"],
    ["submit", "-p", "debug", "-t", "00:05:00", "train.py", "--lr", "3"],
    ["submit", "--time=5", "--dry-run", "--", "cmd"],
    ["submit", "--exclusive", "train.py"],
    ["submit", "--exclusive=user", "--project", "p", "--extra", "a", "train.py"],
    ["submit", "--sbatch-arg=--hold", "--uvslurm-profile", "gpu", "train.py"],
    ["submit", "--no-node-local", "--locked", "--python", "3.12", "job.sh", "a", "b"],
    ["submit", "-pdebug", "--", "x"],
    ["submit", "--json", "--wait", "train.py", "--dry-run"],
]


@pytest.mark.parametrize("argv", SUBMIT_LINES, ids=range(len(SUBMIT_LINES)))
def test_the_parser_without_sbatch_options_parses_as_the_full_one_or_not_at_all(
    argv: list[str],
) -> None:
    """submit's command line is parsed first without an argparse option per sbatch option
    (~4 ms): what that parse gives must be what the full parser gives."""
    from uvslurm import cli

    lean = cli.build_parser(only="submit", lean=True)
    full = cli.build_parser(only="submit")
    lean.argv = full.argv = argv
    try:
        _, got, got_cmd = cli._parse_submit_with(lean, list(argv))
    except cli._NeedsSbatch:
        # only a command line with an option the lean parser lacks: sbatch's
        known = {s for a in cli._command_path(lean, ["submit"])[-1]._actions
                 for s in a.option_strings}  # fmt: skip
        assert any(a.startswith("-") and a.split("=")[0] not in known for a in argv[1:])
        got = None
    _, want, want_cmd = cli._parse_submit_with(full, list(argv))
    if got is not None:
        given = {k: v for k, v in vars(want).items() if not (k.startswith("sb_") and v is None)}
        assert (vars(got), got_cmd) == (given, want_cmd)
    # the way the CLI parses: the same, sbatch options included
    _, ns, cmd = cli._parse_submit(list(argv))
    assert ({k: v for k, v in vars(ns).items() if v is not None}, cmd) == (
        {k: v for k, v in vars(want).items() if v is not None},
        want_cmd,
    )
