"""The prolog run for real on this machine (no Slurm): real bash, real uv, real venvs."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    HOSTILE_NAMES,
    PROLOG,
    files_under,
    lossy_uv,
    missing_files,
    prolog_env,
    ready,
    uvslurm,
    wait_for,
)
from uvslurm import depot as depot_mod
from uvslurm import names
from uvslurm.commands import srun
from uvslurm.nodeenv import project_id
from uvslurm.prolog import KEPT, section_text, warm_text


def prolog(
    project: Path, depot: Path, mode: str = "prepare", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PROLOG)], env=prolog_env(project, depot, mode, **env), capture_output=True,
        text=True,
    )  # fmt: skip


def ready_state(stderr: str) -> str:
    return ready(stderr).state


def test_shellcheck_clean(tmp_path: Path) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    # the sections joined, as job scripts hold them (each section alone: tests/test_quality.py)
    subprocess.run(["shellcheck", "-x", "-S", "warning", str(PROLOG)], check=True)
    # and with every function in place, as bash has them once _uvslurm_load ran
    whole = tmp_path / "whole.sh"
    whole.write_text("#!/bin/bash\n" + warm_text(lazy=False))
    subprocess.run(["shellcheck", "-x", "-S", "warning", str(whole)], check=True)


def test_cold_then_warm_in_the_depot(project: Path, tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    before = files_under(project)
    first = prolog(project, depot)
    assert first.returncode == 0, first.stderr
    assert ready_state(first.stderr) == "cold"
    venv = Path(first.stdout.strip())
    assert venv.is_relative_to(depot)
    assert (venv / ".uvslurm-ready").is_file()
    second = prolog(project, depot)
    assert ready_state(second.stderr) == "warm"
    assert second.stdout == first.stdout
    # every step logs one line with its duration
    assert all(" ms" in line for line in first.stderr.splitlines() if line.startswith("uvslurm:"))
    assert files_under(project) == before, "the prolog wrote into the project"


def test_node_local_placement_then_warm(project: Path, tmp_path: Path) -> None:
    depot, local = tmp_path / "depot", tmp_path / "local"
    local.mkdir()
    first = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local))
    assert ready_state(first.stderr) == "cold"
    venv = Path(first.stdout.strip())
    assert venv.parent == local / f"uvslurm-{os.getuid()}"
    assert oct(venv.parent.stat().st_mode & 0o777) == "0o700"
    # a fresh node-local disk (per-job TMPDIR): placed from the depot, nothing installed
    shutil.rmtree(local / f"uvslurm-{os.getuid()}")
    placed = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local))
    assert ready_state(placed.stderr) == "placed"
    assert "built" not in placed.stderr
    warm = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local))
    assert ready_state(warm.stderr) == "warm"
    # the parallel copy is complete: same files, links and modes as the depot venv
    # node-local copies are named <project id>-<key>, the depot's <project id>/<key>
    assert venv.name == f"{project_id(str(project))}-{venv.name[-21:]}"
    assert names.NODE_COPY.match(venv.name), "the grammar that pruning keeps to"
    depot_venv = depot / project_id(str(project)) / venv.name[-21:]

    def tree(root: Path) -> dict[str, tuple[int, str]]:
        return {
            str(p.relative_to(root)): (p.lstat().st_mode, os.readlink(p) if p.is_symlink() else "")
            for p in root.rglob("*")
        }

    assert tree(venv) == tree(depot_venv)
    # the placed venv works where it is
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import six, sys; print(sys.prefix)"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == str(venv)


@pytest.mark.parametrize("target_mode", [0o755, 0o700])
def test_planted_directory_in_shared_tmp_is_refused(
    project: Path, tmp_path: Path, target_mode: int
) -> None:
    """A symlink planted as uvslurm-<uid>: to a directory of the attacker's, or to a private
    directory of yours (which passes every owner and mode check once followed)."""
    depot, local = tmp_path / "depot", tmp_path / "shared-tmp"
    local.mkdir()
    target = tmp_path / "attacker"
    target.mkdir(mode=target_mode)
    target.chmod(target_mode)
    (local / f"uvslurm-{os.getuid()}").symlink_to(target)
    r = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local))
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).is_relative_to(depot), "fell back to the depot"
    assert "not a private directory" in r.stderr
    assert list(target.iterdir()) == [], "followed the planted symlink"


def test_a_node_local_user_dir_others_can_write_is_refused(project: Path, tmp_path: Path) -> None:
    """uvslurm-<uid> is yours but 0777 (made by hand, or by a umask 0): another user could put a
    "ready" venv in it. Not used, nothing placed into it."""
    depot, local = tmp_path / "depot", tmp_path / "shared-tmp"
    userdir = local / f"uvslurm-{os.getuid()}"
    userdir.mkdir(parents=True)
    userdir.chmod(0o777)
    r = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local))
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).is_relative_to(depot), r.stderr
    assert f"warning: {userdir} is not a private directory of this user" in r.stderr
    assert list(userdir.iterdir()) == []


def test_unwritable_node_local_falls_back_to_depot(project: Path, tmp_path: Path) -> None:
    r = prolog(project, tmp_path / "depot", UVSLURM_NODE_LOCAL="/proc")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).is_relative_to(tmp_path / "depot")


def test_module_set_changes_the_key(project: Path, tmp_path: Path) -> None:
    a = prolog(
        project,
        tmp_path / "d",
        "fingerprint",
        _LMFILES_="/m/mpich/1.0.lua",
        LOADEDMODULES="mpich/1.0",
    )
    b = prolog(
        project,
        tmp_path / "d",
        "fingerprint",
        _LMFILES_="/m/mpich/2.0.lua",
        LOADEDMODULES="mpich/2.0",
    )
    assert a.stdout.splitlines()[0] != b.stdout.splitlines()[0]
    assert a.stdout.splitlines()[1] != b.stdout.splitlines()[1]  # venv path


def test_fingerprint_ignores_unrelated_environment_and_module_order(
    project: Path, tmp_path: Path
) -> None:
    base = dict(_LMFILES_="/m/a/1.lua:/m/b/2.lua", LOADEDMODULES="a/1:b/2", MODULEPATH="/m")
    ref = prolog(project, tmp_path / "d", "fingerprint", **base).stdout
    noisy = dict(
        _LMFILES_="/m/b/2.lua:/m/a/1.lua",
        LOADEDMODULES="b/2:a/1",
        MODULEPATH="/m",
        PWD="/somewhere/else",
        SLURM_JOB_ID="12345",
        PATH="/opt/unrelated/bin:" + os.environ["PATH"],
        _ModuleTable001_="X2ModuleTable_={}",
        LC_ALL="C.UTF-8",
    )
    assert prolog(project, tmp_path / "d", "fingerprint", **noisy).stdout == ref


def test_kill_during_build_never_leaves_a_ready_venv(project: Path, tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    p = subprocess.Popen(
        ["bash", str(PROLOG)],
        env=prolog_env(project, depot),
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    # kill the whole process group once uv is installing packages into the build directory
    deadline = time.time() + 60
    while not list(depot.glob("*/.*.build-*/lib/python*/site-packages/*")):
        assert p.poll() is None, "the build finished before it could be killed"
        assert time.time() < deadline, "no build started within 60 s"
        time.sleep(0.002)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert list(depot.glob("*/.*.build-*")), "the kill did not hit the build"
    assert not list(depot.glob("*/*/.uvslurm-ready"))
    r = prolog(project, depot)
    assert r.returncode == 0, r.stderr
    assert ready_state(r.stderr) in ("cold", "repaired")
    assert not list(depot.glob("*/.*.build-*")), "leftover build directory"


def test_concurrent_builders_build_once(project: Path, tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    env = prolog_env(project, depot)
    procs = [subprocess.Popen(["bash", str(PROLOG)], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]  # fmt: skip
    results = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    states = sorted(ready_state(err) for _, err in results)
    assert states.count("cold") == 1, states
    assert len({out for out, _ in results}) == 1


def test_no_lock_is_a_prepare_failure(project: Path, tmp_path: Path) -> None:
    (project / "uv.lock").unlink()
    r = prolog(project, tmp_path / "depot")
    assert r.returncode == 75
    assert "uv.lock" in r.stderr


@pytest.mark.parametrize("name", HOSTILE_NAMES[:4])
def test_rendered_script_runs_locally_with_hostile_path_and_args(
    name: str, tmp_path: Path, project: Path
) -> None:
    """The whole rendered job script, run by bash here as Slurm would run it on a node."""
    hostile = tmp_path / f"dir {name}"
    shutil.copytree(project, hostile)
    args = ["$(touch pwned)", "`id`", "it's", 'a"b', "line1\nline2", "-n", "--help", ";echo x", "*"]
    r = uvslurm("submit", "--dry-run", "train.py", *args, cwd=hostile)
    assert r.returncode == 0, r.stderr
    script = tmp_path / "job.sh"
    script.write_text(r.stdout)
    out_file = tmp_path / "out.json"
    run = subprocess.run(["bash", str(script)], cwd=hostile, capture_output=True, text=True,
                         env={**os.environ, "UVSLURM_TEST_OUT": str(out_file)})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(out_file.read_text())["argv"] == args
    assert not list(tmp_path.rglob("pwned"))
    assert ready_state(run.stderr) in ("cold", "placed", "warm")


@pytest.mark.parametrize("name", [*HOSTILE_NAMES, "x" * 60, "a\nb"])
def test_python_and_shell_agree_on_the_project_id(name: str, tmp_path: Path, project: Path) -> None:
    d = tmp_path / name
    shutil.copytree(project, d)
    r = prolog(d, tmp_path / "depot", "fingerprint", UVSLURM_PROJECT_ID="")
    venv = next(line for line in r.stdout.splitlines() if line.startswith("venv="))
    assert Path(venv[len("venv=") :]).parent.name == project_id(str(d))


def test_remembered_key_follows_the_lock(project: Path, tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    built = Path(prolog(project, depot).stdout.strip())
    assert (built.parent / ".keys").is_file()

    def venv_of(out: str) -> str:
        return next(line for line in out.splitlines() if line.startswith("venv="))[5:]

    assert venv_of(prolog(project, depot, "fingerprint").stdout) == str(built)
    # a changed lock gives a new key (whatever its mtime: tests/test_integrity.py)
    with (project / "uv.lock").open("a") as f:
        f.write("\n# changed\n")
    changed = venv_of(prolog(project, depot, "fingerprint").stdout)
    assert changed != str(built)
    assert changed.rsplit("-", 1)[1] != built.name.rsplit("-", 1)[1], "lock part of the key"
    # and the remembered entry is replaced once a job runs with the new lock
    assert str(Path(prolog(project, depot).stdout.strip())) == changed


def test_full_node_local_disk_falls_back_to_the_depot(project: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=16", "tmpfs", str(full)]
    ).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        r = prolog(project, tmp_path / "depot", UVSLURM_NODE_LOCAL=str(full))
        assert r.returncode == 0, r.stderr
        assert "warning" in r.stderr and "using the depot" in r.stderr
        assert Path(r.stdout.strip()).is_relative_to(tmp_path / "depot")
        left = [p.name for p in (full / f"uvslurm-{os.getuid()}").iterdir()]
        assert all(n.endswith(".lock") for n in left), f"a partial copy was left behind: {left}"
    finally:
        subprocess.run(["umount", str(full)])


def _depot_paths_touched(trace: Path, depot: Path) -> set[str]:
    """Distinct paths under the depot that the traced processes opened or stat'ed."""
    import re as _re

    paths = set()
    for line in trace.read_text(errors="replace").splitlines():
        for m in _re.finditer(r'"((?:[^"\\]|\\.)*)"', line):
            if m.group(1).startswith(str(depot)):
                paths.add(m.group(1))
    return paths


def test_a_retried_sync_starts_from_a_fresh_venv(project: Path, tmp_path: Path) -> None:
    """A sync that fails half-way (here: the offline attempt, leaving six's metadata but not its
    module) must not leave a venv that the retry with the network takes as complete."""
    real = shutil.which("uv")
    uv = tmp_path / "half-uv"
    uv.write_text(
        "#!/bin/bash\n"
        'if [ "$1" = sync ] && [[ " $* " == *" --offline "* ]]; then\n'
        f'  {real} "$@" || exit\n'
        '  rm -f "$UV_PROJECT_ENVIRONMENT"/lib/python*/site-packages/six.py; exit 1\n'
        "fi\n"
        f'exec {real} "$@"\n'
    )
    uv.chmod(0o755)
    r = prolog(project, tmp_path / "depot", UVSLURM_UV=str(uv), SLURM_JOB_ID="1")
    assert r.returncode == 0, r.stderr
    assert "retrying with network access" in r.stderr
    venv = Path(r.stdout.strip())
    assert missing_files(venv) == []
    assert subprocess.run([f"{venv}/bin/python", "-c", "import six"]).returncode == 0


def test_an_incomplete_venv_is_never_published(project: Path, tmp_path: Path) -> None:
    uv = lossy_uv(tmp_path, 'rm -f "$f"')
    depot = tmp_path / "depot"
    r = prolog(project, depot, UVSLURM_UV=str(uv))
    assert r.returncode == 75, r.stderr
    assert "files of the new venv are missing, e.g. six.py" in r.stderr
    assert not list(depot.glob("*/*/.uvslurm-ready"))


def _depot_with_image(project: Path, tmp_path: Path, image: str) -> tuple[Path, Path, Path]:
    """(depot, an empty node-local dir, the venv) after a cold build with `image`."""
    depot, local = tmp_path / "depot", tmp_path / "local"
    local.mkdir()
    built = prolog(project, depot, UVSLURM_IMAGE=image)
    assert built.returncode == 0, built.stderr
    assert "packed the image" in built.stderr
    venv = Path(built.stdout.strip())
    assert (venv.parent / f"{venv.name}.{image}").is_file(), built.stderr
    return depot, local, venv


def _fuse_usable() -> bool:
    return bool(shutil.which("squashfuse")) and os.access("/dev/fuse", os.R_OK | os.W_OK)


def test_squashfs_image_is_mounted_for_the_job_and_unpacked_where_it_cannot_be(
    project: Path, tmp_path: Path
) -> None:
    if not shutil.which("mksquashfs") or not shutil.which("unsquashfs"):
        pytest.skip("needs squashfs-tools")
    depot, local, _ = _depot_with_image(project, tmp_path, "squashfs")

    # `uvslurm prepare` (its result outlives it): unpacked onto node-local disk
    placed = prolog(project, depot, UVSLURM_IMAGE="squashfs", UVSLURM_NODE_LOCAL=str(local))
    assert placed.returncode == 0, placed.stderr
    assert "from the image" in placed.stderr and "mounted the image" not in placed.stderr
    copy = Path(placed.stdout.strip())
    assert copy.is_relative_to(local) and (copy / ".uvslurm-ready").is_file()
    assert subprocess.run([f"{copy}/bin/python", "-c", "import six"]).returncode == 0
    if not _fuse_usable():
        pytest.skip("FUSE is not usable by this user: the mount half needs it")

    # a job script: mounted for as long as the script runs, then unmounted and removed
    env = prolog_env(project, depot, UVSLURM_NODE_LOCAL=str(tmp_path / "job"),
                     UVSLURM_IMAGE="squashfs")  # fmt: skip
    (tmp_path / "job").mkdir()
    body = 'python -c "import six, sys; print(sys.prefix)" && mountpoint -q "$VIRTUAL_ENV" && echo MOUNTED'
    job = subprocess.run(["bash", "-c", f'. "$0" && {body}', str(PROLOG)],
                         env={**env, "UVSLURM_MODE": "activate"}, capture_output=True, text=True)  # fmt: skip
    assert job.returncode == 0, job.stderr
    assert "mounted the image" in job.stderr and ready_state(job.stderr) == "placed"
    prefix, mounted = job.stdout.split()
    assert mounted == "MOUNTED" and Path(prefix).is_relative_to(tmp_path / "job")
    assert not Path(prefix).exists(), "unmounted and removed when the script ended"
    # run mode: the command's exit code comes back, and the mount goes
    run = subprocess.run(
        ["bash", "-c", 'UVSLURM_CMD=(python -c "import sys; print(sys.prefix); sys.exit(3)"); . "$0"',
         str(PROLOG)], env={**env, "UVSLURM_MODE": "run"}, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 3, run.stderr
    assert "mounted the image" in run.stderr
    assert not Path(run.stdout.strip()).exists()


def test_image_places_by_reading_a_few_depot_files(project: Path, tmp_path: Path) -> None:
    if not shutil.which("strace") or not shutil.which("zstd"):
        pytest.skip("needs strace and zstd")
    depot, local, venv = _depot_with_image(project, tmp_path, "tar.zst")
    assert list(venv.rglob("*.pyc")), "bytecode compiled once at build time"
    counts = {}
    for image in ("tar.zst", "none"):
        shutil.rmtree(local / f"uvslurm-{os.getuid()}", ignore_errors=True)
        trace = tmp_path / f"trace-{image}"
        env = prolog_env(project, depot, UVSLURM_NODE_LOCAL=str(local), UVSLURM_IMAGE=image)
        if image == "none":
            (venv.parent / f"{venv.name}.tar.zst").unlink()
        r = subprocess.run(
            ["strace", "-f", "-qq", "-e", "trace=%file", "-o", str(trace), "bash", str(PROLOG)],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert ready_state(r.stderr) == "placed"
        assert ("from the image" in r.stderr) == (image == "tar.zst")
        counts[image] = len(_depot_paths_touched(trace, depot))
        out = subprocess.run(
            [f"{r.stdout.strip()}/bin/python", "-c", "import six"], capture_output=True
        )
        assert out.returncode == 0
    assert counts["tar.zst"] <= 10, counts
    assert counts["none"] > counts["tar.zst"] * 5, counts
    print(f"depot paths touched to place a venv: {counts}")


@pytest.mark.slow
def test_kill_at_random_moments_never_exposes_a_half_built_venv(
    project: Path, tmp_path: Path
) -> None:
    import random

    rng = random.Random(1234)
    depot = tmp_path / "depot"
    env = prolog_env(project, depot, UVSLURM_NODE_LOCAL=str(tmp_path / "local"))
    (tmp_path / "local").mkdir()
    # the first run measures the whole start and the build's own span (from its private
    # directory to the ready marker): the fingerprint's first run can take most of the start
    t0 = time.perf_counter()
    first = subprocess.Popen(["bash", str(PROLOG)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    building = ready = None
    while first.poll() is None:
        now = time.perf_counter()
        if building is None and list(depot.glob("*/.*.build-*")):
            building = now
        if ready is None and list(depot.glob("*/*/.uvslurm-ready")):
            ready = now
        time.sleep(0.002)
    assert first.returncode == 0
    full = time.perf_counter() - t0
    build_span = (ready or time.perf_counter()) - (building or t0)
    mid_build = checked = 0
    for trial in range(20):
        shutil.rmtree(depot)
        shutil.rmtree(tmp_path / "local")
        (tmp_path / "local").mkdir()
        p = subprocess.Popen(["bash", str(PROLOG)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)  # fmt: skip
        # a third of the trials each: any moment; inside the build (uv installing, the riskiest
        # part); after the depot venv is published (placing it on node-local disk)
        stage = {1: "*/.*.build-*", 2: "*/*/.uvslurm-ready"}.get(trial % 3)
        if stage:
            deadline = time.monotonic() + 60
            while not list(depot.glob(stage)) and p.poll() is None:
                assert time.monotonic() < deadline, f"no {stage} appeared"
                time.sleep(0.002)
            time.sleep(rng.uniform(0, (build_span if stage.endswith("build-*") else full) / 4))
        else:
            time.sleep(rng.uniform(0, full))
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        mid_build += bool(list(depot.glob("*/.*.build-*")))
        # whatever the moment, a venv that looks ready is complete (a killed copy's
        # .<name>.tmp-<pid> on node-local disk may hold the marker already: it is only ever
        # renamed into place whole, and removed by the next placement)
        for marker in [
            *depot.glob("*/*/.uvslurm-ready"),
            *(tmp_path / "local").glob("*/[!.]*/.uvslurm-ready"),
        ]:
            assert missing_files(marker.parent) == [], marker
            checked += 1
        r = subprocess.run(["bash", str(PROLOG)], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        venv = Path(r.stdout.strip())
        assert missing_files(venv) == []
        assert subprocess.run([f"{venv}/bin/python", "-c", "import six"]).returncode == 0
    print(f"kills mid-build: {mid_build} of 20; ready venvs checked after a kill: {checked}")
    # the trials must have hit the build itself, and found venvs to check after some kills
    assert mid_build >= 5, f"only {mid_build} of 20 kills hit a build in progress"
    assert checked >= 6, f"only {checked} ready venvs were there to check after a kill"


def _programs_run(project: Path, depot: Path, tmp_path: Path, **env: str) -> list[str]:
    """The programs a prolog run (prepare mode) executes, in order, by their base names."""
    if not shutil.which("strace"):
        pytest.fail("strace is not installed (.ci/run installs it)")
    trace = tmp_path / f"exec-{time.monotonic_ns()}.txt"
    r = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", str(trace),
         "bash", str(PROLOG)],
        env=prolog_env(project, depot, **env), capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = trace.read_text().splitlines()
    # failed execs (a PATH search) end in "= -1 ENOENT"; the rest succeeded
    return [
        os.path.basename(line.split('execve("', 1)[1].split('"', 1)[0])
        for line in lines
        if 'execve("' in line and " = -1 " not in line
    ]


def test_a_warm_start_runs_no_program_but_the_hold(project: Path, tmp_path: Path) -> None:
    """The warm path of a job (which carries the hash of the lock it was submitted with) forks
    nothing but the background `flock -s` that holds the venv for gc: no uv (a re-sync would cost
    ~100 ms), no getconf or uv --version (machine facts are cached per boot), nothing to check
    the venv's sampled files (bash's own tests), and no sha256sum: the node's uv.lock is
    compared byte for byte with the copy kept under the submitted hash. Without that hash (or
    with a lock that differs from the copy) one sha256sum hashes the lock as the node sees it."""
    depot = tmp_path / "depot"
    submitted = hashlib.sha256((project / "uv.lock").read_bytes()).hexdigest()
    assert ready_state(prolog(project, depot, UVSLURM_LOCK_HASH=submitted).stderr) == "cold"
    copies = list(depot.glob("*/.lock-*"))
    assert [c.name for c in copies] == [f".lock-{submitted[:16]}"]
    assert copies[0].read_bytes() == (project / "uv.lock").read_bytes()
    progs = _programs_run(project, depot, tmp_path, UVSLURM_LOCK_HASH=submitted)
    assert progs == ["bash", "flock"], progs
    assert _programs_run(project, depot, tmp_path) == ["bash", "sha256sum", "flock"]
    # a copy that does not hold the submitted bytes is not believed: hashed, and still warm
    copies[0].write_text(copies[0].read_text() + "\n# edited\n")
    progs = _programs_run(project, depot, tmp_path, UVSLURM_LOCK_HASH=submitted)
    assert progs == ["bash", "sha256sum", "flock"], progs


def test_machine_facts_are_cached_by_identity_and_follow_the_uv_binary(
    project: Path, tmp_path: Path
) -> None:
    """Facts that cost processes (glibc, uv's version, the CPU, the Python uv finds) are asked
    once, then kept in a file named after what they come from: another uv binary (another
    inode) is asked again, into its own file; one replaced in place (newer) too."""
    depot = tmp_path / "depot"
    first = _programs_run(project, depot, tmp_path, UVSLURM_MODE="fingerprint")
    assert {"getconf", "uv"} <= set(first), first
    facts = list((depot / ".facts").iterdir())
    assert len(facts) == 1 and facts[0].read_text().startswith("glibc="), facts
    again = _programs_run(project, depot, tmp_path, UVSLURM_MODE="fingerprint")
    assert "getconf" not in again and "uv" not in again, again
    # another uv binary (an upgrade) is not the cached one: asked again, into its own file
    uv = tmp_path / "bin" / "uv"
    uv.parent.mkdir()
    real = shutil.which("uv")
    assert real
    uv.write_text(f'#!/bin/sh\nexec {real} "$@"\n')
    uv.chmod(0o755)
    newer = _programs_run(project, depot, tmp_path, UVSLURM_MODE="fingerprint", UVSLURM_UV=str(uv))
    assert "getconf" in newer, newer
    (mine,) = set((depot / ".facts").iterdir()) - set(facts)
    assert f"uv={uv} " in mine.read_text()
    assert f"uv={real} " in facts[0].read_text()
    # the same file changed in place after the facts were kept
    os.utime(mine, (time.time() - 100, time.time() - 100))
    changed = _programs_run(
        project, depot, tmp_path, UVSLURM_MODE="fingerprint", UVSLURM_UV=str(uv)
    )
    assert "getconf" in changed, changed


def test_a_venv_bigger_than_the_free_node_local_space_is_not_copied(
    project: Path, tmp_path: Path
) -> None:
    """The depot venv's marker says how big it is: a node-local disk without room for it is not
    even tried (a copy of many GB that fails at the end costs minutes)."""
    depot, local = tmp_path / "depot", tmp_path / "local"
    local.mkdir()
    venv = Path(prolog(project, depot).stdout.strip())
    marker = venv / ".uvslurm-ready"
    marker.write_text(re.sub(r"(?m)^size_kb=\d+$", "size_kb=10000000000", marker.read_text()))
    r = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local))
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == venv, "ran from a node-local copy it had no room for"
    assert re.search(
        r"warning: node-local \S+ has \d+ KB free, the venv needs 10000000000 KB", r.stderr
    )
    placed = [p.name for p in (local / f"uvslurm-{os.getuid()}").iterdir()]
    assert [n for n in placed if not n.endswith(".lock")] == [], f"a copy was attempted: {placed}"


def test_concurrent_placements_on_one_node_copy_once(project: Path, tmp_path: Path) -> None:
    """Six tasks of a job start at once on a node whose disk has no copy yet: one places it
    under the node's lock, the others wait for it; all run from the same node-local venv."""
    depot, local = tmp_path / "depot", tmp_path / "local"
    local.mkdir()
    assert prolog(project, depot).returncode == 0
    env = prolog_env(project, depot, UVSLURM_NODE_LOCAL=str(local))
    procs = [
        subprocess.Popen(
            ["bash", str(PROLOG)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    venvs = {out.strip() for out, _ in results}
    assert len(venvs) == 1 and Path(venvs.pop()).is_relative_to(local), results
    errs = "".join(err for _, err in results)
    assert errs.count("placed on node-local") == 1, errs
    assert "warning" not in errs, errs


def test_the_hold_on_a_running_venv_is_a_shared_flock_on_a_read_write_descriptor(
    project: Path, tmp_path: Path
) -> None:
    """NFSv4 refuses a shared flock on a write-only descriptor (EBADF, and the error is
    discarded): the job's hold must be taken on a read-write one, or gc removes the venv."""
    depot = tmp_path / "depot"
    assert prolog(project, depot).returncode == 0
    stop = tmp_path / "stop"
    code = f"import os, time\nwhile not os.path.exists({str(stop)!r}): time.sleep(0.05)"
    job = subprocess.Popen(
        ["bash", "-c", f"UVSLURM_CMD=(python -c {shlex.quote(code)}); . \"$1\"", "_", str(PROLOG)],
        env=prolog_env(project, depot, UVSLURM_MODE="run"), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        used = next(depot.glob("*/*/.uvslurm-used"))

        def holder_flags() -> int | None:
            """The open flags of the job's descriptor on .uvslurm-used (`flock -s FD` locks the
            open file that the shell and the command share, and exits)."""
            # (processes come and go while /proc is read: each listing may fail)
            for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                try:
                    fds = os.listdir(f"/proc/{pid}/fd")
                except OSError:
                    continue
                for fd in fds:
                    try:
                        if os.readlink(f"/proc/{pid}/fd/{fd}") != str(used):
                            continue
                        info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                    except OSError:
                        continue
                    return int(info.split("flags:")[1].split()[0], 8)
            return None

        wait_for(lambda: holder_flags() is not None, 30, "the job's descriptor on its venv")
        wait_for(lambda: depot_mod._locked(used), 30, "the job's shared flock on its venv")
        flags = holder_flags()
        assert flags is not None and flags & os.O_ACCMODE == os.O_RDWR, oct(flags or 0)
    finally:
        stop.touch()
        job.communicate(timeout=60)
    assert job.returncode == 0


def test_activate_mode_leaves_only_the_functions_its_exit_trap_calls(
    project: Path, tmp_path: Path
) -> None:
    """The job body runs with the venv active and without the prolog's functions (the
    generated `unset -f`), but for those an EXIT trap that unmounts an image calls."""
    env = prolog_env(project, tmp_path / "depot", UVSLURM_MODE="activate")
    r = subprocess.run(["bash", "-c", '. "$0" && declare -F && echo "VENV $VIRTUAL_ENV"',
                        str(PROLOG)], env=env, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    left = {line.split()[-1] for line in r.stdout.splitlines() if line.startswith("declare -f")}
    assert {f for f in left if f.startswith("_uvslurm_")} == set(KEPT)
    assert f"VENV {ready(r.stderr).venv}" in r.stdout


def test_the_node_step_of_a_job_of_several_nodes_gets_every_function_it_needs(
    project: Path, tmp_path: Path
) -> None:
    """A job of two nodes whose venv runs from node-local disk: the step that places it on every
    node runs, in a fresh bash, only what the prolog sends it (`declare -f` and `declare -p`).
    Here a stand-in for srun runs that step's task twice on this machine, as nodes n1 and n2;
    n2's disk does not have n1's copy."""
    depot, local, bin_dir = tmp_path / "depot", tmp_path / "local", tmp_path / "bin"
    local.mkdir()
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(
        "#!/bin/bash\n"
        'while [[ $1 == --* ]]; do shift; done\n'
        'for node in n1 n2; do\n'
        '  [ "$node" = n2 ] && rm -rf "${@: -1}"\n'
        '  env -i PATH="$PATH" HOME="$HOME" SLURMD_NODENAME=$node "$@" || exit\n'
        "done\n"
    )  # fmt: skip
    srun.chmod(0o755)
    assert prolog(project, depot).returncode == 0  # the depot venv, built outside a job
    r = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local), SLURM_JOB_ID="7",
               SLURM_JOB_NUM_NODES="2", PATH=f"{bin_dir}:{os.environ['PATH']}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert re.search(r"^uvslurm: prepared 2 nodes in \d+ ms: n1: warm \d+ ms; n2: placed \d+ ms$",
                     r.stderr, re.M), r.stderr  # fmt: skip
    assert "every node runs from the depot" not in r.stderr
    venv = Path(r.stdout.strip())
    last = ready(r.stderr)
    assert (last.state, last.venv) == ("placed", venv)
    assert venv.parent == local / f"uvslurm-{os.getuid()}" and (venv / ".uvslurm-ready").is_file()


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its mtime and size: what a write into it would change."""
    return {str(p.relative_to(root)): (p.lstat().st_mtime_ns, p.lstat().st_size)
            for p in root.rglob("*")}  # fmt: skip


@pytest.mark.parametrize("image", ["none", "squashfs"])
def test_placed_and_warm_runs_write_nothing_into_the_shared_uv_cache(
    project: Path, tmp_path: Path, image: str
) -> None:
    """The run step's `uv run --no-sync` probes the interpreter of a venv path it has not seen
    (a new node-local copy, every job's with a per-job TMPDIR; a mounted image's) and would store
    that in uv's cache, on the shared filesystem: it gets a private cache beside the copy (none
    for a mount) instead. The command still sees the user's UV_CACHE_DIR, so a `uv` it runs
    uses the user's cache as before."""
    if image == "squashfs" and not (shutil.which("mksquashfs") and _fuse_usable()):
        pytest.skip("needs squashfs-tools and a FUSE this user can use")
    depot, local = tmp_path / "depot", tmp_path / "local"
    local.mkdir()
    built = prolog(project, depot, UVSLURM_IMAGE=image)
    assert built.returncode == 0, built.stderr
    # the shared cache as a node finds it: uv has run the depot venv from it before
    shared = tmp_path / "shared-uv-cache"
    env = prolog_env(project, depot, "run", UV_CACHE_DIR=str(shared), UVSLURM_IMAGE=image,
                     UVSLURM_NODE_LOCAL=str(local))  # fmt: skip
    subprocess.run(["uv", "run", "--no-sync", "python", "-c", "pass"], cwd=project, check=True,
                   env={**env, "UV_PROJECT_ENVIRONMENT": built.stdout.strip()})  # fmt: skip
    before = _listing(shared)
    assert before, "uv wrote nothing into the cache: the premise of this test does not hold"
    code = ("import os, subprocess; print(os.environ.get('UV_CACHE_DIR')); "
            "print(subprocess.run(['uv', 'cache', 'dir'], capture_output=True, text=True,"
            " check=True).stdout.strip())")  # fmt: skip
    userdir = local / f"uvslurm-{os.getuid()}"
    states = []
    for fresh_disk in (True, False, True):  # placed, warm, placed again (a per-job TMPDIR)
        if fresh_disk:
            shutil.rmtree(userdir, ignore_errors=True)
        r = subprocess.run(["bash", "-c", 'UVSLURM_CMD=(python -c "$1"); . "$2"', "_", code,
                            str(PROLOG)], env=env, capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 0, r.stderr
        states.append(ready_state(r.stderr))
        assert r.stdout.split("\n")[:2] == [str(shared)] * 2, "the command's uv cache changed"
        assert _listing(shared) == before, f"the {states[-1]} run wrote into the shared uv cache"
    assert states == ["placed", "placed" if image == "squashfs" else "warm", "placed"]
    if image == "none":
        assert (userdir / ".uv-cache").is_dir(), "the probe went to the private cache"
    else:
        assert [p.name for p in userdir.iterdir()] == [], "a mount's run leaves nothing behind"


def _old_copies(venv: Path, userdir: Path, ages_h: dict[str, float]) -> None:
    """Node-local copies of `venv` in `userdir` named NAME, last used AGE hours ago."""
    userdir.mkdir(parents=True, exist_ok=True)
    userdir.chmod(0o700)
    now = time.time()
    for name, age in ages_h.items():
        shutil.copytree(venv, userdir / name, symlinks=True)
        used = userdir / name / ".uvslurm-used"
        used.touch()
        os.utime(used, (now - age * 3600, now - age * 3600))


def test_placing_prunes_this_users_oldest_unused_node_local_copies(
    project: Path, tmp_path: Path
) -> None:
    """`depot gc` cannot see node-local disks: placing a copy removes this user's older ones
    (names <project id>-<key> only), oldest last use first, while more than 3 others are left;
    never one a job holds, one another job is placing, or one used in the last hour."""
    depot, local = tmp_path / "depot", tmp_path / "local"
    venv = Path(prolog(project, depot).stdout.strip())
    userdir = local / f"uvslurm-{os.getuid()}"
    pid = project_id(str(project))

    def name(i: int) -> str:
        return f"{pid}-{i:012x}-{i:08x}"

    ages = {name(1): 96, name(2): 72, name(3): 48, name(4): 30, name(5): 20, name(6): 10,
            name(7): 5, name(8): 0.5, name(9): 0.4, name(10): 0.3}  # fmt: skip
    _old_copies(venv, userdir, ages)
    # look-alikes, however old: not names uvslurm makes there, or not a directory of this user's
    _old_copies(venv, userdir, {"notes": 100, f"{name(11)}.old": 100, "proj-123-abc": 100})
    (userdir / f"a{name(12)}").mkdir()
    (userdir / name(13)).symlink_to(userdir / "notes")
    placing = os.open(userdir / f"{name(1)}.lock", os.O_RDWR | os.O_CREAT)
    holding = os.open(userdir / name(2) / ".uvslurm-used", os.O_RDWR)
    try:
        fcntl.flock(placing, fcntl.LOCK_EX)
        fcntl.flock(holding, fcntl.LOCK_SH)
        r = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local))
    finally:
        os.close(placing)
        os.close(holding)
    assert r.returncode == 0, r.stderr
    assert ready_state(r.stderr) == "placed"
    assert re.search(rf"^uvslurm: removed 5 node-local copies unused for an hour or more from "
                     rf"{re.escape(str(userdir))} \(\d+ KB\) in \d+ ms$", r.stderr, re.M), r.stderr  # fmt: skip
    left = {p.name for p in userdir.iterdir()}
    assert {name(i) for i in (3, 4, 5, 6, 7)}.isdisjoint(left), left
    # held, being placed, used within the hour (more than 3 are left: none of them may go)
    assert {name(i) for i in (1, 2, 8, 9, 10)} <= left, left
    assert {"notes", f"{name(11)}.old", "proj-123-abc", f"a{name(12)}", name(13)} <= left
    assert Path(r.stdout.strip()).name in left
    assert not [n for n in left if ".trash-" in n], left


def test_pruning_makes_room_for_the_new_copy(project: Path, tmp_path: Path) -> None:
    """A disk without room for the new copy (`df` says so): older copies go until it has,
    though fewer than 4 would be left."""
    depot, local, bin_dir = tmp_path / "depot", tmp_path / "local", tmp_path / "bin"
    venv = Path(prolog(project, depot).stdout.strip())
    userdir = local / f"uvslurm-{os.getuid()}"
    pid = project_id(str(project))
    ages = {f"{pid}-{i:012x}-{i:08x}": 10.0 + i for i in range(1, 5)}
    _old_copies(venv, userdir, ages)
    bin_dir.mkdir()
    (bin_dir / "df").write_text(
        "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
        "echo 'tmpfs 100 100 0 100% /'\n"
    )
    (bin_dir / "df").chmod(0o755)
    r = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local),
               PATH=f"{bin_dir}:{os.environ['PATH']}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "removed 4 node-local copies" in r.stderr, r.stderr
    assert [p.name for p in userdir.iterdir() if p.name in ages] == []
    # and not one more than the count asks for when the disk has room
    shutil.rmtree(userdir)
    _old_copies(venv, userdir, ages)
    r = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local))
    assert "removed 1 node-local copies" in r.stderr, r.stderr
    assert sorted(p.name for p in userdir.iterdir() if p.name in ages) == sorted(ages)[:3]


def test_a_copy_serves_a_depot_without_its_venv_quietly_but_not_a_job_of_several_nodes(
    project: Path, tmp_path: Path
) -> None:
    """A node-local copy is named by project and key, not by depot: made from one depot, it
    serves a job of another (or of the same after a purge took the venv) without a word about
    the depot venv it could not mark as used. A job of several nodes needs the depot venv (its
    other nodes copy from it): there the depot's venv is made again first."""
    local = tmp_path / "local"
    local.mkdir()
    run = {"UVSLURM_NODE_LOCAL": str(local)}
    first = prolog(project, tmp_path / "depot-a", **run)
    copy = ready(first.stderr).venv
    assert ready_state(first.stderr) == "cold" and copy.is_relative_to(local), first.stderr
    other = tmp_path / "depot-b"
    other.mkdir(mode=0o700)
    r = prolog(project, other, **run)
    assert r.returncode == 0 and (ready_state(r.stderr), ready(r.stderr).venv) == ("warm", copy), r.stderr  # fmt: skip
    assert all(line.startswith("uvslurm: ") for line in r.stderr.splitlines()), r.stderr
    assert not (other / project_id(str(project)) / copy.name[-21:]).exists(), "nothing built"
    # a job of two nodes (no job id: the step that places the other nodes' copies is not run)
    r = prolog(project, other, **run, SLURM_JOB_NUM_NODES="2")
    assert r.returncode == 0 and ready(r.stderr).venv == copy, r.stderr
    assert ready_state(r.stderr) == "cold" and "built" in r.stderr, r.stderr
    assert (other / project_id(str(project)) / copy.name[-21:] / ".uvslurm-ready").is_file()


def test_a_warm_node_local_start_runs_no_program_but_the_hold(
    project: Path, tmp_path: Path
) -> None:
    """The warm path from a node-local copy forks only the background `flock -s` that holds the
    copy against other jobs' pruning, as the depot's warm path holds its venv against gc (a job
    carries the hash of its lock: see test_a_warm_start_runs_no_program_but_the_hold)."""
    depot, local = tmp_path / "depot", tmp_path / "local"
    local.mkdir()
    env = {
        "UVSLURM_NODE_LOCAL": str(local),
        "UVSLURM_LOCK_HASH": hashlib.sha256((project / "uv.lock").read_bytes()).hexdigest(),
    }
    assert ready_state(prolog(project, depot, **env).stderr) == "cold"
    progs = _programs_run(project, depot, tmp_path, **env)
    assert progs == ["bash", "flock"], progs


def test_a_job_running_from_a_node_local_copy_holds_it(project: Path, tmp_path: Path) -> None:
    depot, local = tmp_path / "depot", tmp_path / "local"
    local.mkdir()
    copy = Path(prolog(project, depot, UVSLURM_NODE_LOCAL=str(local)).stdout.strip())
    stop = tmp_path / "stop"
    code = f"import os, time\nwhile not os.path.exists({str(stop)!r}): time.sleep(0.05)"
    job = subprocess.Popen(
        ["bash", "-c", f"UVSLURM_CMD=(python -c {shlex.quote(code)}); . \"$1\"", "_", str(PROLOG)],
        env=prolog_env(project, depot, UVSLURM_MODE="run", UVSLURM_NODE_LOCAL=str(local)),
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: depot_mod._locked(copy / ".uvslurm-used"), 30, "the job's hold on its copy"
        )
    finally:
        stop.touch()
        _, err = job.communicate(timeout=60)
    assert job.returncode == 0, err
    assert ready(err) == ready(err).__class__("warm", ready(err).ms, copy)


def test_pruning_keeps_to_the_grammar_of_node_local_copies_in_names_py() -> None:
    assert f"local name='{names.NODE_COPY.pattern[1:-1]}'" in section_text("place.sh")


def test_a_script_with_inline_metadata_keeps_the_users_uv_cache(
    project: Path, tmp_path: Path
) -> None:
    """uv runs a script with inline metadata (PEP 723) in an environment of its own, kept in
    uv's cache, not in the project's venv: the run step leaves it in the user's cache (where a
    run on the login node already made it), not in the private one beside a node-local copy."""
    depot, local = tmp_path / "depot", tmp_path / "local"
    local.mkdir()
    assert prolog(project, depot).returncode == 0
    script = project / "inline.py"
    script.write_text('"""A job."""\n\n# /// script\n# dependencies = []\n# ///\n'
                      "import sys\nprint(sys.prefix)\n")  # fmt: skip
    cache = tmp_path / "user-uv-cache"
    env = prolog_env(project, depot, "run", UV_CACHE_DIR=str(cache), UVSLURM_NODE_LOCAL=str(local))
    r = subprocess.run(["bash", "-c", 'UVSLURM_CMD=("$1"); . "$2"', "_", str(script), str(PROLOG)],
                       env=env, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert ready_state(r.stderr) == "placed"
    assert Path(r.stdout.strip()).is_relative_to(cache), r.stdout


def _without_the_rest(tmp_path: Path, name: str = "warm-only.sh") -> Path:
    """The joined prolog without its rest (the functions a warm start must not need)."""
    path = tmp_path / name
    path.write_text("#!/bin/bash\n" + warm_text())
    return path


@pytest.mark.parametrize("mode", ["run", "activate", "prepare", "fingerprint"])
@pytest.mark.parametrize("local", [False, True])
def test_a_warm_start_never_reads_the_rest_of_the_prolog(
    project: Path, tmp_path: Path, mode: str, local: bool
) -> None:
    """bash parses a job script as it runs it: a warm start (a ready venv in the depot or on
    node-local disk) runs in every mode from the warm part alone, so bash never parses the
    functions that build, lease, place or prune (docs/design.md). Here that part is all there
    is: a warm start that called one of those functions would stop with exit 75."""
    depot, nl = tmp_path / "depot", tmp_path / "local"
    nl.mkdir()
    over = {"UVSLURM_NODE_LOCAL": str(nl)} if local else {}
    assert ready_state(prolog(project, depot, **over).stderr) == "cold"
    warm_only = _without_the_rest(tmp_path)
    code = "import sys; print('PREFIX', sys.prefix)"
    run = {
        "run": f'UVSLURM_CMD=(python -c {shlex.quote(code)}); . "$1"',
        "activate": '. "$1" && python -c "import sys; print(\'PREFIX\', sys.prefix)"',
    }.get(mode, '. "$1"')
    r = subprocess.run(["bash", "-c", run, "_", str(warm_only)],
                       env=prolog_env(project, depot, mode, **over), capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "is not the uvslurm prolog's" not in r.stderr
    if mode == "fingerprint":
        assert re.search(r"^fingerprint=[0-9a-f]{12}$", r.stdout, re.M), r.stdout
        return
    last = ready(r.stderr)
    assert last.state == "warm"
    assert (last.venv.parent == nl / f"uvslurm-{os.getuid()}") is local
    if mode in ("run", "activate"):
        assert f"PREFIX {last.venv}" in r.stdout


def test_the_rest_of_the_prolog_is_read_from_the_job_script_when_needed(
    project: Path, tmp_path: Path
) -> None:
    """A batch script's body comes between the prolog's warm part and its rest: a cold job
    builds with the rest read from the script's own file (named with shell syntax here), the body
    runs with the venv active and its exit status is the job's; the same script from `bash -c`
    (as `uvslurm srun` runs the job script, in pieces) reads it from that text."""
    job_sh = project / "job.sh"
    job_sh.write_text("#!/bin/bash\n#SBATCH -t 5\npython -c 'import six, sys; print(sys.prefix)'\n"
                      "exit 7\n")  # fmt: skip
    depot, other_depot = tmp_path / "depot", tmp_path / "other depot"
    r = uvslurm("submit", "--dry-run", "job.sh", cwd=project, env={"UVSLURM_DEPOT": str(depot)})
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert text.index("exit 7") < text.index("#### uvslurm prolog, the rest: ")
    script = tmp_path / "d $(touch pwned) 'q\n" / "job.sh"
    script.parent.mkdir()
    script.write_text(text)
    env = {**os.environ, "UVSLURM_NODE_LOCAL": "never"}
    run = subprocess.run(["bash", str(script)], cwd=project, env=env, capture_output=True,
                         text=True)  # fmt: skip
    assert run.returncode == 7, run.stderr
    last = ready(run.stderr)
    assert last.state == "cold" and run.stdout.strip() == str(last.venv)
    assert not list(tmp_path.rglob("pwned"))
    assert last.venv.is_relative_to(depot)
    # the same text through `bash -c` as srun has it, with another depot: built again, from
    # that text
    assert f"UVSLURM_DEPOT={depot}\n" in text
    body = text.replace("exit 7\n", "").replace(
        f"UVSLURM_DEPOT={depot}\n", f"UVSLURM_DEPOT={shlex.quote(str(other_depot))}\n"
    )
    other = subprocess.run(srun.bash_argv(body), cwd=project, capture_output=True, text=True,
                           env=env)  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert ready_state(other.stderr) == "cold" and ready(other.stderr).venv.is_relative_to(
        other_depot
    )


def test_a_job_script_whose_rest_is_gone_stops_with_one_line_when_it_needs_it(
    project: Path, tmp_path: Path
) -> None:
    """A job script edited after its end (or cut short): a cold start cannot build without the
    rest; it says so in one line, exits 75, and leaves no venv and no lease behind."""
    depot = tmp_path / "depot"
    r = subprocess.run(["bash", str(_without_the_rest(tmp_path))],
                       env=prolog_env(project, depot), capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 75
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert errors == [
        f"uvslurm: error: the end of the job script {tmp_path}/warm-only.sh is not the uvslurm"
        " prolog's (its last lines hold the code that builds and places venvs); submit the job"
        " again with uvslurm"
    ], r.stderr
    assert not [p for p in depot.rglob("*") if p.is_dir() and names.JOB_VENV.match(p.name)]
    assert not list(depot.rglob(".*.lease"))


def test_the_hold_ends_soon_after_the_job(project: Path, tmp_path: Path) -> None:
    """Where Slurm does not kill what a job leaves behind, the hold's background loop must not
    outlive the job by more than a step (5 s), let alone its one-minute beat."""
    depot = tmp_path / "depot"
    assert prolog(project, depot).returncode == 0
    body = '. "$1" || exit\necho "DONE $VIRTUAL_ENV"'
    p = subprocess.Popen(["bash", "-c", body, "_", str(PROLOG)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=prolog_env(project, depot, "activate"))  # fmt: skip
    out, err = p.communicate(timeout=50)
    assert p.returncode == 0 and out.startswith("DONE "), err
    assert ready(err).venv.is_relative_to(depot), err

    def left() -> list[str]:
        ps = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(p.pid)], capture_output=True,
                            text=True)  # fmt: skip
        return ps.stdout.split("\n")[:-1]

    assert left(), "the premise: the hold's loop runs in the job's session after its shell"
    deadline = time.monotonic() + 9
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left(), left()


def test_outside_a_job_the_hold_records_a_use_every_minute(project: Path, tmp_path: Path) -> None:
    """Outside a Slurm job (no job id to name beside the venv) a run from the depot venv
    records a use every 12 steps of the hold's loop, which `depot gc`/`rm` on another node see
    on a depot whose flocks do not reach across nodes. A `sleep` that takes 0.02 s instead of 5
    makes the minute 0.24 s."""
    depot = tmp_path / "depot"
    assert prolog(project, depot).returncode == 0
    fake = tmp_path / "fastsleep"
    fake.mkdir()
    (fake / "sleep").write_text("#!/bin/sh\nexec /bin/sleep 0.02\n")
    (fake / "sleep").chmod(0o755)
    body = (
        '. "$1" || exit\nused=$VIRTUAL_ENV/.uvslurm-used\ntouch -d "1 hour ago" "$used"\n'
        '/bin/sleep 1.5\necho "AGE $(( $(date +%s) - $(stat -c %Y "$used") ))"'
    )
    env = prolog_env(project, depot, "activate", PATH=f"{fake}:{os.environ['PATH']}")
    env.pop("SLURM_JOB_ID", None)
    r = subprocess.run(["bash", "-c", body, "_", str(PROLOG)], capture_output=True, text=True,
                       env=env, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    age = int(r.stdout.split("AGE ")[1])
    assert age < 5, f"the use was not recorded again ({age} s old)"


@pytest.mark.parametrize("local", [False, True])
def test_a_batch_scripts_wait_does_not_wait_for_the_hold(
    project: Path, tmp_path: Path, local: bool
) -> None:
    """A job running from the depot venv refreshes its hold from a background process for as
    long as it lives; a batch script's body that runs `wait` (for its own `srun ... &`) must
    not wait for that process too, which would never end. Same where the venv could have been
    placed on node-local disk (the hold then starts once the venv is known)."""
    depot, nl = tmp_path / "depot", tmp_path / "on-the-depot-fs"
    nl.mkdir()
    # node-local "auto" whose only candidate is on the depot's filesystem: the depot it is
    over = {"UVSLURM_NODE_LOCAL": "auto", "TMPDIR": str(nl)} if local else {}
    assert prolog(project, depot, **over).returncode == 0
    body = '. "$1" || exit\n(sleep 0.2; echo MINE) &\nwait\necho "DONE $VIRTUAL_ENV"'
    t0 = time.monotonic()
    r = subprocess.run(["bash", "-c", body, "_", str(PROLOG)], capture_output=True, text=True,
                       env=prolog_env(project, depot, "activate", **over), timeout=50)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 30
    last = ready(r.stderr)
    assert last.state == "warm" and last.venv.is_relative_to(depot), r.stderr
    assert r.stdout.split("\n")[:2] == ["MINE", f"DONE {last.venv}"], r.stdout
