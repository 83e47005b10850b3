"""`uvslurm depot` on real depots built by the prolog, with real jobs holding their venvs."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import Cluster, log_text, prolog_env, ready, ready_lines, uvslurm, wait_for
from test_prolog import PROLOG, prolog, ready_state
from uvslurm import depot, paths

MPICH1 = {"LOADEDMODULES": "mpich/1.0", "_LMFILES_": "/m/mpich/1.0"}
MPICH2 = {"LOADEDMODULES": "mpich/2.0", "_LMFILES_": "/m/mpich/2.0"}


def _build(project: Path, depot_root: Path, **env: str) -> Path:
    r = prolog(project, depot_root, **env)
    assert r.returncode == 0, r.stderr
    return Path(r.stdout.strip())


def _age(path: Path, days: float) -> None:
    t = time.time() - days * 86400
    os.utime(path, (t, t))


def _depot(args: list[str], cwd: Path, root: Path, check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return uvslurm("depot", *args, cwd=cwd, env={"UVSLURM_DEPOT": str(root)}, check=check)


def _list(cwd: Path, root: Path) -> dict[Path, dict[str, object]]:
    return {Path(r["path"]): r for r in json.loads(_depot(["list", "--json"], cwd, root).stdout)}


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Another process's lock, as a builder (key lock) or placer holds it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


class Job:
    """The rendered job script run by bash as a node runs it: the command waits for `release`."""

    def __init__(self, project: Path, root: Path, tmp: Path, **env: str) -> None:
        self.started, self.stop = tmp / "started", tmp / "stop"
        code = (
            "import os, sys, time; open(sys.argv[1], 'w').write(sys.prefix)\n"
            "while not os.path.exists(sys.argv[2]): time.sleep(0.02)"
        )
        r = uvslurm("submit", "--dry-run", "--no-node-local", "--", "python", "-c", code,
                    str(self.started), str(self.stop), cwd=project,
                    env={"UVSLURM_DEPOT": str(root), **env})  # fmt: skip
        assert r.returncode == 0, r.stderr
        (tmp / "job.sh").write_text(r.stdout)
        self.proc = subprocess.Popen(
            ["bash", str(tmp / "job.sh")], cwd=project, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "UVSLURM_DEPOT": str(root), **env},
        )  # fmt: skip

        def started() -> bool:
            assert self.proc.poll() is None, self.proc.communicate()[1]
            return self.started.exists()

        wait_for(started, 60, "the job's command to start")
        self.venv = Path(self.started.read_text())
        # the prolog holds the venv from a background flock: wait until it does
        wait_for(lambda: depot._locked(self.venv / depot.USED), 30, "the job's hold on its venv")

    def release(self) -> str:
        self.stop.touch()
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err


def test_path_is_the_configured_or_default_depot(project: Path, isolated_user: Path) -> None:
    r = uvslurm("depot", "path", cwd=project, check=True)
    assert r.stdout.strip() == str(isolated_user / "scratch" / "uvslurm")
    assert _depot(["path"], project, Path("/x/y")).stdout.strip() == "/x/y"


def test_list_shows_each_venv_with_project_fingerprint_size_inodes_and_use(
    project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "depot"
    a, b = _build(project, root, **MPICH1), _build(project, root, **MPICH2)
    # a build dir without its marker (e.g. copied in by hand), and the interactive venv of `env`
    (a.parent / "0123456789ab-deadbeef").mkdir()
    shell = a.parent / "shell-0123456789ab"
    shutil.copytree(a, shell, symlinks=True)
    (shell / depot.MARKER).unlink()
    _age(a / depot.USED, 3)
    rows = _list(project, root)
    assert set(rows) == {a, b, a.parent / "0123456789ab-deadbeef", shell}
    assert rows[a]["kind"] == rows[b]["kind"] == "job"
    assert rows[a.parent / "0123456789ab-deadbeef"]["kind"] == "incomplete"
    assert rows[shell]["kind"] == "interactive" and rows[shell]["project"] == str(project)
    assert rows[a]["project"] == str(project) and rows[a]["project_exists"] is True
    summary = str(rows[a]["summary"])
    assert "mpich/1.0" in summary and "python 3.11" in summary and "x86_64" in summary
    assert "mpich/2.0" in str(rows[b]["summary"])
    assert rows[a]["fingerprint"] == a.name.split("-")[0]
    # size and inodes as du and find count them
    du = subprocess.run(["du", "-sk", str(a)], capture_output=True, text=True).stdout.split()[0]
    nfiles = subprocess.run(["find", str(a)], capture_output=True, text=True).stdout.count("\n")
    assert rows[a]["size_bytes"] == int(du) * 1024 and rows[a]["inodes"] == nfiles
    assert rows[a]["last_used_ago"] == "3 d ago" and rows[b]["last_used_ago"] == "0 min ago"
    assert rows[a]["in_use"] is False
    table = _depot(["list"], project, root).stdout
    assert "mpich/1.0" in table and "(incomplete)" in table and "(interactive)" in table


def test_list_reads_a_project_path_with_a_newline(project: Path, tmp_path: Path) -> None:
    odd = tmp_path / "a\nsize_kb=1"
    shutil.copytree(project, odd)
    root = tmp_path / "depot"
    venv = _build(odd, root)
    rows = _list(project, root)
    assert rows[venv]["project"] == str(odd) and rows[venv]["project_exists"] is True
    shutil.rmtree(odd)
    assert _list(project, root)[venv]["project_exists"] is False


def test_list_says_when_the_depot_is_missing_or_empty(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "purged"
    out = _depot(["list"], project, root).stdout
    assert "does not exist" in out and "rebuilds" in out
    assert json.loads(_depot(["list", "--json"], project, root).stdout) == []
    root.mkdir()
    assert "no venvs" in _depot(["list"], project, root).stdout


def test_each_job_start_records_the_last_use(project: Path, tmp_path: Path) -> None:
    root, local = tmp_path / "depot", tmp_path / "local"
    local.mkdir()
    placed = _build(project, root, UVSLURM_NODE_LOCAL=str(local))  # built, then placed
    assert placed.is_relative_to(local)
    used = next(depot.venvs(root)).path / depot.USED
    for node_local in ("never", str(local)):  # warm in the depot; warm on node-local disk
        _age(used, 10)
        r = prolog(project, root, UVSLURM_NODE_LOCAL=node_local)
        assert ready_state(r.stderr) == "warm"
        assert time.time() - used.stat().st_mtime < 60, node_local


def test_a_running_job_holds_its_venv_against_gc_and_rm(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "depot"
    other = _build(project, root, **MPICH1)
    job = Job(project, root, tmp_path)
    try:
        assert job.venv != other
        _age(job.venv / depot.USED, 90)  # a job running for longer than --older-than
        _age(other / depot.USED, 90)
        rows = _list(project, root)
        assert rows[job.venv]["in_use"] is True and rows[other]["in_use"] is False
        dry = _depot(["gc", "--dry-run"], project, root)
        assert f"would remove {other}" in dry.stdout and str(job.venv) not in dry.stdout
        assert "a running job uses it" in dry.stderr and other.exists()
        gc = _depot(["gc"], project, root)
        assert not other.exists() and job.venv.exists()
        assert f"kept {job.venv}: a running job uses it" in gc.stderr.replace("\n", " ")
        rm = _depot(["rm"], project, root, check=False)
        assert rm.returncode == 1 and "kept 1" in rm.stdout and job.venv.exists()
    finally:
        log = job.release()
    assert ready_state(log) == "cold"  # built by the job, for the job
    # the job ended: nothing holds the venv any more
    assert _list(project, root)[job.venv]["in_use"] is False
    _depot(["gc", "--older-than", "30"], project, root)
    assert not job.venv.exists()


def test_gc_removes_unused_venvs_but_not_one_being_built(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "depot"
    a, b = _build(project, root, **MPICH1), _build(project, root, **MPICH2)
    fresh = _build(project, root)
    for v in (a, b):
        _age(v / depot.USED, 40)
    dry = _depot(["gc", "--older-than", "30", "--dry-run"], project, root)
    assert "would remove" in dry.stdout and a.exists() and b.exists()
    with _flock(b.parent / f"{b.name}.lock"):  # a job is repairing or placing b right now
        r = _depot(["gc", "--older-than", "30"], project, root)
    assert not a.exists() and not Path(f"{a}.lock").exists()
    assert b.exists() and "building or placing" in r.stderr and fresh.exists()
    assert f"removed {a}: unused for 40 days" in r.stdout
    # the next job simply rebuilds what gc removed
    again = prolog(project, root, **MPICH1)
    assert ready_state(again.stderr) == "cold" and Path(again.stdout.strip()) == a


def test_gc_removes_venvs_whose_project_is_gone(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "depot"
    gone = tmp_path / "gone"
    shutil.copytree(project, gone)
    venv = _build(gone, root)
    keep = _build(project, root)
    shutil.rmtree(gone)
    r = _depot(["gc"], project, root)
    assert f"its project {gone} is gone" in r.stdout
    assert not venv.parent.exists(), "the project's depot directory goes with its last venv"
    assert keep.exists()


def test_gc_removes_what_killed_builders_left_but_not_a_live_builds(
    project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "depot"
    venv = _build(project, root)
    pdir, key = venv.parent, venv.name
    other = key[:-1] + ("0" if key[-1] != "0" else "1")  # another key of the depot's grammar
    dead = pdir / f".{other}.build-n1-4242"  # its builder was killed: nobody holds its lock
    live = pdir / ".aaaaaaaaaaaa-bbbbbbbb.build-n2-77"
    trash = pdir / f".{key}.trash-999"
    for d in (dead, live, trash):
        (d / "lib").mkdir(parents=True)
    # another node's build in progress, where flocks do not reach across nodes: its lock is
    # free here, but its builder's heartbeat touched it just now
    elsewhere = pdir / ".eeeeeeeeeeee-ffffffff.build-n2-0123abcd-79"
    (elsewhere / "lib").mkdir(parents=True)
    orphan_lock = pdir / "cccccccccccc-dddddddd.lock"
    orphan_lock.touch()
    wheel_build = root / ".wheels" / "mpi4py-4.0.0" / ".0123456789ab.build-n1-5"
    wheel_build.mkdir(parents=True)
    stopped = time.time() - 11 * 60  # the heartbeat of a killed builder stopped long ago
    for d in (dead, wheel_build):
        os.utime(d, (stopped, stopped))
    dead_pack = pdir / f"{key}.squashfs.tmp-4243"  # a packer killed under the (free) key lock
    live_pack = pdir / "aaaaaaaaaaaa-bbbbbbbb.tar.zst.tmp-78"
    for f in (dead_pack, live_pack):
        f.write_bytes(b"x" * 100)
    with _flock(pdir / "aaaaaaaaaaaa-bbbbbbbb.lock"):
        r = _depot(["gc"], project, root)
    assert not dead_pack.exists() and live_pack.exists()
    assert not dead.exists() and not trash.exists() and not orphan_lock.exists()
    assert not wheel_build.exists()
    assert live.exists() and "its owner is still running" in r.stderr
    assert elsewhere.exists() and f"{elsewhere}: its owner is still running" in r.stderr
    assert venv.exists() and (pdir / f"{key}.lock").exists()
    assert ready_state(prolog(project, root).stderr) == "warm"


def test_gc_removes_rebuilt_wheels_unused_for_days(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "depot"
    pkg = root / ".wheels" / "mpi4py-4.0.0"
    old, new, building = pkg / "0123456789ab", pkg / "ba9876543210", pkg / "abcabcabcabc"
    for d in (old, new, building):
        d.mkdir(parents=True)
        (d / "mpi4py-4.0.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"x" * 5000)
        (d / depot.USED).touch()
    _age(old / depot.USED, 60)
    _age(building / depot.USED, 60)
    with _flock(pkg / "abcabcabcabc.lock"):
        r = _depot(["gc", "--older-than", "30"], project, root)
    assert not old.exists() and new.exists() and building.exists()
    assert "rebuilt wheel unused for 60 days" in r.stdout and "a build is using it" in r.stderr


def test_a_job_that_starts_while_gc_removes_its_venv_keeps_it(
    project: Path, tmp_path: Path
) -> None:
    """gc read the venv as unused; a job starts (touches .uvslurm-used) before gc renames it:
    gc gives it back rather than pull it from under the job."""
    root = tmp_path / "depot"
    venv = _build(project, root)
    _age(venv / depot.USED, 40)
    (seen,) = list(depot.venvs(root))
    assert ready_state(prolog(project, root).stderr) == "warm"  # the job starts now
    with pytest.raises(depot.Busy, match="started using it just now"):
        depot.remove(seen)
    assert venv.is_dir() and (venv / depot.MARKER).is_file()
    assert ready_state(prolog(project, root).stderr) == "warm"
    depot.remove(next(depot.venvs(root)))  # read again: nothing changed since
    assert not venv.exists()


def test_a_builder_waiting_on_a_lock_that_gc_deletes_locks_the_new_file(
    project: Path, tmp_path: Path
) -> None:
    """gc deletes a lock file while holding it; a prolog that waited on it must not then build
    beside another process that locked the new file at the same path."""
    root = tmp_path / "depot"
    venv = Path(prolog(project, root, "fingerprint").stdout.split("venv=")[1].split("\n")[0])
    venv.parent.mkdir(parents=True)
    lock = venv.parent / f"{venv.name}.lock"
    first = os.open(lock, os.O_WRONLY | os.O_CREAT)
    fcntl.flock(first, fcntl.LOCK_EX)
    env = prolog_env(project, root)
    waiter = subprocess.Popen(["bash", str(PROLOG)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (lock.exists() and _waiting(waiter.pid)):
            assert time.monotonic() < deadline and waiter.poll() is None
            time.sleep(0.02)
        lock.unlink()  # what depot.remove does, holding the lock
        second = os.open(lock, os.O_WRONLY | os.O_CREAT)  # a later builder's lock
        fcntl.flock(second, fcntl.LOCK_EX)
        os.close(first)
        # the event that proves it: the waiter, let go on the deleted file, notices and waits
        # on the new one (a waiter without the re-check builds instead, or finishes)
        new_inode = os.fstat(second).st_ino
        deadline = time.monotonic() + 30
        while not _waiting_on(waiter.pid, new_inode):
            assert waiter.poll() is None, "the waiter went on while another process held the lock"
            assert not venv.exists(), "the waiter built while another process held the lock"
            assert time.monotonic() < deadline, "the waiter never waited on the new lock file"
            time.sleep(0.02)
        assert not venv.exists()
        os.close(second)
        _, err = waiter.communicate(timeout=120)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0, err
    assert "waiting for another process" in err and ready_state(err) == "cold"


def _waiting_on(pid: int, inode: int) -> bool:
    """Is a `flock` child of the prolog `pid` blocked on the file with this inode?"""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return False
    for child in children:
        try:
            if Path(f"/proc/{child}/comm").read_text().strip() != "flock":
                continue
            fds = list(Path(f"/proc/{child}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if fd.stat().st_ino == inode:
                    return True
            except OSError:
                continue
    return False


def _waiting(pid: int) -> bool:
    """Is the prolog `pid` blocked in `flock` (its child)?"""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return any(Path(f"/proc/{c}/comm").read_text().strip() == "flock" for c in children)
    except OSError:
        return False


def test_rm_removes_one_project_by_path_name_or_from_inside_it(
    project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "depot"
    other = tmp_path / "other"
    shutil.copytree(project, other)
    a = _build(project, root, **MPICH1)
    _build(project, root, **MPICH2)
    keep = _build(other, root)
    r = _depot(["rm"], project, root)
    assert "removed the venvs of" in r.stdout and not a.parent.exists() and keep.exists()
    # a project that is gone already, by its path
    shutil.rmtree(other)
    _depot(["rm", str(other)], tmp_path, root)
    assert not keep.parent.exists()
    # by the directory name `depot list` shows
    v = _build(project, root)
    _depot(["rm", v.parent.name], tmp_path, root)
    assert not v.parent.exists()
    assert "no venvs of" in _depot(["rm", str(project)], tmp_path, root).stdout


@pytest.mark.slurm
def test_a_job_on_a_compute_node_holds_its_venv(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    """A real job on a real node: `depot gc` on the login node leaves its venv alone until it
    ends, then removes it."""
    stop = tmp_path / "stop"
    log = tmp_path / "job.log"
    code = f"import os, time\nwhile not os.path.exists({str(stop)!r}): time.sleep(0.2)"
    r = uvslurm("submit", "--no-node-local", "-o", str(log), "-e", str(log), "-t", "5",
                "--parsable", "--", "python", "-c", code, cwd=project)  # fmt: skip
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip()
    try:
        wait_for(lambda: ready_lines(log_text(log)), 120, "the job to start")
        venv = ready(log_text(log)).venv
        # the job named itself beside its venv before the ready line: gc asks Slurm about it
        assert [h.job for h in depot.job_holds(venv)] == [job_id]
        assert not depot._locked(venv / depot.USED), "a job holds without a flock"
        root = venv.parent.parent
        _age(venv / depot.USED, 90)
        gc = _depot(["gc"], project, root)
        assert venv.exists() and f"job {job_id} runs from it" in gc.stderr
    finally:
        stop.touch()
    wait_for(lambda: not cluster.run("squeue", "-h", "-j", job_id).stdout.strip(), 120,
             "the job to end")  # fmt: skip
    _depot(["gc"], project, root)
    assert not venv.exists()


@pytest.mark.slurm
def test_on_a_per_node_depot_a_jobs_hold_keeps_its_venv_from_rm_and_gc_on_the_login_node(
    cluster: Cluster, project: Path, tmp_path: Path, dev_depot: Callable[[str], Path]
) -> None:
    """Issue 10: a depot whose flocks exclude within one node only (bindfs per node namespace,
    as BeeGFS by default, Lustre -o localflock, NFS -o local_lock=all). A shared flock on n1
    would be invisible from the login node; `uvslurm doctor` finds the locks per node and writes
    it down in the depot. A job's hold does not rest on flock: it names itself beside the venv,
    and gc and rm on the login node ask Slurm whether it still runs."""
    root = dev_depot("pernode")
    env = {"UVSLURM_DEPOT": str(root)}
    paths.ensure_depot(root)
    end = time.monotonic() + 600
    while True:  # doctor's probe needs both nodes at once: other tests' jobs may hold them
        doctor = uvslurm("doctor", "--json", cwd=project, env=env)
        got = next(c for c in json.loads(doctor.stdout) if c["what"] == "depot locks")
        if "nodes are busy" not in got["detail"] or time.monotonic() > end:
            break
        time.sleep(5)
    assert got["detail"].startswith("per node only: a flock held on n1 does not exclude n2"), got
    assert depot.locks(root)[0] == "per-node"
    stop, log = tmp_path / "stop", tmp_path / "job.log"
    code = f"import os, time\nwhile not os.path.exists({str(stop)!r}): time.sleep(0.2)"
    r = uvslurm("submit", "-w", "n1", "--no-node-local", "-o", str(log), "-e", str(log), "-t", "5",
                "--parsable", "--", "python", "-c", code, cwd=project, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip()
    try:
        wait_for(lambda: ready_lines(log_text(log)), 300, "the job to start")
        venv = ready(log_text(log)).venv
        assert venv.parent.parent == root
        used = venv / depot.USED
        # the premise: from here, a flock on n1 would not be seen (and the job holds none)
        assert not depot._locked(used)
        rm = _depot(["rm"], project, root, check=False)
        assert rm.returncode == 1 and "kept 1" in rm.stdout, rm.stdout + rm.stderr
        assert f"job {job_id} runs from it" in rm.stderr.replace("\n", " ")
        # however old its last use looks
        t = time.time() - depot.HOLD_FRESH - 5
        os.utime(used, (t, t))
        gc = _depot(["gc", "--older-than", "0"], project, root)
        assert venv.exists() and f"kept {venv}: job {job_id} runs" in gc.stderr.replace(
            "\n", " "
        ), gc.stderr
    finally:
        stop.touch()
    wait_for(lambda: not cluster.run("squeue", "-h", "-j", job_id).stdout.strip(), 120,
             "the job to end")  # fmt: skip
    assert ready(log_text(log)).state == "cold"
    # the job is gone, as Slurm says: rm removes the venv
    rm = _depot(["rm"], project, root, check=False)
    assert rm.returncode == 0 and not venv.exists(), rm.stdout + rm.stderr
