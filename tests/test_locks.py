"""Builders on shared filesystems whose file locks exclude across nodes, per node only, or not at
all (docs/design.md, "One builder per key"). Two bindfs views of one directory model two nodes
whose flocks do not see each other; a bindfs whose flock always fails models Lustre without
`-o flock`. The prolog runs for real; SLURMD_NODENAME says which node each run plays."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import (
    DEPOT_FS,
    PROLOG,
    Cluster,
    log_text,
    missing_files,
    prolog_env,
    ready,
    uvslurm,
    wait_for,
)
from test_crash import VERIFY, _gone, _uv_that_builds_slowly
from uvslurm import depot as depot_mod


def _uv_wrapper(tmp_path: Path, name: str, sync: str) -> Path:
    """uv itself, except that `uv sync` first runs the bash in `sync`."""
    real = subprocess.run(["bash", "-c", "command -v uv"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    uv = tmp_path / name
    uv.write_text(f'#!/bin/bash\nif [ "$1" = sync ]; then\n{sync}\nfi\nexec {real} "$@"\n')
    uv.chmod(0o755)
    return uv


def held_uv(tmp_path: Path) -> Path:
    """uv whose `uv sync` waits, where UVSLURM_TEST_HOLD is set, for the file $UVSLURM_TEST_HOLD.go
    (after creating $UVSLURM_TEST_HOLD.started): a build kept in progress for as long as a test
    needs."""
    return _uv_wrapper(tmp_path, "held-uv", (
        'if [ -n "${UVSLURM_TEST_HOLD:-}" ]; then\n'
        '  : >"$UVSLURM_TEST_HOLD.started"\n'
        '  for _ in $(seq 1200); do [ -e "$UVSLURM_TEST_HOLD.go" ] && break; sleep 0.05; done\n'
        "fi"
    ))  # fmt: skip


def start(project: Path, depot: Path, node: str, err: Path, **env: str) -> subprocess.Popen[str]:
    """The prolog (prepare mode) as a job on NODE, its stderr into ERR, in a session of its own."""
    return subprocess.Popen(
        ["bash", str(PROLOG)], env=prolog_env(project, depot, SLURMD_NODENAME=node, **env),
        stdout=subprocess.PIPE, stderr=err.open("w"), text=True, start_new_session=True,
    )  # fmt: skip


def run(
    project: Path, depot: Path, node: str = "n1", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PROLOG)], env=prolog_env(project, depot, SLURMD_NODENAME=node, **env),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def builds(*texts: str) -> int:
    return sum(len(re.findall(r"^uvslurm: built ", t, re.M)) for t in texts)


def errors(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.startswith("uvslurm: error:")]


def venv_path(project: Path, depot: Path) -> Path:
    out = run(project, depot, UVSLURM_MODE="fingerprint").stdout
    return Path(next(x[5:] for x in out.splitlines() if x.startswith("venv=")))


def test_per_node_locks_a_second_node_waits_and_never_removes_the_first_nodes_build(
    project: Path, tmp_path: Path, fs_view: Callable[[str], Path]
) -> None:
    """Issue 10.1: n2's flock does not see n1's. Before, n2 took its own flock, removed n1's
    build in progress (`rm -rf .<key>.build-*`) and built again; now it waits for n1's lease."""
    n1, n2 = fs_view("pernode"), fs_view("pernode")
    uv, hold = held_uv(tmp_path), tmp_path / "hold"
    err1, err2 = tmp_path / "n1.err", tmp_path / "n2.err"
    a = start(project, n1 / "depot", "n1", err1, UVSLURM_UV=str(uv), UVSLURM_TEST_HOLD=str(hold))
    try:
        wait_for(lambda: Path(f"{hold}.started").exists(), 60, "n1's build to start")
        [build] = (tmp_path / "shared" / "depot").glob("*/.*.build-*")
        b = start(project, n2 / "depot", "n2", err2, UVSLURM_UV=str(uv))
        wait_for(lambda: "waiting for another process" in err2.read_text() or b.poll() is not None,
                 60, "n2 to wait or finish")  # fmt: skip
        assert build.is_dir(), "n2 removed n1's build in progress"
        Path(f"{hold}.go").touch()
        outs = [p.communicate(timeout=120)[0] for p in (a, b)]
    finally:
        Path(f"{hold}.go").touch()
    texts = [err1.read_text(), err2.read_text()]
    assert (a.returncode, b.returncode) == (0, 0), texts
    assert builds(*texts) == 1, texts
    assert [ready(t).state for t in texts] == ["cold", "warm"], texts
    venv = tmp_path / "shared" / "depot" / Path(outs[0].strip()).relative_to(n1 / "depot")
    assert missing_files(venv) == []
    assert not list(venv.parent.glob(".*.build-*")) and not list(venv.parent.glob(".*.lease"))


HOLD_PY = """\
import os, sys, time
from pathlib import Path
flag = Path(os.environ["UVSLURM_TEST_FLAG"])
flag.with_suffix(".started").write_text(sys.prefix)
while not flag.with_suffix(".go").exists():
    time.sleep(0.05)
import six
print("IMPORTED", six, getattr(six, "__path__", None), sys.path, flush=True); six.PY3
"""


def test_a_publish_never_renames_a_ready_venv_away(project: Path, tmp_path: Path) -> None:
    """Issue 10.1: a builder that finishes after another node published the same key (and a
    job already runs from that venv) keeps its hands off it: its own rename fails, it uses the
    published venv. Before, it renamed the published venv away and deleted it: the running job
    then failed (`bin/python: No such file`)."""
    depot, other = tmp_path / "depot", tmp_path / "other-depot"
    uv, hold = held_uv(tmp_path), tmp_path / "hold"
    err = tmp_path / "builder.err"
    builder = start(project, depot, "n1", err, UVSLURM_UV=str(uv), UVSLURM_TEST_HOLD=str(hold))
    job = None
    try:
        wait_for(lambda: Path(f"{hold}.started").exists(), 60, "the build to start")
        # meanwhile another node publishes the key (built elsewhere, renamed into place) and a
        # job starts running from it
        theirs = Path(run(project, other).stdout.strip())
        published = depot / theirs.relative_to(other)
        theirs.rename(published)
        inode = published.stat().st_ino
        (project / "hold.py").write_text(HOLD_PY)
        flag = tmp_path / "job.flag"
        job = subprocess.Popen([str(published / "bin" / "python"), str(project / "hold.py")],
                               env={**os.environ, "UVSLURM_TEST_FLAG": str(flag)},
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        wait_for(lambda: flag.with_suffix(".started").exists(), 30, "the job to start")
        Path(f"{hold}.go").touch()
        out, _ = builder.communicate(timeout=120)
        flag.with_suffix(".go").touch()
        job_out, _ = job.communicate(timeout=60)
    finally:
        Path(f"{hold}.go").touch()
        if job and job.poll() is None:
            job.kill()
    text = err.read_text()
    assert builder.returncode == 0, text
    assert job.returncode == 0 and "IMPORTED" in job_out, job_out
    assert published.stat().st_ino == inode, "the published venv was replaced"
    assert f"another process published {published} first; using it" in text, text
    assert Path(out.strip()) == published and ready(text).venv == published
    assert not list(published.parent.glob(".*.build-*")), "the builder left its build behind"


HOLD_FAILED = re.compile(r"^uvslurm: warning: cannot hold the depot venv while the job runs \(flock "
                         r"does not work on the depot's filesystem; `uvslurm depot gc` could remove "
                         r"it meanwhile\), flock -s on fd: \d+: No locks available$", re.M)  # fmt: skip


def test_without_working_flock_builders_take_turns_by_a_lease(
    project: Path, tmp_path: Path, fs_view: Callable[[str], Path]
) -> None:
    """Issue 10.2: a depot where every flock fails (ENOLCK). Before: exit 75, "set UVSLURM_DEPOT
    to a filesystem with working file locks". Now four builders at once build once."""
    view = fs_view("noflock")
    depot = view / "depot"
    errs = [tmp_path / f"{i}.err" for i in range(4)]
    procs = [start(project, depot, f"n{i % 2 + 1}", e) for i, e in enumerate(errs)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    texts = [e.read_text() for e in errs]
    assert [p.returncode for p in procs] == [0] * 4, texts
    assert builds(*texts) == 1, texts
    assert sorted(ready(t).state for t in texts) == ["cold", "warm", "warm", "warm"], texts
    assert len(set(outs)) == 1
    assert "note: flock does not work on the filesystem of" in "".join(texts)
    assert all(len(HOLD_FAILED.findall(t)) == 1 for t in texts), texts
    assert all(not errors(t) for t in texts), texts
    assert missing_files(Path(outs[0].strip())) == []


def test_a_hold_that_fails_is_reported(project: Path, tmp_path: Path) -> None:
    """Issue 10.3: the shared flock that keeps `depot gc` away from a venv in use failed
    silently (2>/dev/null in the background); now the log says so, on the warm path too. Here
    only that flock fails (strace injects ENOLCK into flock on .uvslurm-used)."""
    if not shutil.which("strace"):
        pytest.skip("needs strace")
    depot = tmp_path / "depot"
    used = venv_path(project, depot) / ".uvslurm-used"
    wrap = ["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(used),
            "-e", "inject=flock:error=ENOLCK"]  # fmt: skip
    for state in ("cold", "warm"):
        r = subprocess.run([*wrap, "bash", str(PROLOG)], env=prolog_env(project, depot),
                           capture_output=True, text=True, timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert ready(r.stderr).state == state
        assert len(HOLD_FAILED.findall(r.stderr)) == 1, r.stderr


def failing_uv(tmp_path: Path, calls: Path, seconds: float) -> Path:
    """uv whose `uv sync` fails after `seconds`, each call counted in CALLS."""
    return _uv_wrapper(tmp_path, "failing-uv", (
        f'echo "sync $$" >>{calls}\nsleep {seconds}\necho "error: no solution (test)" >&2\nexit 1'
    ))  # fmt: skip


def test_a_failed_build_is_remembered_for_a_minute_then_tried_again(
    project: Path, tmp_path: Path
) -> None:
    """Issue 10.7: a build that fails deterministically. Before, every waiting job built again
    in turn (here: 4 syncs, 4 failures one after the other); now the waiters fail at once with
    the first error, and so does a job that starts within the minute; the next job tries."""
    depot, calls = tmp_path / "depot", tmp_path / "calls"
    uv = failing_uv(tmp_path, calls, 1.5)
    errs = [tmp_path / f"{i}.err" for i in range(4)]
    procs = [start(project, depot, "n1", e, UVSLURM_UV=str(uv)) for e in errs]
    for p in procs:
        p.communicate(timeout=120)
    texts = [e.read_text() for e in errs]
    assert [p.returncode for p in procs] == [75] * 4, texts
    assert len(calls.read_text().splitlines()) == 1, "one sync, not one per job"
    first = [t for t in texts if "uv venv or uv sync failed" in errors(t)[0] and "ago" not in t]
    assert len(first) == 1, texts
    remembered = re.compile(
        r"^uvslurm: error: building \S+ failed \d+ s ago \(pid \d+ on n1\): uv venv or uv sync "
        r"failed for .* \(see its log\); the next job tries again after \d+ s$"
    )
    for t in texts:
        assert len(errors(t)) == 1, t
    assert sum(bool(remembered.match(errors(t)[0])) for t in texts) == 3, texts
    # a job within the minute: the same, at once
    t0 = time.monotonic()
    again = run(project, depot, UVSLURM_UV=str(uv))
    assert again.returncode == 75 and remembered.match(errors(again.stderr)[0]), again.stderr
    assert time.monotonic() - t0 < 1.5 and len(calls.read_text().splitlines()) == 1
    # a minute later the next job tries again (and fails again: remembered again)
    record = next(depot.glob("*/.*.failed"))

    def a_minute_passes() -> None:
        lines = record.read_text().splitlines()
        record.write_text("\n".join([str(int(lines[0]) - 61), *lines[1:]]) + "\n")

    a_minute_passes()
    later = run(project, depot, UVSLURM_UV=str(uv))
    assert later.returncode == 75 and "ago" not in errors(later.stderr)[0], later.stderr
    assert len(calls.read_text().splitlines()) == 2
    # and a success forgets the failure
    a_minute_passes()
    ok = run(project, depot)
    assert ok.returncode == 0 and ready(ok.stderr).state == "cold", ok.stderr
    assert not list(depot.glob("*/.*.failed"))


def test_a_build_killed_by_a_signal_is_not_remembered(project: Path, tmp_path: Path) -> None:
    """A sync killed by a signal (the OOM killer, a kill -9) is no reason to fail the next job:
    only failures that exited are remembered."""
    depot = tmp_path / "depot"
    uv = _uv_wrapper(tmp_path, "killed-uv", "kill -KILL $$")
    r = run(project, depot, UVSLURM_UV=str(uv))
    assert r.returncode == 75 and "uv venv or uv sync failed" in errors(r.stderr)[0], r.stderr
    assert not list(depot.glob("*/.*.failed"))
    ok = run(project, depot)
    assert ok.returncode == 0 and ready(ok.stderr).state == "cold", ok.stderr


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_builder_removes_only_builds_whose_owner_is_provably_gone(
    project: Path, tmp_path: Path
) -> None:
    """Leftovers of killed builders go; another node's build in progress stays: a build
    directory is removed when its owner ran on this node since its boot and its pid is gone,
    or when nothing touched it for ten minutes (a live builder's heartbeat touches it)."""
    depot = tmp_path / "depot"
    venv = venv_path(project, depot)
    venv.parent.mkdir(parents=True)
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    old = time.time() - 11 * 60
    dirs = {
        f"n1-{boot}-{_dead_pid()}": False,  # this node, pid gone: removed
        f"n1-{boot}-{os.getpid()}": True,  # this node, alive
        "n2-0123abcd-4242": True,  # another node, touched just now
        "n2-0123abcd-4343": False,  # another node, untouched for 11 minutes
        "oldhost-77": True,  # an older uvslurm's name, recent
    }
    for owner in dirs:
        d = venv.parent / f".{venv.name}.build-{owner}"
        (d / "lib").mkdir(parents=True)
        if owner.endswith("4343"):
            os.utime(d, (old, old))
    r = run(project, depot, "n1")
    assert r.returncode == 0, r.stderr
    left = {p.name.split(".build-")[1] for p in venv.parent.glob(".*.build-*")}
    assert left == {o for o, kept in dirs.items() if kept}


@pytest.mark.slow
def test_a_stopped_builder_loses_its_lease_and_both_builds_publish_safely(
    project: Path, tmp_path: Path, fs_view: Callable[[str], Path]
) -> None:
    """n1's builder is stopped (SIGSTOP: its heartbeat stops too) in the middle of its build;
    n2 waits 15 s without a heartbeat (the depot's locks are known to work per node only, as
    `uvslurm doctor` writes down), takes the lease over, builds and publishes; a job runs from
    that venv; n1 resumes, finishes, finds the key published and uses it: two builds at most,
    both jobs succeed, the running one undisturbed."""
    n1, n2 = fs_view("pernode"), fs_view("pernode")
    (tmp_path / "shared" / "depot").mkdir(mode=0o700)
    depot_mod.record_locks(tmp_path / "shared" / "depot", "per-node", "doctor")
    uv, hold = held_uv(tmp_path), tmp_path / "hold"
    err1 = tmp_path / "n1.err"
    a = start(project, n1 / "depot", "n1", err1, UVSLURM_UV=str(uv), UVSLURM_TEST_HOLD=str(hold))
    try:
        wait_for(lambda: Path(f"{hold}.started").exists(), 60, "n1's build to start")
        os.killpg(a.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        b = run(project, n2 / "depot", "n2")
        took = time.monotonic() - t0
        assert b.returncode == 0, b.stderr
        assert ready(b.stderr).state == "cold" and "waiting for another process" in b.stderr
        assert 15 <= took < 40, took
        os.killpg(a.pid, signal.SIGCONT)
        Path(f"{hold}.go").touch()
        out, _ = a.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(a.pid, signal.SIGCONT)
        Path(f"{hold}.go").touch()
    text = err1.read_text()
    assert a.returncode == 0, text
    assert "another process published" in text and builds(text, b.stderr) == 2
    venv = Path(b.stdout.strip())
    assert Path(out.strip()) == n1 / "depot" / venv.relative_to(n2 / "depot")
    assert missing_files(venv) == []
    print(f"n2 took the stopped builder's lease over after {took:.1f} s")


def _waited_for_the_lease(text: str) -> int:
    """How long the log says this job waited for another builder's lease (ms), after it waited
    for the key's flock (the first "waited" line)."""
    waits = [int(w) for w in re.findall(r"^uvslurm: waited (\d+) ms for ", text, re.M)]
    assert waits, text
    return sum(waits[1:])


@pytest.mark.parametrize("known", ["coherent", "nothing", "per-node"])
def test_a_builder_killed_on_another_node_is_taken_over_as_soon_as_the_locks_tell(
    project: Path, tmp_path: Path, known: str
) -> None:
    """n1's builder is killed (SIGKILL, its heartbeat with it) mid-build; n2 waits on the key's
    flock (coherent here) until the kernel frees it, then finds n1's lease, whose owner it
    cannot judge from n2. Holding that flock proves n1 gone where locks are known to exclude
    across nodes: taken over at once (before: 15 s). Where nothing is known, a lease that stays
    still for three heartbeats (6 s) goes; where locks are known to work per node only, 15 s."""
    depot = tmp_path / "depot"
    depot.mkdir(mode=0o700)
    if known != "nothing":
        depot_mod.record_locks(depot, known, "the test")
    uv, hold = held_uv(tmp_path), tmp_path / "hold"
    a = start(project, depot, "n1", tmp_path / "n1.err", UVSLURM_UV=str(uv),
              UVSLURM_TEST_HOLD=str(hold))  # fmt: skip
    try:
        wait_for(lambda: Path(f"{hold}.started").exists(), 60, "n1's build to start")
        b = start(project, depot, "n2", tmp_path / "n2.err")
        wait_for(lambda: "waiting for another process" in (tmp_path / "n2.err").read_text(), 60,
                 "n2 to wait")  # fmt: skip
        os.killpg(a.pid, signal.SIGKILL)
        a.wait(timeout=30)
        b.communicate(timeout=120)
    finally:
        Path(f"{hold}.go").touch()
    text = (tmp_path / "n2.err").read_text()
    assert b.returncode == 0 and ready(text).state == "cold", text
    waited = _waited_for_the_lease(text)
    # (the waiter counts whole seconds of its clock from its first look at the lease)
    low, high = {"coherent": (0, 5000), "nothing": (5000, 14000), "per-node": (14000, 40000)}[known]
    assert low <= waited < high, (known, waited)
    assert depot_mod.locks(depot)[0] == ("coherent" if known == "nothing" else known)


def test_a_live_lease_beside_a_free_flock_shows_locks_that_work_per_node(
    project: Path, tmp_path: Path, fs_view: Callable[[str], Path]
) -> None:
    """Where nothing is known of the depot's locks, n2 holds its key flock (per node here) and
    sees n1's lease heartbeat move: the locks work per node only. n2 keeps waiting for n1's
    build, and writes it down for gc, rm and the next builders (depot.locks)."""
    n1, n2 = fs_view("pernode"), fs_view("pernode")
    uv, hold = held_uv(tmp_path), tmp_path / "hold"
    err1, err2 = tmp_path / "n1.err", tmp_path / "n2.err"
    a = start(project, n1 / "depot", "n1", err1, UVSLURM_UV=str(uv), UVSLURM_TEST_HOLD=str(hold))
    try:
        wait_for(lambda: Path(f"{hold}.started").exists(), 60, "n1's build to start")
        b = start(project, n2 / "depot", "n2", err2)
        shared = tmp_path / "shared" / "depot"
        wait_for(lambda: depot_mod.locks(shared)[0] == "per-node" or b.poll() is not None, 60,
                 "n2 to see the locks work per node")  # fmt: skip
        assert b.poll() is None, err2.read_text()
        assert depot_mod.locks(shared)[1].startswith("a live lease of n1-"), depot_mod.locks(shared)
        time.sleep(8)  # longer than the 6 s an unmoving lease is given
        assert b.poll() is None, err2.read_text()
        Path(f"{hold}.go").touch()
        outs = [p.communicate(timeout=120)[0] for p in (a, b)]
    finally:
        Path(f"{hold}.go").touch()
    texts = [err1.read_text(), err2.read_text()]
    assert (a.returncode, b.returncode) == (0, 0), texts
    assert builds(*texts) == 1, texts
    assert Path(outs[0].strip()).relative_to(n1) == Path(outs[1].strip()).relative_to(n2)


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.parametrize("kind", DEPOT_FS)
def test_sixteen_jobs_on_two_nodes_with_builders_killed(
    cluster: Cluster, project: Path, tmp_path: Path, dev_depot: Callable[[str], Path], kind: str
) -> None:
    """The acceptance run on each depot filesystem of the dev cluster: 16 tasks of one key
    start on both nodes at once; whoever is building is killed (SIGKILL of its job, at a random
    moment of its build), twice. Every task that was not killed runs on a complete venv; the
    builds that completed are counted: one where locks are coherent, at most one per node
    elsewhere."""
    rng = random.Random(f"locks-{kind}")
    depot = dev_depot(kind)
    (project / "verify.py").write_text(VERIFY)
    uv = _uv_that_builds_slowly(tmp_path, 2)
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {"UVSLURM_DEPOT": str(depot), "UVSLURM_UV": str(uv), "UV_LINK_MODE": "copy"}
    # 2 CPUs a task: 8 tasks fit on a node, so the array starts on both nodes at once
    r = uvslurm("submit", "--parsable", "-a", "0-15", "-c", "2", "-o", f"{logs}/%a.log",
                "verify.py", cwd=project, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    log = {i: logs / f"{i}.log" for i in range(16)}
    killed: dict[int, str] = {}

    def building() -> int | None:
        for i, p in log.items():
            text = log_text(p)
            if (
                i not in killed
                and "SLOW-SYNC" in text
                and not re.search(r"^uvslurm: built ", text, re.M)
            ):
                return i
        return None

    t0 = time.monotonic()
    for _ in range(2):
        wait_for(lambda: building() is not None or _gone(cluster, job), 180, "a builder")
        victim = building()
        if victim is None:
            break
        time.sleep(rng.uniform(0, 2.5))
        was = (
            "mid-build"
            if not re.search(r"^uvslurm: built ", log_text(log[victim]), re.M)
            else "built"
        )
        cluster.run("scancel", "--signal=KILL", "--full", f"{job}_{victim}")
        killed[victim] = was
    wait_for(lambda: _gone(cluster, job), 300, "the array to end")
    took = time.monotonic() - t0
    texts = {i: log_text(p) for i, p in log.items()}
    ran = {i: re.search(r"^VERIFY (\d+) (\S+) (\S+)$", t, re.M) for i, t in texts.items()}
    for i, m in ran.items():
        assert not re.search(r"slurm_script: line \d+: ", texts[i]), f"a shell error:\n{texts[i]}"
        if i in killed:
            continue
        assert m and m.group(1) == "0", f"task {i} did not run on a complete venv:\n{texts[i]}"
    nodes = {m.group(3) for m in ran.values() if m}
    built = [i for i, t in texts.items() if re.search(r"^uvslurm: built ", t, re.M)]
    published = [p.parent for p in depot.glob("*/*/.uvslurm-ready")]
    assert len(published) == 1 and missing_files(published[0]) == [], published
    print(f"{kind}: 16 tasks on {sorted(nodes)}, builders killed: {killed}, "
          f"completed builds: {len(built)} (tasks {built}), {took:.0f} s")  # fmt: skip
    assert nodes == {"n1", "n2"}, "the array ran on both nodes"
    assert sum(w == "mid-build" for w in killed.values()) >= 1, f"no kill hit a build: {killed}"
    if kind == "coherent":
        assert len(built) == 1, texts
    else:
        assert 1 <= len(built) <= 2, texts
