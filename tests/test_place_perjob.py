"""Where a job's command runs from when node-local disk is per job (docs/design.md, "Node-local
placement"): a job of one task on one node runs from the depot rather than copying the venv into
a directory that goes with it; a job of several tasks, a directory that is not the job's own, a
path set in the config, or an image still place. And the cold start of many tasks at once: the
machine facts are asked by one of them, uv's interpreter probe of the depot venv by the builder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import PROLOG, Cluster, logging_uv, prolog_env, ready, ready_lines, uvslurm, wait_for

JOB = "4242"


def _slurm_free_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}


def run_prolog(
    project: Path, depot: Path, mode: str = "prepare", wrap: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    """The prolog as a job on a node runs it (no SLURM_* of this process's own), node-local auto
    unless `env` says otherwise; `wrap`: the command that runs `bash PROLOG`."""
    full = {**prolog_env(project, depot, mode, UVSLURM_NODE_LOCAL="auto"), **env}
    full = {k: v for k, v in full.items() if not k.startswith("SLURM_") or k in env}
    argv = [*wrap, "bash", str(PROLOG)]
    return subprocess.run(argv, env=full, capture_output=True, text=True)


@pytest.fixture
def node_tmp() -> Iterator[Path]:
    """A directory on a filesystem other than the depot's (tmp_path's): node-local disk."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tempfile.gettempdir()).st_dev:
        pytest.skip("needs /dev/shm on a filesystem of its own")
    d = Path(tempfile.mkdtemp(dir=shm, prefix="uvslurm-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def job_dir(node_tmp: Path, name: str) -> Path:
    """A per-job TMPDIR as a site's prolog makes it: the user's own, mode 0700."""
    d = node_tmp / name
    d.mkdir(mode=0o700)
    return d


def job_env(tmpdir: Path, tasks: str = "1", **more: str) -> dict[str, str]:
    return {"SLURM_JOB_ID": JOB, "SLURM_JOB_NUM_NODES": "1", "SLURM_TASKS_PER_NODE": tasks,
            "TMPDIR": str(tmpdir), **more}  # fmt: skip


@pytest.fixture
def built(project: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(depot, its ready venv), built without node-local disk."""
    depot = tmp_path / "depot"
    r = run_prolog(project, depot, UVSLURM_NODE_LOCAL="never")
    assert r.returncode == 0, r.stderr
    assert ready(r.stderr).state == "cold"
    return depot, Path(r.stdout.strip())


@pytest.mark.parametrize("name", [f"job_{JOB}", f"slurm.{JOB}.0", f"{JOB}"])
def test_a_one_task_job_runs_from_the_depot_where_its_node_local_dir_is_its_own(
    project: Path, built: tuple[Path, Path], node_tmp: Path, name: str
) -> None:
    depot, venv = built
    tmpdir = job_dir(node_tmp, name)
    r = run_prolog(project, depot, **job_env(tmpdir))
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == venv, r.stderr
    assert ready(r.stderr).state == "warm"
    assert (
        f"note: {tmpdir} is this job's own (it goes when the job ends) and the job runs one task"
        in r.stderr
    )
    assert "placed on node-local" not in r.stderr
    assert not (tmpdir / f"uvslurm-{os.getuid()}").exists(), "something was placed there"


def test_an_array_task_whose_dir_names_the_array_and_task_runs_from_the_depot(
    project: Path, built: tuple[Path, Path], node_tmp: Path
) -> None:
    depot, venv = built
    tmpdir = job_dir(node_tmp, "job_77_3")
    env = job_env(tmpdir, SLURM_ARRAY_JOB_ID="77", SLURM_ARRAY_TASK_ID="3")
    r = run_prolog(project, depot, **env)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == venv, r.stderr


@pytest.mark.parametrize(("base", "own"), [(JOB, True), ("9999", False)])
def test_a_per_job_tmp_of_job_container_tmpfs_is_told_by_the_root_of_its_mount(
    project: Path, built: tuple[Path, Path], node_tmp: Path, base: str, own: bool
) -> None:
    """Slurm's job_container/tmpfs bind-mounts <BasePath>/<job id>/.<job id>/_tmp on /tmp in the
    job's mount namespace: the path does not name the job, the mount's root does."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs unshare -m (root)")
    depot, venv = built
    src = node_tmp / "base" / base / f".{base}" / "_tmp"
    src.mkdir(parents=True)
    src.chmod(0o700)
    tmp = job_dir(node_tmp, "tmp")
    wrap = ("unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind "$1" "$2" && shift 2 && exec "$@"', "_", str(src), str(tmp))  # fmt: skip
    r = run_prolog(project, depot, wrap=wrap, **job_env(tmp))
    assert r.returncode == 0, r.stderr
    assert (Path(r.stdout.strip()) == venv) is own, r.stderr
    assert ready(r.stderr).state == ("warm" if own else "placed"), r.stderr


@pytest.mark.parametrize(
    ("name", "env", "why"),
    [
        (f"job_{JOB}", {"SLURM_TASKS_PER_NODE": "2"}, "several tasks import from the copy"),
        (f"job_{JOB}", {"SLURM_TASKS_PER_NODE": "4(x2)"}, "several tasks on this node"),
        (f"job_{JOB}0", {}, "another job's number: not this job's own"),
        ("scratch", {}, "a directory that does not name the job may outlive it"),
        ("x-y_z", {}, "no number in it at all"),
    ],
)
def test_the_copy_is_still_made_where_it_can_pay(
    project: Path, built: tuple[Path, Path], node_tmp: Path, name: str, env: dict[str, str],
    why: str,
) -> None:  # fmt: skip
    depot, _ = built
    tmpdir = job_dir(node_tmp, name)
    r = run_prolog(project, depot, **{**job_env(tmpdir), **env})
    assert r.returncode == 0, r.stderr
    assert ready(r.stderr).state == "placed", f"{why}: {r.stderr}"
    assert Path(r.stdout.strip()).parent == tmpdir / f"uvslurm-{os.getuid()}"


def test_a_node_local_path_set_in_the_config_is_placed_on_even_when_it_is_the_jobs_own(
    project: Path, built: tuple[Path, Path], node_tmp: Path
) -> None:
    depot, _ = built
    tmpdir = job_dir(node_tmp, f"job_{JOB}")
    r = run_prolog(project, depot, **job_env(tmpdir), UVSLURM_NODE_LOCAL=str(tmpdir))
    assert r.returncode == 0, r.stderr
    assert ready(r.stderr).state == "placed", r.stderr


def test_an_image_is_still_placed_on_the_jobs_own_dir(
    project: Path, tmp_path: Path, node_tmp: Path
) -> None:
    """An image is one file on the shared filesystem: placing it from there spares that
    filesystem the reads of thousands of files (and a mount costs milliseconds)."""
    if not shutil.which("zstd"):
        pytest.fail("zstd is not installed (.ci/run installs it)")
    depot = tmp_path / "depot"
    first = run_prolog(project, depot, UVSLURM_NODE_LOCAL="never", UVSLURM_IMAGE="tar.zst")
    assert first.returncode == 0, first.stderr
    tmpdir = job_dir(node_tmp, f"job_{JOB}")
    r = run_prolog(project, depot, **job_env(tmpdir), UVSLURM_IMAGE="tar.zst")
    assert r.returncode == 0, r.stderr
    assert ready(r.stderr).state == "placed" and "from the image" in r.stderr, r.stderr


def _fingerprints(project: Path, uv: Path, log: Path, first_until: str = "") -> None:
    """4 starts in fingerprint mode on one new depot: all at once, or the first alone until
    uv's log shows `first_until`; each succeeds, and the machine facts and the interpreter
    were asked once in all."""
    depot = project.parent / "depot"
    results: list[subprocess.CompletedProcess[str]] = []

    def start() -> None:
        results.append(run_prolog(project, depot, "fingerprint", UVSLURM_UV=str(uv)))

    threads = [threading.Thread(target=start) for _ in range(4)]
    threads[0].start()
    if first_until:
        wait_for(lambda: first_until in (log.read_text() if log.exists() else ""), 30,
                 f"the first start to ask uv {first_until!r}")  # fmt: skip
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0] * 4, [r.stderr for r in results]
    fps = {re.search(r"^fingerprint=(\w+)$", r.stdout, re.M)[1] for r in results}  # type: ignore[index]
    assert len(fps) == 1, fps
    calls = log.read_text().splitlines()
    assert calls.count("--version") == 1, calls
    assert sum(c.startswith("python find") for c in calls) == 1, calls


def test_tasks_starting_together_on_a_new_node_ask_the_machine_facts_once(
    project: Path, tmp_path: Path
) -> None:
    """16 array tasks asking uv and the interpreter for the facts at once took 4.3 s each on a
    2-core VM, one alone 0.9 s: one asks, the others wait for its answers and read them."""
    uv, log = logging_uv(tmp_path, delay="1")
    _fingerprints(project, uv, log)


def test_tasks_that_come_while_the_interpreter_is_asked_wait_for_it(
    project: Path, tmp_path: Path
) -> None:
    """The asker keeps the facts file empty until it has the interpreter too: tasks that start
    while it asks uv for the interpreter wait, instead of reading the other facts and asking
    uv each (15 of 16 array tasks did, ~0.2 s of CPU each)."""
    uv, log = logging_uv(tmp_path, delay="1", slow="python")
    _fingerprints(project, uv, log, first_until="python find")


def test_the_build_makes_the_venv_with_the_interpreter_found_by_its_path(
    project: Path, tmp_path: Path
) -> None:
    """`uv venv --python 3.11` searches PATH again (~0.3 s of CPU where pyenv's shims are on
    it): the build names the interpreter the fingerprint found, and the venv is the same."""
    uv, log = logging_uv(tmp_path)
    r = run_prolog(project, tmp_path / "depot", UVSLURM_UV=str(uv), UVSLURM_NODE_LOCAL="never")
    assert r.returncode == 0, r.stderr
    venv = ready(r.stderr).venv
    calls = log.read_text().splitlines()
    (made,) = [c.split() for c in calls if c.startswith("venv ")]
    exe = Path(made[made.index("--python") + 1])
    assert exe.is_absolute() and os.access(exe, os.X_OK), made
    home = re.search(r"^home = (.*)$", (venv / "pyvenv.cfg").read_text(), re.M)
    assert home and Path(home[1]).resolve() == exe.parent.resolve()
    # the same interpreter as the request finds
    found = subprocess.run([str(uv), "python", "find", "--system", "3.11"], cwd=project,
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert Path(found.stdout.strip()).resolve() == exe.resolve()


def _probes(log: Path) -> list[str]:
    return [
        c
        for c in log.read_text().splitlines()
        if c.startswith("run --no-sync") and c.endswith(" true")
    ]


def test_the_builder_asks_uvs_interpreter_probe_of_a_depot_venv_that_jobs_run_from(
    project: Path, tmp_path: Path, node_tmp: Path
) -> None:
    """The first `uv run` on a venv path probes its interpreter (~100 ms of CPU): the builder asks
    it while the tasks waiting for the build still wait, not each of them at once after it."""
    uv, log = logging_uv(tmp_path)
    depot = tmp_path / "depot"
    tmpdir = job_dir(node_tmp, f"job_{JOB}")
    r = run_prolog(project, depot, "run", **job_env(tmpdir), UVSLURM_UV=str(uv))
    assert r.returncode != 75, r.stderr
    assert ready(r.stderr).state == "cold" and ready(r.stderr).venv.is_relative_to(depot)
    assert len(_probes(log)) == 1, log.read_text()
    # a builder whose job then runs from a node-local copy asks nothing of the depot venv
    log.unlink()
    other = tmp_path / "depot2"
    r = run_prolog(project, other, **job_env(tmpdir, tasks="2"), UVSLURM_UV=str(uv))
    assert r.returncode == 0, r.stderr
    assert ready(r.stderr).state == "cold" and ready(r.stderr).venv.is_relative_to(tmpdir)
    assert _probes(log) == [], log.read_text()


@pytest.mark.slurm
def test_an_array_on_per_job_tmpdir_builds_once_and_every_task_runs_from_the_depot(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    """With default settings on the dev cluster (a per-job TMPDIR on node-local disk), the tasks
    of an array on one node build once and run from the depot: none copies the venv into its
    own TMPDIR."""
    logs = tmp_path / "logs"
    logs.mkdir()
    code = "import os, sys; print('TASK', os.environ['TMPDIR'], sys.prefix)"
    r = uvslurm("submit", "--wait", "-w", "n1", "-a", "0-3", "-o", str(logs / "%a.log"),
                "-e", str(logs / "%a.log"), "--", "python", "-c", code, cwd=project)  # fmt: skip
    texts = [p.read_text() for p in sorted(logs.iterdir())]
    assert r.returncode == 0, r.stderr + "".join(texts)
    assert len(texts) == 4
    tasks = [re.search(r"^TASK (\S+) (.*)$", t, re.M) for t in texts]
    assert all(tasks), texts
    tmpdirs = {m[1] for m in tasks if m}
    # the premise: each task has a TMPDIR of its own that names its job
    assert len(tmpdirs) == 4 and all(re.search(r"job_\d+$", d) for d in tmpdirs), tmpdirs
    states = sorted(ready(t).state for t in texts)
    assert states == ["cold", "warm", "warm", "warm"], states
    depot = Path(os.environ["SCRATCH"]) / "uvslurm"
    venvs = {ready(t).venv for t in texts}
    assert len(venvs) == 1 and next(iter(venvs)).is_relative_to(depot), venvs
    assert {m[2] for m in tasks if m} == {str(v) for v in venvs}
    for t in texts:
        assert "is this job's own (it goes when the job ends) and the job runs one task" in t, t
        assert "placed on node-local" not in t and len(ready_lines(t)) == 1, t


@pytest.mark.slurm
def test_a_job_of_several_tasks_still_places_on_its_per_job_tmpdir(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "n2.log"
    code = "import os, sys; print('TASK', os.environ['TMPDIR'], sys.prefix)"
    r = uvslurm("submit", "--wait", "-w", "n1", "-n", "2", "-o", str(log), "-e", str(log),
                "--", "python", "-c", code, cwd=project)  # fmt: skip
    text = log.read_text()
    assert r.returncode == 0, r.stderr + text
    m = re.search(r"^TASK (\S+) (.*)$", text, re.M)
    assert m and re.search(r"job_\d+$", m[1]), text
    last = ready(text)
    assert last.state == "cold" and last.venv.is_relative_to(m[1]), text
    assert m[2] == str(last.venv)
