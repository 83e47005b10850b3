"""`uvslurm.submitit.Executor` with real jobs on the dev cluster. Each test runs a driver script
as a user would (its functions live in `__main__`, so submitit pickles them by value): results
come back from the project's venv as the node's prolog made it ready, exceptions are re-raised,
an array builds once, `batch()` packs an array, a checkpointable function that times out is
requeued and finishes, and a module-loaded function gets its own build of a `rebuild` package."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, UV_CACHE, Cluster, make_project, ready_lines
from test_rebuild import fpext_sdist  # noqa: F401 - the session fixture, shared

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
pytest.importorskip("submitit")

HEAD = """\
import json, os, sys
from uvslurm.submitit import Executor
folder, project = sys.argv[1:3]

def out(tag, value):
    print("@@" + tag, json.dumps(value), flush=True)

def executor(sub, **params):
    ex = Executor(folder=os.path.join(folder, sub), project=project)
    ex.update_parameters(**{"timeout_min": 5, **params})
    return ex
"""


@pytest.fixture(scope="session")
def sit_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("sit") / "proj", ("submitit", "numpy"))


@pytest.fixture
def sit_project(tmp_path: Path, sit_template: Path) -> Path:
    dst = tmp_path / "sit proj"  # a space: every path the executor writes into a script is quoted
    shutil.copytree(sit_template, dst, ignore=shutil.ignore_patterns(".venv"))
    return dst


def driver(
    body: str, project: Path, folder: Path, *, prefix: list[str] | None = None, timeout: int = 300
) -> subprocess.Popen[str]:
    script = folder.parent / "driver.py"
    script.write_text(HEAD + body)
    argv = [*(prefix or [sys.executable]), str(script), str(folder), str(project)]
    return subprocess.Popen(argv, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "UV_CACHE_DIR": str(UV_CACHE)})  # fmt: skip


def finish(p: subprocess.Popen[str], timeout: float = 300) -> dict[str, object]:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, f"driver exited {p.returncode}:\n{out}\n{err[-3000:]}"
    return {m[0]: json.loads(m[1]) for m in re.findall(r"^@@(\w+) (.*)$", out, re.M)}


def run_releasing_requeued(
    p: subprocess.Popen[str], cluster: Cluster, workdir: Path, timeout: float = 300
) -> None:
    """Wait for the driver while Slurm holds its requeued jobs back (BeginTime in the future,
    set again while the requeue settles): those started from `workdir` are let start once seen
    held, not within the requeue's first seconds (see tests/test_jobs.py)."""
    held: dict[str, float] = {}
    end = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < end:
        now = time.monotonic()
        seen = set()
        for line in cluster.run("squeue", "-h", "-o", "%i|%r|%Z").stdout.splitlines():
            job, reason, wd = line.split("|", 2)
            if reason != "BeginTime" or Path(wd) != workdir:
                continue
            seen.add(job)
            if now - held.setdefault(job, now) > 2.5:
                cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")
        # a job requeued again (a checkpointed one times out twice) is held anew: its 2.5 s start
        # then, not at its first requeue (released at once, slurmd killed it as non-startable:
        # "Job credential revoked", and the driver waited for it until the test timed out)
        held = {job: t for job, t in held.items() if job in seen}
        time.sleep(1)


def logs(folder: Path) -> str:
    return "".join(f.read_text(errors="replace") for f in sorted(folder.rglob("*_log.*")))


def test_results_come_from_the_nodes_venv_and_an_array_builds_once(
    cluster: Cluster, sit_project: Path, tmp_path: Path
) -> None:
    """The acceptance check's driver: run in the project's own env with uvslurm added."""
    folder = tmp_path / "sit folder"
    p = driver(
        """
def square(x):
    return x * x

def where():
    import sys, numpy
    return sys.prefix, numpy.__file__

def boom():
    raise ValueError("boom")

jobs = executor("array").map_array(square, range(8))
out("ARRAY", [j.result() for j in jobs])
ex = executor("single")
out("WHERE", ex.submit(where).result())
try:
    ex.submit(boom).result()
except Exception as e:
    out("RAISED", [type(e).__name__, str(e)])
""",
        sit_project,
        folder,
        prefix=["uv", "run", "-q", "--with-editable", str(REPO), "python"],
    )
    got = finish(p)
    assert got["ARRAY"] == [x * x for x in range(8)]
    ready = ready_lines(logs(folder / "array"))
    assert len(ready) == 8
    assert [r.state for r in ready].count("cold") == 1, [r.state for r in ready]
    prefix, npfile = got["WHERE"]  # type: ignore[misc]
    assert Path(npfile).is_relative_to(prefix)
    login = {str(sit_project / ".venv"), sys.prefix}
    assert prefix not in login and not Path(prefix).is_relative_to(sit_project)
    assert Path(prefix) == ready_lines(logs(folder / "single"))[0].venv
    _, text = got["RAISED"]  # type: ignore[misc]
    assert "ValueError: boom" in text
    assert re.search(r"line \d+, in boom", text), "the function's traceback comes along"


def test_batch_packs_one_array_in_the_venv(
    cluster: Cluster, sit_project: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    got = finish(driver(
        """
def where(i):
    import os, sys
    return i, sys.prefix, os.environ["MARK"]

ex = executor("batch", slurm_setup=['export MARK="set after $VIRTUAL_ENV"'])
with ex.batch():
    jobs = [ex.submit(where, i) for i in range(3)]
out("IDS", [j.job_id for j in jobs])
out("RESULTS", [j.result() for j in jobs])
""",
        sit_project,
        folder,
    ))  # fmt: skip
    ids = got["IDS"]
    assert isinstance(ids, list) and len({i.split("_")[0] for i in ids}) == 1, ids
    results = got["RESULTS"]
    assert isinstance(results, list) and [i for i, _, _ in results] == [0, 1, 2]
    venvs = {r.venv for r in ready_lines(logs(folder / "batch"))}
    assert {Path(prefix) for _, prefix, _ in results} <= venvs
    # the caller's setup lines run after the prolog, with the venv active
    assert all(mark == f"set after {prefix}" for _, prefix, mark in results)


def test_a_checkpointable_function_that_times_out_is_requeued_and_finishes(
    cluster: Cluster, sit_project: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    # 1 minute, the cluster's least; the signal 30 s before the end (Slurm checks time limits
    # every 30 s: the signal comes at least one check before the kill)
    p = driver(
        """
import submitit

class Slow(submitit.helpers.Checkpointable):
    def __call__(self, restarts=0):
        import os, sys, time
        n = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        if n == 0:
            time.sleep(600)
        return n, sys.prefix

ex = executor("ckpt", slurm_signal_delay_s=30)
ex.update_parameters(timeout_min=1)
job = ex.submit(Slow())
out("JOB", job.job_id)
try:
    out("RESULT", job.result())
except submitit.core.utils.FailedJobError as e:
    # submitit's own race, not uvslurm's: its handler's `scontrol requeue` of its own job can be
    # killed by that requeue (SIGTERM to every process of the job) before it returns; the job is
    # requeued all the same, and its next run writes the result again
    if "'scontrol', 'requeue'" not in str(e) or "SIGTERM" not in str(e):
        raise
    out("REQUEUE_KILLED", True)
    import time

    def written():  # the result file's time (submitit renames a whole file into place)
        try:
            return job.paths.result_pickle.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    first, end = written(), time.time() + 240
    while time.time() < end and written() in (None, first):
        time.sleep(1)
    out("RESULT", job.result())
""",
        sit_project,
        folder,
    )
    run_releasing_requeued(p, cluster, sit_project)
    got = finish(p, timeout=10)
    restarts, prefix = got["RESULT"]  # type: ignore[misc]
    assert restarts >= 1
    text = logs(folder / "ckpt")
    assert "timed-out" in text.lower() or "timeout" in text.lower(), text[-2000:]
    states = [r.state for r in ready_lines(text)]
    assert len(states) == 2 and states[1] in ("warm", "placed"), states
    assert Path(prefix) == ready_lines(text)[-1].venv


def test_a_module_loaded_function_gets_its_own_build(
    cluster: Cluster,
    tmp_path: Path,
    fpext_sdist: Path,  # noqa: F811
) -> None:
    project = make_project(tmp_path / "mpiproj", (f"fpext @ {fpext_sdist.as_uri()}", "submitit"))
    with (project / "pyproject.toml").open("a") as f:
        f.write('\n[tool.uvslurm]\nrebuild = ["fpext"]\n')
    results = {}
    for v in ("1.0", "2.0"):
        folder = tmp_path / f"folder-{v}"
        script = tmp_path / f"mpi-{v}.py"
        script.write_text(HEAD + """
def built():
    import sys, fpext
    return fpext.built_for(), sys.prefix

out("BUILT", executor("mpi").submit(built).result())
""")  # fmt: skip
        r = subprocess.run(
            ["bash", "-c", f"source /usr/share/lmod/lmod/init/bash && module load mpich/{v} && "
             f'exec "$0" "$@"', sys.executable, str(script), str(folder), str(project)],
            cwd=project, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr[-3000:]
        built, prefix = json.loads(r.stdout.split("@@BUILT ", 1)[1].splitlines()[0])
        results[v] = (built, prefix)
    assert results["1.0"][0] == "1.0"
    assert results["2.0"][0] == "2.0"
    assert results["1.0"][1] != results["2.0"][1], "one venv per module set"


def test_the_submitit_example_runs(cluster: Cluster, tmp_path: Path) -> None:
    """examples/submitit as its docstring says to run it (uvslurm from this checkout)."""
    example = tmp_path / "submitit example"
    shutil.copytree(REPO / "examples" / "submitit", example)
    p = subprocess.Popen(
        ["uv", "run", "-q", "--with-editable", str(REPO), "python", "driver.py"], cwd=example,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "UV_CACHE_DIR": str(UV_CACHE)},
    )  # fmt: skip
    run_releasing_requeued(p, cluster, example, timeout=400)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, out + err[-3000:]
    prefix = re.search(r"^ran in (\S+) \(numpy from (\S+)\)$", out, re.M)
    assert prefix and prefix.group(2).startswith(prefix.group(1) + "/"), out
    assert "map_array: [0.0, 0.0, 1.0, 2.24, 3.74, 5.48, 7.42, 9.54]" in out
    assert "batch: [16.88, 573.02]" in out
    assert "re-raised: ValueError: boom" in out
    assert "checkpointed: done" in out
    text = logs(example / "submitit-logs")
    assert [r.state for r in ready_lines(text)].count("cold") == 1, "one build for every job"
