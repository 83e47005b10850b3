"""`uvslurm.submit` and its job handles with real jobs on the dev cluster: states as Slurm moves
the job, exit codes, logs, array tasks, cancel, and sbatch's refusal as a SubmitError."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import uvslurm
from conftest import REPO, Cluster, ready, wait_for

pytestmark = pytest.mark.slurm


def test_submit_moves_through_pending_running_completed(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    (project / "steps.py").write_text(
        "import os, sys, time\n"
        "print('STARTED', flush=True)\n"
        f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.1)\n"
        "print('API-OK', sys.argv[1:], sys.prefix, flush=True)\n"
    )
    job = uvslurm.submit(project / "steps.py", args=["a b"], sbatch={"hold": True})
    assert job.id and job.id.isdigit()
    assert job.state() == "PENDING"
    assert job.script_path is not None and job.script_path.name == f"{job.id}.sh"
    assert job.script_path.read_text() == job.script
    assert cluster.run("scontrol", "release", job.id).returncode == 0
    wait_for(lambda: job.state() == "RUNNING", 60, "the job to run")
    with pytest.raises(uvslurm.WaitTimeout, match=f"job {job.id} is still RUNNING"):
        job.wait(timeout=0.5)
    go.touch()
    assert job.wait(timeout=120) == 0
    assert job.state() == "COMPLETED"
    assert job.log_path is not None and job.log_path.name == f"steps-{job.id}.out"
    log = job.log_path.read_text()
    assert "API-OK ['a b']" in log
    venv = ready(log).venv
    assert f"API-OK ['a b'] {venv}" in log, "ran in the venv the prolog made ready"
    doc = job.manifest()
    assert doc["job_id"] == job.id
    assert doc["script"] == str(job.script_path)
    assert doc["argv"][:2] == ["uvslurm.submit()", str(project / "steps.py")]
    assert doc["run"]["exit_code"] == 0, doc["run"]
    assert doc["run"]["venv"] == str(venv), "the job recorded its start beside the manifest"


def test_a_command_job_with_wait_returns_once_it_ended_and_wait_gives_its_code(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "cmd.log"
    hostile = ["$(touch pwned)", "`touch pwned`", "q'uote", 'd"q', "a b", "semi;colon"]
    job = uvslurm.submit(command=["python", "-c", "import sys; print('API-OK', sys.argv[1:])",
                                  *hostile], project=project, sbatch={"output": str(log)},
                         wait=True)  # fmt: skip
    assert job.state() == "COMPLETED"
    assert job.wait() == 0
    assert job.log_path == log
    assert f"API-OK {hostile!r}" in log.read_text()
    assert not list(project.rglob("pwned")) and not Path("pwned").exists()  # the job's cwd is ours
    failed = uvslurm.submit(command=["python", "-c", "raise SystemExit(3)"], project=project,
                            sbatch={"output": str(log)}, wait=True)  # fmt: skip
    assert failed.state() == "FAILED"
    assert failed.wait() == 3


def test_an_array_gives_a_handle_per_task(cluster: Cluster, project: Path, tmp_path: Path) -> None:
    (project / "task.py").write_text(
        "import os, sys\nt = int(os.environ['SLURM_ARRAY_TASK_ID'])\n"
        "print('TASK', t)\nsys.exit(t)\n"
    )
    job = uvslurm.submit(
        project / "task.py", sbatch={"array": "0-2", "output": str(tmp_path / "t-%A_%a.log")}
    )
    tasks = job.tasks()
    assert [t.id for t in tasks] == [f"{job.id}_{i}" for i in range(3)]
    assert [t.wait(timeout=120) for t in tasks] == [0, 1, 2]
    assert job.wait(timeout=10) == 2, "the array's code is its highest task's"
    assert [t.state() for t in tasks] == ["COMPLETED", "FAILED", "FAILED"]
    for i, t in enumerate(tasks):
        assert t.log_path == tmp_path / f"t-{job.id}_{i}.log"
        assert f"TASK {i}" in t.log_path.read_text()


def test_cancel_ends_the_job(cluster: Cluster, project: Path) -> None:
    job = uvslurm.submit(command=["sleep", "300"], project=project, sbatch={"hold": True})
    job.cancel()
    wait_for(lambda: job.state() == "CANCELLED", 30, "the job to be cancelled")
    assert job.wait(timeout=5) != 0, "a job that never ran did not succeed"


def test_sbatch_refusing_the_job_is_a_submit_error_and_nothing_is_kept(
    cluster: Cluster, project: Path, isolated_user: Path
) -> None:
    with pytest.raises(uvslurm.SubmitError) as info:
        uvslurm.submit(command=["true"], project=project, sbatch={"partition": "nosuchpart"})
    assert str(info.value).startswith("sbatch refused the job: ")
    assert "partition" in str(info.value).lower()
    assert list((isolated_user / "state" / "uvslurm" / "scripts").iterdir()) == []


def test_a_job_slurm_never_knew_is_a_job_error(cluster: Cluster) -> None:
    job = uvslurm.Job("999999999", "")
    start = time.monotonic()
    with pytest.raises(uvslurm.JobError, match="999999999"):
        job.state()
    assert time.monotonic() - start < 30


def test_the_api_example_runs(cluster: Cluster, tmp_path: Path) -> None:
    """examples/api/submit_and_wait.py on a copy of examples/ (it locks examples/hello)."""
    for d in ("api", "hello"):
        shutil.copytree(REPO / "examples" / d, tmp_path / d)
    r = subprocess.run([sys.executable, str(tmp_path / "api" / "submit_and_wait.py")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    job = re.search(r"^job (\d+) ended COMPLETED with exit code 0$", r.stdout, re.M)
    assert job, r.stdout
    assert "epoch 2: loss 0.333" in r.stdout
    tasks = re.search(r"^array tasks: (.*)$", r.stdout, re.M)
    assert tasks and len(ast.literal_eval(tasks.group(1))) == 4, r.stdout
    assert all(code == 0 for _, code in ast.literal_eval(tasks.group(1)))
    assert r.stderr == "", "the library prints nothing"
