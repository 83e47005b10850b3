"""Real jobs on the real dev cluster (scripts/dev-cluster up): real sbatch, real nodes."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (
    HOSTILE_NAMES,
    Cluster,
    files_under,
    log_text,
    ready_lines,
    uvslurm,
    wait_for,
    wait_for_text,
)
from conftest import ready as last_ready

pytestmark = pytest.mark.slurm


def ready(log: Path) -> tuple[str, int, str]:
    last = last_ready(log.read_text())
    return last.state, last.ms, str(last.venv)


def submit_wait(
    project: Path, log: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return uvslurm("submit", "--wait", "-o", str(log), "-e", str(log), *args, cwd=project, env=env)


def test_py_job_cold_then_warm_and_nothing_written_to_the_project(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    before = files_under(project)
    out = tmp_path / "out.json"
    r = submit_wait(project, tmp_path / "1.log", "-w", "n1", "train.py", "a", "b c",
                    env={"UVSLURM_TEST_OUT": str(out)})  # fmt: skip
    assert r.returncode == 0, r.stderr + (tmp_path / "1.log").read_text()
    assert re.fullmatch(r"\d+\n", r.stdout), "stdout is the job id"
    data = json.loads(out.read_text())
    assert data["argv"] == ["a", "b c"]
    assert data["node"] == "n1"
    state, _, venv = ready(tmp_path / "1.log")
    assert state == "cold"
    assert data["prefix"] == venv
    # per-job TMPDIR on this cluster: the same node places again, nothing is built
    r2 = submit_wait(project, tmp_path / "2.log", "-w", "n1", "train.py")
    assert r2.returncode == 0, r2.stderr
    assert ready(tmp_path / "2.log")[0] in ("placed", "warm")
    assert "built " not in (tmp_path / "2.log").read_text()
    # from the depot, a ready venv is warm
    for name in ("3.log", "4.log"):
        r3 = submit_wait(project, tmp_path / name, "-w", "n2", "--no-node-local", "train.py")
        assert r3.returncode == 0, r3.stderr
    state, ms, venv = ready(tmp_path / "4.log")
    assert state == "warm"
    assert ms < 200
    assert files_under(project) == before, "files appeared under the project"
    assert not (project / ".venv").exists()


def test_exit_code_of_the_program_is_propagated(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    r = submit_wait(project, tmp_path / "x.log", "train.py", env={"UVSLURM_TEST_EXIT": "7"})
    assert r.returncode == 7, r.stderr


def test_command_job(cluster: Cluster, project: Path, tmp_path: Path) -> None:
    r = submit_wait(
        project,
        tmp_path / "c.log",
        "--",
        "python",
        "-c",
        "import six, sys; print('CMD', sys.prefix)",
    )
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "c.log").read_text()
    _, _, venv = ready(tmp_path / "c.log")
    assert f"CMD {venv}" in text


def test_batch_script_job_runs_its_body_with_the_venv_active(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    script = project.parent / "job.sh"
    script.write_text(
        "#!/bin/bash\n#SBATCH -J body-test\n#SBATCH -t 5\n"
        "python -c 'import six, sys; print(\"PY\", sys.prefix)'\n"
        "uv run python -c 'import sys; print(\"UVRUN\", sys.prefix)'\n"
        "srun python -c 'import sys; print(\"SRUN\", sys.prefix)'\n"
        'echo "ARGS $*"\n'
    )
    r = submit_wait(project, tmp_path / "b.log", str(script), "x y", "z")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "b.log").read_text()
    _, _, venv = ready(tmp_path / "b.log")
    for tag in ("PY", "UVRUN", "SRUN"):
        assert f"{tag} {venv}" in text, text
    assert "ARGS x y z" in text


def test_another_module_set_gets_another_venv(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    venvs = []
    for v in ("1.0", "2.0"):
        log = tmp_path / f"m{v}.log"
        cmd = (
            "source /usr/share/lmod/lmod/init/bash && module load mpich/" + v + " && "
            + shlex.join([sys.executable, "-m", "uvslurm", "submit", "--wait", "-o", str(log), "-e", str(log),
                          "--", "bash", "-c", "echo MPICH=$MPICH_VERSION"])
        )  # fmt: skip
        r = subprocess.run(["bash", "-c", cmd], cwd=project, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert log.exists() and f"MPICH={v}" in log.read_text(), r.stdout + r.stderr
        venvs.append(ready(log)[2])
    assert venvs[0] != venvs[1]


@pytest.mark.parametrize("name", HOSTILE_NAMES[3:5])
def test_hostile_project_path_and_args_in_a_real_job(
    cluster: Cluster, project: Path, tmp_path: Path, name: str
) -> None:
    hostile = tmp_path / f"h {name} 'q' é"
    shutil.copytree(project, hostile)
    args = [
        "$(touch pwned)",
        "`id`",
        "it's",
        'a"b',
        "line1\nline2",
        "-n",
        "--help",
        ";echo x",
        "ünï",
        "*",
        "$HOME",
    ]
    out = tmp_path / "h.json"
    r = submit_wait(
        hostile, tmp_path / "h.log", "train.py", *args, env={"UVSLURM_TEST_OUT": str(out)}
    )
    assert r.returncode == 0, r.stderr + (tmp_path / "h.log").read_text()
    assert json.loads(out.read_text())["argv"] == args
    assert not list(tmp_path.rglob("pwned")) and not Path("pwned").exists()


def test_wait_on_an_array_reports_each_task_and_the_highest_exit_code(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    (project / "arr.py").write_text(
        "import os, sys\nsys.exit(3 if os.environ['SLURM_ARRAY_TASK_ID'] == '2' else 0)\n"
    )
    r = uvslurm(
        "submit", "--wait", "-a", "0-3", "-o", str(tmp_path / "a-%a.log"), "arr.py", cwd=project
    )
    assert r.returncode == 3, r.stderr
    assert "COMPLETED: 3 tasks" in r.stderr
    assert re.search(r"FAILED: 2 \(exit 3", r.stderr), r.stderr
    logs = sorted(tmp_path.glob("a-*.log"))
    assert len(logs) == 4
    states = [ready(p)[0] for p in logs]
    assert states.count("cold") == 1, states


def test_a_requeued_job_revalidates_and_succeeds(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "rq.log"
    (project / "rq.py").write_text(
        "import os, time\n"
        "n = int(os.environ.get('SLURM_RESTART_COUNT', '0'))\n"
        "print('RUN', n, flush=True)\n"
        "if n == 0:\n    time.sleep(120)\n"
    )
    r = uvslurm(
        "submit",
        "--parsable",
        "--requeue",
        "--open-mode=append",
        "-o",
        str(log),
        "-e",
        str(log),
        "rq.py",
        cwd=project,
    )
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    wait_for_text(log, "RUN 0", 60)
    assert cluster.run("scontrol", "requeue", job).returncode == 0
    requeued = time.monotonic()

    # Slurm holds a requeued job back (BeginTime in the future), and may set that again while
    # the requeue settles: let it start now whenever it is seen held, until it runs. Not within
    # the requeue's second: slurmd refuses a credential as old as the revocation of the first
    # run's ("Killing non-startable batch job: Job credential revoked", seen under load)
    seen = [""]

    def running_again() -> bool:
        if "RUN 1" in log_text(log):
            return True
        seen[0] = cluster.run("scontrol", "show", "job", job).stdout
        if "Reason=BeginTime" in seen[0] and time.monotonic() - requeued > 2.5:
            cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")
        return False

    try:
        wait_for(running_again, 120, "the requeued job to run again")
    except AssertionError as e:
        raise AssertionError(f"{e}\nscontrol: {seen[0]}\nlog: {log_text(log)}") from None
    text = log.read_text()
    assert len(ready_lines(text)) == 2, "the prolog ran again on the restarted job"
    assert ready_lines(text)[-1].state in ("warm", "placed")


def test_job_without_network_builds_from_what_submit_prefetched(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A compute node with no network: every connection fails (dead proxy) inside the job, yet the
    cold build succeeds from the shared cache that `submit` filled on the login node."""
    from conftest import make_project

    proj = make_project(tmp_path / "offline", ("idna",))
    log = tmp_path / "off.log"
    dead = "http://127.0.0.1:9"
    r = uvslurm(
        "submit", "--wait", f"--export=ALL,HTTPS_PROXY={dead},HTTP_PROXY={dead},ALL_PROXY={dead}",
        "-o", str(log), "-e", str(log), "--", "python", "-c", "import idna, os; print('OFFLINE', os.environ['HTTPS_PROXY'])",
        cwd=proj,
        env={"UV_CACHE_DIR": str(tmp_path / "fresh-cache")},  # only what submit fetched
    )  # fmt: skip
    text = log.read_text()
    assert r.returncode == 0, r.stderr + text
    assert f"OFFLINE {dead}" in text
    assert "uv sync --frozen --offline" in text
    assert "retrying with network access" not in text


STEP = "import os, sys; print('STEP', os.environ['SLURMD_NODENAME'], sys.prefix, flush=True)"


def _steps(text: str) -> dict[str, str]:
    """node -> sys.prefix of the step task that ran there"""
    return {m[0]: m[1] for m in re.findall(r"^STEP (\S+) (.*)$", text, re.M)}


def test_two_node_job_prepares_each_node_once_and_steps_find_the_venv(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "mn.log"
    r = submit_wait(project, log, "-N", "2", "--", "srun", "python", "-c", STEP)
    text = log.read_text()
    assert r.returncode == 0, r.stderr + text
    state, _, venv = ready(log)
    assert state == "cold"
    # one placement per node (the dev cluster gives each node scratch of its own, at one path)
    assert re.search(r"prepared 2 nodes in \d+ ms: n1: warm \d+ ms; n2: placed \d+ ms", text), text
    assert text.count("placed on node-local") == 2, text
    assert text.count("built ") == 1, "one build for the job"
    assert _steps(text) == {"n1": venv, "n2": venv}, text
    assert not venv.startswith(str(tmp_path)), "ran from node-local disk, not from the depot"

    # a batch script whose body starts the step itself: the second job builds nothing
    script = project / "mn-job.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH -N 2\nsrun python -c {shlex.quote(STEP)}\n")
    log2 = tmp_path / "mn2.log"
    r2 = submit_wait(project, log2, str(script))
    text2 = log2.read_text()
    assert r2.returncode == 0, r2.stderr + text2
    assert "built " not in text2
    assert ready(log2)[0] == "placed"
    assert _steps(text2) == {"n1": ready(log2)[2], "n2": ready(log2)[2]}, text2


def test_two_node_job_without_node_local_runs_from_the_depot(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "dp.log"
    r = submit_wait(project, log, "-N", "2", "--no-node-local", "--", "srun", "python", "-c", STEP)
    text = log.read_text()
    assert r.returncode == 0, r.stderr + text
    venv = ready(log)[2]
    assert venv.startswith(str(tmp_path)), "the depot is under the test's SCRATCH"
    assert "prepared 2 nodes" not in text
    assert _steps(text) == {"n1": venv, "n2": venv}


def test_afterok_on_an_array_waits_for_every_task(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    done = tmp_path / "done"
    done.mkdir()
    task = (
        "import os, pathlib, sys, time; i = os.environ['SLURM_ARRAY_TASK_ID']; "
        f"time.sleep(1 + int(i)); pathlib.Path({str(done)!r}, i).touch()"
    )
    a = uvslurm("submit", "--parsable", "-a", "0-3", "-o", str(tmp_path / "a-%a.log"),
                "--", "python", "-c", task, cwd=project)  # fmt: skip
    assert a.returncode == 0, a.stderr
    array_id = a.stdout.strip()
    count = f"import os; print('DONE', len(os.listdir({str(done)!r})))"
    log = tmp_path / "b.log"
    b = submit_wait(project, log, "-d", f"afterok:{array_id}", "--", "python", "-c", count)
    assert b.returncode == 0, b.stderr + log.read_text()
    assert "DONE 4" in log.read_text(), "the dependent job started before every task ended"


def test_squashfs_image_is_mounted_by_each_job_and_unpacked_on_every_node_of_a_multinode_job(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    env = {"UVSLURM_IMAGE": "squashfs"}
    first = submit_wait(project, tmp_path / "1.log", "-w", "n1", "train.py", env=env)
    text = (tmp_path / "1.log").read_text()
    assert first.returncode == 0, first.stderr + text
    assert "packed the image" in text and "mounted the image" in text, text
    second = submit_wait(project, tmp_path / "2.log", "-w", "n2", "train.py", env=env)
    text = (tmp_path / "2.log").read_text()
    assert second.returncode == 0, second.stderr + text
    assert "built " not in text and "mounted the image" in text, text
    state, _, venv = ready(tmp_path / "2.log")
    assert state == "placed" and f'"prefix": "{venv}"' in text
    # several nodes run from one path: each node unpacks the image there instead
    log = tmp_path / "mn.log"
    r = submit_wait(project, log, "-N", "2", "--", "srun", "python", "-c", STEP, env=env)
    text = log.read_text()
    assert r.returncode == 0, r.stderr + text
    assert "mounted the image" not in text and text.count("from the image") == 2, text
    assert _steps(text) == {"n1": ready(log)[2], "n2": ready(log)[2]}, text


SIGNALLED = """\
import signal, sys, time
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
print("READY", flush=True)
for _ in range(600):
    if got:
        print("GOT USR1", flush=True)
        sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
"""


@pytest.mark.parametrize("image", ["none", "squashfs"])
def test_a_signal_for_the_batch_shell_reaches_the_program(
    cluster: Cluster, project: Path, tmp_path: Path, image: str
) -> None:
    """`sbatch --signal=B:USR1@60` and `scancel --batch` signal the batch shell only: programs
    that checkpoint on it must get it, also when the shell stays to unmount an image."""
    (project / "sig.py").write_text(SIGNALLED)
    log = tmp_path / "sig.log"
    r = uvslurm("submit", "--parsable", "-o", str(log), "sig.py", cwd=project,
                env={"UVSLURM_IMAGE": image})  # fmt: skip
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    wait_for_text(log, "READY", 30)
    assert ("mounted the image" in log.read_text()) == (image == "squashfs")
    assert cluster.run("scancel", "--signal=USR1", "--batch", job).returncode == 0
    wait_for_text(log, "GOT USR1", 10)
