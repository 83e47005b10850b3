"""`uvslurm doctor`: one line per check, ok/warn/fail with the fix, on the real dev cluster and
on machines where something is missing or misplaced."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import DEPOT_FS, Cluster, uvslurm
from uvslurm.commands import doctor


def _checks(r: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {c["what"]: c for c in json.loads(r.stdout)}


def _bin_with(tmp_path: Path, *tools: str) -> str:
    """A PATH that holds only `tools` (as on a machine without the others)."""
    d = tmp_path / "bin"
    d.mkdir()
    for t in tools:
        found = shutil.which(t)
        assert found, t
        (d / t).symlink_to(found)
    return str(d)


@pytest.mark.slurm
def test_on_the_dev_cluster_everything_a_job_needs_is_ok(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    r = uvslurm("doctor", "--json", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    c = _checks(r)
    for what in ("sbatch", "srun", "slurmctld", "uv", "module system", "depot", "bash", "flock"):
        assert c[what]["status"] == "ok", c[what]
    assert "Lmod" in c["module system"]["detail"]
    assert str(Path(os.environ["SCRATCH"]) / "uvslurm") in c["depot"]["detail"]
    assert c["python"]["status"] in ("ok", "warn") and "3.11" in c["python"]["detail"]
    # the human form: the same checks, one line each, and a count
    human = uvslurm("doctor", cwd=project)
    assert human.returncode == 0
    lines = human.stdout.strip().splitlines()
    assert len(lines) == len(c) + 1 and lines[-1].endswith("0 fail")


def test_missing_slurm_and_an_unwritable_depot_fail_with_the_fix(
    project: Path, tmp_path: Path
) -> None:
    env = {"PATH": _bin_with(tmp_path, "uv", "bash", "flock"), "UVSLURM_DEPOT": "/proc/uvslurm"}
    r = uvslurm("doctor", "--json", cwd=project, env=env)
    assert r.returncode == 1, "a failed check fails the command"
    c = _checks(r)
    for what in ("sbatch", "srun", "depot"):
        assert c[what]["status"] == "fail" and c[what]["fix"], c[what]
    assert c["squeue"]["status"] == "warn"
    assert "UVSLURM_DEPOT" in c["depot"]["fix"], c["depot"]
    human = uvslurm("doctor", cwd=project, env=env)
    assert human.returncode == 1
    fail_lines = [line for line in human.stdout.splitlines() if line.startswith("fail")]
    assert len(fail_lines) == 3 and all("→" in line for line in fail_lines), human.stdout


def test_a_depot_under_home_and_a_uv_cache_elsewhere_warn(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # the depot in $HOME (quota), uv's cache on another filesystem (uv copies, no links)
    shm = Path("/dev/shm")
    if not shm.is_dir() or doctor.fs_type(shm) == doctor.fs_type(tmp_path):
        pytest.skip("needs /dev/shm on a filesystem of its own")
    cache = Path(tempfile.mkdtemp(dir=shm, prefix="uvslurm-doctor-"))
    try:
        env = {"HOME": str(home), "UVSLURM_DEPOT": str(home / "depot"), "UV_CACHE_DIR": str(cache)}
        c = _checks(uvslurm("doctor", "--json", cwd=project, env=env))
    finally:
        shutil.rmtree(cache)
    assert c["depot"]["status"] == "warn" and "$HOME" in c["depot"]["detail"]
    assert "SCRATCH" in c["depot"]["fix"] or "scratch" in c["depot"]["fix"]
    assert (
        c["uv cache"]["status"] == "warn"
        and "not on the depot's filesystem" in c["uv cache"]["detail"]
    )


def test_an_image_that_cannot_be_made_here_warns(project: Path, tmp_path: Path) -> None:
    env = {"PATH": _bin_with(tmp_path, "uv", "bash", "flock"), "UVSLURM_IMAGE": "squashfs"}
    c = _checks(uvslurm("doctor", "--json", cwd=project, env=env))
    assert c["image"]["status"] == "warn" and "missing mksquashfs" in c["image"]["detail"]
    assert "squashfs-tools" in c["image"]["fix"]
    auto = _checks(uvslurm("doctor", "--json", cwd=project, env={**env, "UVSLURM_IMAGE": "auto"}))
    assert auto["image"]["status"] == "ok" and "auto (= none)" in auto["image"]["detail"]


def test_filesystem_types_come_from_the_longest_mount_point_with_escapes() -> None:
    mounts = (
        "/dev/sda1 / ext4 rw 0 0\n"
        "server:/export /scratch\\040space nfs4 rw 0 0\n"
        "10.0.0.1@tcp:/fs /lus lustre rw 0 0\n"
        "tmpfs /lus/tmp tmpfs rw 0 0\n"
    )
    assert doctor.fs_type(Path("/scratch space/u/uvslurm"), mounts) == "nfs4"
    assert doctor.fs_type(Path("/lus/project"), mounts) == "lustre"
    assert doctor.fs_type(Path("/lus/tmp/x"), mounts) == "tmpfs"
    assert doctor.fs_type(Path("/home/u"), mounts) == "ext4"
    assert [k for k in ("nfs4", "lustre", "gpfs", "fuse.sshfs", "ext4", "tmpfs", "xfs")
            if doctor.is_network(k)] == ["nfs4", "lustre", "gpfs", "fuse.sshfs"]  # fmt: skip


def test_depot_locks_without_slurm_are_checked_here_only(
    project: Path, tmp_path: Path, fs_view: Callable[[str], Path]
) -> None:
    """Without Slurm: flock is tried on this machine only, and the line says the check across
    nodes was not made; where flock fails here, that is known without Slurm."""
    env = {"PATH": _bin_with(tmp_path, "uv", "bash", "flock"), "UVSLURM_DEPOT": str(tmp_path / "d")}
    c = _checks(uvslurm("doctor", "--json", cwd=project, env=env))["depot locks"]
    assert c["status"] == "warn" and "not checked across nodes (no Slurm here)" in c["detail"], c
    failing = fs_view("noflock")
    env["UVSLURM_DEPOT"] = str(failing / "uvslurm")
    c = _checks(uvslurm("doctor", "--json", cwd=project, env=env))["depot locks"]
    assert c["status"] == "warn" and c["detail"].startswith("failing: flock fails here ("), c
    assert "lease" in c["detail"] and "-o flock" in c["fix"], c
    assert [p.name for p in failing.iterdir()] == [], "the probe left files behind"


@pytest.mark.slurm
@pytest.mark.parametrize("kind", DEPOT_FS)
def test_depot_locks_are_probed_on_two_nodes(
    cluster: Cluster, project: Path, kind: str, dev_depot: Callable[[str], Path]
) -> None:
    """One srun task on each node: a flock held on n1 is tried from n2, in the depot."""
    depot = dev_depot(kind)
    # the probe asks for both nodes at once (srun --immediate): while other tests' jobs hold
    # them, doctor rightly says it got no answer; ask again until they are free
    end = time.monotonic() + 600
    while True:
        c = _checks(uvslurm("doctor", "--json", cwd=project, env={"UVSLURM_DEPOT": str(depot)}))
        got = c["depot locks"]
        if "nodes are busy" not in got["detail"] or time.monotonic() > end:
            break
        time.sleep(5)
    want = {
        "coherent": ("ok", "coherent across nodes: a flock held on n1 excludes n2"),
        "pernode": ("warn", "per node only: a flock held on n1 does not exclude n2; "),
        "noflock": ("warn", "failing: flock fails here (No locks available); "),
    }[kind]
    assert (got["status"], got["detail"][: len(want[1])]) == want, got
    assert [p.name for p in depot.parent.iterdir()] == [], "the probe left files behind"
