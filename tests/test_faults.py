"""Faults of the machinery around a job: a depot without working file locks (real syscall fault
injection with strace), the depot deleted under a running job, a full node-local disk."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Cluster, prolog_env, uvslurm, wait_for
from conftest import ready as last_ready
from uvslurm.nodeenv import prolog_argv, prolog_file

# real fault injection: flock(2) fails with ENOLCK, as on a filesystem without lock support
# (NFS without lockd, Lustre mounted without -o flock)
STRACE_NO_FLOCK = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "inject=flock:error=ENOLCK"]


def ready(text: str) -> tuple[str, Path]:
    last = last_ready(text)
    return last.state, last.venv


def run_prolog(
    project: Path, depot: Path, *, wrap: list[str] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    with prolog_file() as fd:
        return subprocess.run(
            [*(wrap or []), *prolog_argv(fd)], pass_fds=(fd,),
            env=prolog_env(project, depot, **env), capture_output=True, text=True, timeout=120,
        )  # fmt: skip


@pytest.fixture
def no_flock(project: Path, tmp_path: Path) -> list[str]:
    """A command prefix under which every flock on the depot's lock files of PROJECT's venv
    fails, while uv's own locks (its cache is elsewhere) keep working."""
    if not shutil.which("strace"):
        pytest.skip("needs strace")
    probe = subprocess.run(
        [*STRACE_NO_FLOCK, "flock", "-n", "/dev/null", "true"], capture_output=True
    )
    if b"No locks available" not in probe.stderr:
        pytest.skip(f"strace cannot inject faults here: {probe.stderr!r}")
    fp = run_prolog(project, tmp_path / "depot", UVSLURM_MODE="fingerprint")
    venv = next(x[5:] for x in fp.stdout.splitlines() if x.startswith("venv="))
    return [*STRACE_NO_FLOCK, "-P", f"{venv}.lock", "-P", f"{venv}/.uvslurm-used"]


def test_depot_without_working_flock_builds_under_a_lease_and_says_so(
    project: Path, tmp_path: Path, no_flock: list[str]
) -> None:
    """No working flock on the key's lock file and on the hold (ENOLCK): the job still builds,
    taking the key's lease instead; the log says once that flock does not work and once that
    the venv cannot be held against gc; no lease is left behind. The warm path, where only the
    hold fails, says the latter."""
    depot = tmp_path / "depot"
    r = run_prolog(project, depot, wrap=no_flock)
    assert r.returncode == 0, r.stderr
    assert ready(r.stderr)[0] == "cold"
    assert "Traceback" not in r.stderr and "error" not in r.stderr, r.stderr
    notes = [x for x in r.stderr.splitlines() if "flock does not work" in x]
    assert len(notes) == 2, r.stderr
    assert notes[0].startswith("uvslurm: note: flock does not work on the filesystem of ")
    assert notes[1].startswith("uvslurm: warning: cannot hold ")
    assert not list(depot.rglob(".*.lease")) and not list(depot.rglob(".*.build-*"))
    warm = run_prolog(project, depot, wrap=no_flock)
    assert warm.returncode == 0, warm.stderr
    assert ready(warm.stderr) == ("warm", Path(r.stdout.strip()))
    assert "warning: cannot hold" in warm.stderr and "note:" not in warm.stderr


def test_depot_gc_without_working_flock_keeps_venvs_and_does_not_crash(
    project: Path, tmp_path: Path, no_flock: list[str]
) -> None:
    """gc must not remove a venv it cannot lock (a job may be using it), and says so in a
    line, not a traceback."""
    depot = tmp_path / "depot"
    built = run_prolog(project, depot)
    assert built.returncode == 0, built.stderr
    venv = Path(built.stdout.strip())
    old = time.time() - 90 * 86400
    os.utime(venv / ".uvslurm-used", (old, old))
    # gc keeps what it cannot lock and succeeds; rm fails, since it could not do what was asked
    for args, code in ((["gc"], 0), (["gc", "--older-than", "0"], 0), (["rm"], 1)):
        r = subprocess.run(
            [*no_flock, sys.executable, "-m", "uvslurm", "depot", *args],
            cwd=project, env={**os.environ, "UVSLURM_DEPOT": str(depot)},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "Traceback" not in r.stderr and "unexpected error" not in r.stderr, r.stderr
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert (venv / ".uvslurm-ready").is_file(), f"depot {args} removed a venv it could not lock"
        assert str(venv) in r.stdout + r.stderr, (args, r.stdout, r.stderr)


def _wait_for(path: Path, proc: subprocess.Popen[str], seconds: float) -> None:
    def appeared() -> bool:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the job ended before {path.name} appeared:\n{out}\n{err}")
        return path.exists()

    wait_for(appeared, seconds, f"{path.name} to appear")


HOLD_PY = """\
import json, os, sys, time
from pathlib import Path
import six
flag = Path(os.environ["UVSLURM_TEST_FLAG"])
Path(str(flag) + ".started").write_text(sys.prefix)
deadline = time.time() + 60
while not Path(str(flag) + ".go").exists() and time.time() < deadline:
    time.sleep(0.05)
print("AFTER " + json.dumps({"prefix_exists": os.path.exists(sys.prefix), "six": six.__version__}))
"""


@pytest.mark.slurm
@pytest.mark.slow
def test_depot_deleted_while_a_job_runs_from_it(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    """The whole depot is removed while a job runs from its venv: the job ends (no hang),
    successfully or with a clear message, and the next job rebuilds and succeeds."""
    (project / "hold.py").write_text(HOLD_PY)
    depot = Path(os.environ["SCRATCH"]) / "uvslurm"
    flag, log = tmp_path / "flag", tmp_path / "held.log"
    job = subprocess.Popen(
        [sys.executable, "-m", "uvslurm", "submit", "--wait", "--no-node-local",
         "-o", str(log), "-e", str(log), "hold.py"],
        cwd=project, env={**os.environ, "UVSLURM_TEST_FLAG": str(flag)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert job.stdout is not None
    job_id = job.stdout.readline().strip()  # printed as soon as sbatch took the job
    if not job_id.isdigit():
        raise AssertionError(f"not submitted: {job_id}{job.communicate()[1]}")
    try:
        _wait_for(Path(f"{flag}.started"), job, 120)
        prefix = Path(Path(f"{flag}.started").read_text())
        assert prefix.is_relative_to(depot), "the job does not run from the depot"
        shutil.rmtree(depot)
        Path(f"{flag}.go").touch()
        _, err = job.communicate(timeout=90)  # a hang fails here
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGTERM)
        job.wait()
        cluster.run("scancel", job_id)
        raise
    text = log.read_text()
    if job.returncode == 0:
        assert 'AFTER {"prefix_exists": false' in text, text
    else:
        tail = [x for x in text.splitlines() if x.strip()][-1]
        assert re.match(r"(uvslurm: error: |\w+Error: )", tail), f"unclear failure:\n{err}\n{text}"
    # the next job finds nothing and builds again
    nxt = tmp_path / "next.log"
    r = uvslurm("submit", "--wait", "--no-node-local", "-o", str(nxt), "-e", str(nxt), "train.py",
                cwd=project)  # fmt: skip
    assert r.returncode == 0, r.stderr + (nxt.read_text() if nxt.exists() else "")
    state, venv = ready(nxt.read_text())
    assert state == "cold", nxt.read_text()
    assert venv == prefix and (venv / ".uvslurm-ready").is_file()


def _node_mount_ns(conf: str, node: str) -> str:
    """The mount namespace the dev cluster's NODE runs jobs in: its slurmd's (each node may
    have one of its own, where mounts made here later do not show)."""
    want = ["slurmd", "-D", "-f", conf, "-N", node]
    for proc in Path("/proc").iterdir():
        try:
            if (proc / "cmdline").read_bytes().split(b"\0")[:-1] == [w.encode() for w in want]:
                return str(proc / "ns" / "mnt")
        except OSError:
            continue
    pytest.skip(f"no slurmd of {node} found")


@pytest.mark.slurm
@pytest.mark.slow
def test_full_node_local_disk_in_a_real_job_runs_from_the_depot(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    """A tiny tmpfs (16 inodes) as node-local disk, mounted where n1 runs its jobs."""
    if not shutil.which("nsenter"):
        pytest.skip("needs nsenter")
    on_node = ["nsenter", f"--mount={_node_mount_ns(cluster.env['SLURM_CONF'], 'n1')}", "--"]
    full = tmp_path / "full"
    full.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=16", "tmpfs", str(full)]
    if subprocess.run([*on_node, *mount], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        log = tmp_path / "full.log"
        r = uvslurm("submit", "--wait", "-w", "n1", "-o", str(log), "-e", str(log), "train.py",
                    cwd=project, env={"UVSLURM_NODE_LOCAL": str(full)})  # fmt: skip
        text = log.read_text() if log.exists() else ""
        assert r.returncode == 0, r.stderr + text
        assert re.search(rf"^uvslurm: warning: .*{re.escape(str(full))}.*using the depot", text,
                         re.M), text  # fmt: skip
        _, venv = ready(text)
        assert venv.is_relative_to(Path(os.environ["SCRATCH"]) / "uvslurm"), text
        assert f'"prefix": "{venv}"' in text, "the program did not run from the depot venv"
        left = subprocess.run([*on_node, "ls", "-A", str(full / f"uvslurm-{os.getuid()}")],
                              capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
        assert all(n.endswith(".lock") for n in left), f"a partial copy was left behind: {left}"
    finally:
        subprocess.run([*on_node, "umount", str(full)], capture_output=True)
