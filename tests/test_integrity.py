"""The venv a job runs from is the one its uv.lock asks for, and it is whole: the key is made
of contents (never of file times), a venv is published only when every file its RECORDs list is
there at its size, a published venv that lost files is rebuilt, and a build makes the same venv
whatever UV_* variables the submitting shell exported. The prolog run for real (no Slurm)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PROLOG, UV_CACHE, prolog_env, ready


def prolog(project: Path, depot: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PROLOG)], env=prolog_env(project, depot, **env), capture_output=True,
        text=True,
    )  # fmt: skip


def imports(venv: Path, module: str) -> bool:
    return subprocess.run([f"{venv}/bin/python", "-c", f"import {module}"]).returncode == 0


def locked_with(project: Path, tmp_path: Path, dep: str) -> Path:
    """A copy of `project` whose pyproject.toml and uv.lock also have `dep` (as on a laptop)."""
    other = tmp_path / "elsewhere"
    shutil.copytree(project, other)
    env = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE)}
    subprocess.run(["uv", "add", "-q", "--no-sync", dep], cwd=other, env=env, check=True)
    return other


def lock_hash(project: Path) -> str:
    return hashlib.sha256((project / "uv.lock").read_bytes()).hexdigest()


# --- 4: the key is made of contents ----------------------------------------------------------


@pytest.mark.parametrize("how", ["cp -p", "rsync -a"])
def test_a_lock_copied_with_an_old_mtime_gets_its_own_venv(
    project: Path, tmp_path: Path, how: str
) -> None:
    """A uv.lock that arrives older than the remembered keys (rsync -a, scp -p, cp -p, a
    login node whose clock is ahead) is still hashed: the job gets the new lock's venv."""
    depot = tmp_path / "depot"
    first = prolog(project, depot)
    assert ready(first.stderr).state == "cold", first.stderr
    assert ready(prolog(project, depot).stderr).state == "warm"
    other = locked_with(project, tmp_path, "iniconfig")
    old = (project / "uv.lock").stat().st_mtime - 3600
    for name in ("pyproject.toml", "uv.lock"):
        os.utime(other / name, (old, old))
        if how == "rsync -a" and shutil.which("rsync"):
            subprocess.run(["rsync", "-a", str(other / name), str(project / name)], check=True)
        else:
            shutil.copy2(other / name, project / name)
    assert (project / "uv.lock").stat().st_mtime < (
        Path(first.stdout.strip()).parent / ".keys"
    ).stat().st_mtime
    r = prolog(project, depot)
    assert r.returncode == 0, r.stderr
    venv = Path(r.stdout.strip())
    assert ready(r.stderr).state == "cold", r.stderr
    assert venv != Path(first.stdout.strip())
    assert imports(venv, "iniconfig"), "the job ran the previous lock's venv"
    # the venv's name carries the lock's content hash
    assert venv.name.endswith("-" + lock_hash(project)[:8])
    assert ready(prolog(project, depot).stderr).state == "warm"


def test_the_lock_the_node_sees_is_checked_against_the_submitted_one(
    project: Path, tmp_path: Path
) -> None:
    depot = tmp_path / "depot"
    submitted = lock_hash(project)
    same = prolog(project, depot, UVSLURM_LOCK_HASH=submitted)
    assert same.returncode == 0, same.stderr
    assert "warning" not in same.stderr, same.stderr
    # the lock changed between submit and the job's start: one warning line, and the venv of
    # the lock that `uv run --no-sync` will run with
    other = locked_with(project, tmp_path, "iniconfig")
    shutil.copy2(other / "pyproject.toml", project / "pyproject.toml")
    shutil.copy2(other / "uv.lock", project / "uv.lock")
    r = prolog(project, depot, UVSLURM_LOCK_HASH=submitted)
    assert r.returncode == 0, r.stderr
    warnings = [x for x in r.stderr.splitlines() if x.startswith("uvslurm: warning:")]
    assert len(warnings) == 1, r.stderr
    assert submitted[:12] in warnings[0] and lock_hash(project)[:12] in warnings[0]
    assert str(project / "uv.lock") in warnings[0]
    venv = Path(r.stdout.strip())
    assert venv.name.endswith("-" + lock_hash(project)[:8]) and imports(venv, "iniconfig")


def test_remembered_keys_hold_fingerprints_only(project: Path, tmp_path: Path) -> None:
    """What the depot remembers is fingerprint text -> fingerprint hash: nothing there depends
    on the lock or on file times."""
    depot = tmp_path / "depot"
    venv = Path(prolog(project, depot).stdout.strip())
    keys = (venv.parent / ".keys").read_text().split("\n")
    entries = [line.split("\x1e")[0] for line in keys if line]
    assert entries == [venv.name.split("-")[0]]
