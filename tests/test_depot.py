"""`uvslurm depot` and `uvslurm config` on real depots built by the prolog."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from conftest import uvslurm
from test_prolog import prolog, ready_state


def _two_venvs(project: Path, depot: Path) -> tuple[Path, Path]:
    a = prolog(project, depot, LOADEDMODULES="mpich/1.0", _LMFILES_="/m/mpich/1.0")
    b = prolog(project, depot, LOADEDMODULES="mpich/2.0", _LMFILES_="/m/mpich/2.0")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    return Path(a.stdout.strip()), Path(b.stdout.strip())


def _age(venv: Path, days: float) -> None:
    t = time.time() - days * 86400
    os.utime(venv / ".uvslurm-used", (t, t))


def test_list_shows_each_venv_with_its_project_size_and_modules(
    project: Path, tmp_path: Path
) -> None:
    depot = tmp_path / "depot"
    a, b = _two_venvs(project, depot)
    r = uvslurm(
        "depot", "list", "--json", cwd=project, env={"UVSLURM_DEPOT": str(depot)}, check=True
    )
    rows = {Path(row["path"]): row for row in json.loads(r.stdout)}
    assert set(rows) == {a, b}
    assert all(row["project"] == str(project) and row["project_exists"] for row in rows.values())
    assert "mpich/1.0" in rows[a]["fingerprint"] and "mpich/2.0" in rows[b]["fingerprint"]
    assert rows[a]["inodes"] > 10 and rows[a]["size_bytes"] > 0
    assert uvslurm(
        "depot", "path", cwd=project, env={"UVSLURM_DEPOT": str(depot)}
    ).stdout.strip() == str(depot)


def test_gc_removes_old_and_orphaned_venvs_but_never_a_locked_one(
    project: Path, tmp_path: Path
) -> None:
    depot = tmp_path / "depot"
    a, b = _two_venvs(project, depot)
    env = {"UVSLURM_DEPOT": str(depot)}
    _age(a, 40)
    _age(b, 40)
    dry = uvslurm("depot", "gc", "--dry-run", cwd=project, env=env, check=True)
    assert "would remove" in dry.stdout and a.exists() and b.exists()
    # a job builds or places b right now: its lock is held
    fd = os.open(b.parent / f"{b.name}.lock", os.O_WRONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        r = uvslurm("depot", "gc", "--older-than", "30", cwd=project, env=env, check=True)
    finally:
        os.close(fd)
    assert not a.exists() and not Path(f"{a}.lock").exists()
    assert b.exists() and "skipped" in r.stderr
    # the next job simply rebuilds what gc removed
    again = prolog(project, depot, LOADEDMODULES="mpich/1.0", _LMFILES_="/m/mpich/1.0")
    assert ready_state(again.stderr) == "cold" and Path(again.stdout.strip()) == a


def test_gc_removes_venvs_whose_project_is_gone(project: Path, tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    gone = tmp_path / "gone"
    shutil.copytree(project, gone)
    venv = Path(prolog(gone, depot).stdout.strip())
    keep = Path(prolog(project, depot).stdout.strip())
    shutil.rmtree(gone)
    r = uvslurm("depot", "gc", cwd=project, env={"UVSLURM_DEPOT": str(depot)}, check=True)
    assert "is gone" in r.stdout and not venv.exists() and keep.exists()


def test_rm_removes_one_project(project: Path, tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    a, _ = _two_venvs(project, depot)
    r = uvslurm("depot", "rm", cwd=project, env={"UVSLURM_DEPOT": str(depot)}, check=True)
    assert "removed" in r.stdout and not a.parent.exists()


def test_config_shows_each_value_and_its_source(project: Path, isolated_user: Path) -> None:
    with (project / "pyproject.toml").open("a") as f:
        f.write('\n[tool.uvslurm.sbatch]\ntime = "1:00:00"\n')
    r = uvslurm("config", "--json", cwd=project, env={"UVSLURM_NODE_LOCAL": "never"}, check=True)
    data = json.loads(r.stdout)
    assert data["node-local"] == {"value": "never", "source": "environment"}
    assert data["sbatch.time"]["source"].endswith("[tool.uvslurm]")
    assert data["depot"]["source"] == "default ($SCRATCH)"
    assert data["offline"] == {"value": "auto", "source": "default"}


def _doctor(cwd: Path, **env: str) -> tuple[int, dict[str, dict[str, str]]]:
    r = uvslurm("doctor", "--json", cwd=cwd, env=env)
    return r.returncode, {c["what"]: c for c in json.loads(r.stdout)}


def test_doctor_reports_each_part_and_fails_on_what_blocks_jobs(
    project: Path, tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    uv = shutil.which("uv")
    assert uv
    (bindir / "uv").symlink_to(uv)
    # no Slurm on this PATH, and a depot that cannot be written
    rc, checks = _doctor(project, PATH=f"{bindir}:/nonexistent",
                         UVSLURM_DEPOT="/proc/nope")  # fmt: skip
    assert rc == 1
    assert checks["sbatch"]["status"] == "fail" and "login node" in checks["sbatch"]["fix"]
    assert checks["depot"]["status"] == "fail" and "UVSLURM_DEPOT" in checks["depot"]["fix"]
    assert checks["uv"]["status"] == "ok"


def test_doctor_sees_the_node_local_candidates(project: Path, tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    _, checks = _doctor(project, TMPDIR=str(local))
    assert "the depot's filesystem" in checks["node-local TMPDIR"]["detail"]
    assert checks["python"]["status"] == "ok", "the project's Python is there for offline nodes"
