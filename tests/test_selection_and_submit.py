"""What `submit` promises beyond the job itself, checked by its effects on the real cluster:
uv's selection flags reach the venv (an extra's package importable, a group's not unless asked,
the dev group gone with --no-dev), --frozen and a successful --locked, --sbatch-arg, --project,
and submit's side effects (script copy, summary, default log and job name, prefetch stamp,
--parsable, --wait streaming)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import UV_CACHE, Cluster, make_project, uvslurm

# one package per kind of selection; all tiny, pure-python wheels
EXTRA, GROUP, DEV = "iniconfig", "packaging", "pluggy"
PROBE = (
    "import importlib.util, json, sys; "
    f"print('HAVE ' + json.dumps({{m: bool(importlib.util.find_spec(m)) for m in {[EXTRA, GROUP, DEV]!r}}}))"
)


@pytest.fixture(scope="session")
def selection_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A locked project with an optional extra `ex`, a dependency group `grp` and a dev group."""
    path = make_project(tmp_path_factory.mktemp("selection") / "proj", ("six",))
    env = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE)}
    for args in (["--optional", "ex", EXTRA], ["--group", "grp", GROUP], ["--dev", DEV]):
        subprocess.run(["uv", "add", "-q", "--no-sync", *args], cwd=path, env=env, check=True)
    shutil.rmtree(path / ".venv", ignore_errors=True)
    return path


@pytest.fixture
def selection_project(tmp_path: Path, selection_template: Path) -> Path:
    dst = tmp_path / "sel"
    shutil.copytree(selection_template, dst)
    return dst


def _have(text: str) -> dict[str, bool]:
    line = next(x for x in text.splitlines() if x.startswith("HAVE "))
    found: dict[str, bool] = json.loads(line[len("HAVE ") :])
    return found


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], {EXTRA: False, GROUP: False, DEV: True}),
        (["--extra", "ex"], {EXTRA: True, GROUP: False, DEV: True}),
        (["--all-extras", "--no-dev"], {EXTRA: True, GROUP: False, DEV: False}),
        (["--group", "grp"], {EXTRA: False, GROUP: True, DEV: True}),
    ],
)
def test_selection_flags_reach_the_venv(
    selection_project: Path, flags: list[str], expected: dict[str, bool]
) -> None:
    """`prepare` (the prolog, as a job runs it) with each selection: the venv holds exactly what
    was selected, and each selection is its own venv (part of the key)."""
    r = uvslurm("prepare", "--no-node-local", *flags, cwd=selection_project)
    assert r.returncode == 0, r.stderr
    venv = Path(r.stdout.strip())
    out = subprocess.run([venv / "bin" / "python", "-c", PROBE], capture_output=True, text=True)
    assert _have(out.stdout) == expected, (flags, out.stdout, out.stderr)
    marker = (venv / ".uvslurm-ready").read_text()
    assert f"sync={' '.join(flags)}\n" in marker, marker


@pytest.mark.slurm
@pytest.mark.slow
def test_selection_flags_locked_frozen_sbatch_arg_and_project_in_a_real_job(
    cluster: Cluster, selection_project: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log = tmp_path / "sel.log"
    r = uvslurm("submit", "--wait", "--locked", "--project", str(selection_project),
                "--extra", "ex", "--group", "grp", "--sbatch-arg=--comment=sel job",
                "-o", str(log), "-e", str(log), "--", "python", "-c", PROBE,
                cwd=elsewhere)  # fmt: skip
    text = log.read_text() if log.exists() else ""
    assert r.returncode == 0, r.stderr + text
    assert _have(text) == {EXTRA: True, GROUP: True, DEV: True}, text
    job = re.search(r"submitted job (\d+)", r.stderr)
    assert job, r.stderr
    show = cluster.run("scontrol", "show", "job", job.group(1)).stdout
    assert "Comment=sel job" in show, show

    # --frozen uses the lock as it is: a pyproject edit that would need a new lock is ignored
    pyproject = selection_project / "pyproject.toml"
    lock_before = (selection_project / "uv.lock").read_bytes()
    pyproject.write_text(pyproject.read_text().replace('"six>=', '"six>=0,>='))
    log2 = tmp_path / "frozen.log"
    r = uvslurm("submit", "--wait", "--frozen", "-o", str(log2), "-e", str(log2), "--no-dev",
                "--", "python", "-c", PROBE, cwd=selection_project)  # fmt: skip
    assert r.returncode == 0, r.stderr + (log2.read_text() if log2.exists() else "")
    assert (selection_project / "uv.lock").read_bytes() == lock_before, "--frozen relocked"
    assert _have(log2.read_text()) == {EXTRA: False, GROUP: False, DEV: False}


@pytest.mark.slurm
def test_submit_side_effects_on_the_cluster(
    cluster: Cluster, project: Path, isolated_user: Path
) -> None:
    """The default log path and job name, the script copy, the summary, the prefetch stamp
    (fetched once per lock), --parsable and --wait streaming, all with real sbatch."""
    state = isolated_user / "state" / "uvslurm"
    r = uvslurm("submit", "--wait", "train.py", "--lr", "3", cwd=project)
    assert r.returncode == 0, r.stderr
    # stdout: the job id alone; --wait streams the job's log with the summary, on stderr
    job = r.stdout.strip()
    assert job.isdigit(), r.stdout
    assert 'TRAIN {"argv": ["--lr", "3"]' in r.stderr, r.stderr
    # default log path and job name
    log = state / "logs" / f"train-{job}.out"
    assert log.is_file() and 'TRAIN {"argv": ["--lr", "3"]' in log.read_text()
    show = cluster.run("scontrol", "show", "job", job).stdout
    assert re.search(r"JobName=train$", show, re.M), show
    # the script copy: what sbatch ran, kept under the job id
    copy = state / "scripts" / f"{job}.sh"
    assert copy.is_file() and os.access(copy, os.X_OK)
    dry = uvslurm("submit", "--dry-run", "train.py", "--lr", "3", cwd=project, check=True).stdout
    # what only a real submission makes: the lock copy the node builds from, the record dir
    strip = lambda t: re.sub(r"(?m)^(# Generated by |UVSLURM_LOCK_DIR=|UVSLURM_RECORD=).*$", "", t)  # noqa: E731
    assert strip(copy.read_text()) == strip(dry)
    # the summary on stderr names them
    for label, value in (("log", str(log)), ("script", str(copy)), ("project", str(project))):
        assert re.search(rf"^\s*{label}\s+{re.escape(value)}", r.stderr, re.M), (label, r.stderr)
    assert re.search(r"^\s*fingerprint\s+[0-9a-f]{12}$", r.stderr, re.M), r.stderr
    # the prefetch ran once for this lock: a stamp, unchanged by the next submit
    stamps = list((isolated_user / "scratch" / "uvslurm" / ".prefetch").iterdir())
    stamps = [s for s in stamps if s.is_file()]
    assert len(stamps) == 1, stamps
    before = stamps[0].stat().st_mtime_ns
    p = uvslurm("submit", "--parsable", "--hold", "train.py", cwd=project)
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(r"\d+\n", p.stdout), p.stdout
    assert p.stderr == "", "--parsable prints nothing but the job id"
    cluster.run("scancel", p.stdout.strip())
    assert stamps[0].stat().st_mtime_ns == before, "the prefetch ran again for the same lock"
