"""Crash safety and races on the real dev cluster: jobs and builders killed with SIGKILL."""

from __future__ import annotations

import os
import random
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Cluster, log_text, missing_files, uvslurm, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# every file of every installed distribution's RECORD is there (what `uv sync --check` misses)
VERIFY = """\
import importlib.metadata as md, os, sys
missing = [str(f) for d in md.distributions() for f in d.files or []
           if f.suffix != ".pyc" and "__pycache__" not in f.parts
           and not os.path.exists(d.locate_file(f))]
import six  # noqa: F401
print("VERIFY", len(missing), sys.prefix, os.environ.get("SLURMD_NODENAME"), flush=True)
sys.exit(1 if missing else 0)
"""


def _uv_that_builds_slowly(tmp_path: Path, seconds: float) -> Path:
    """uv itself, with `uv sync` inside jobs held back for `seconds` first: a window in which to
    kill a builder while other jobs wait for it."""
    real = subprocess.run(["bash", "-c", "command -v uv"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    wrapper = tmp_path / "slow-uv"
    wrapper.write_text(
        "#!/bin/bash\n"
        f'if [ "$1" = sync ] && [ -n "${{SLURM_JOB_ID:-}}" ]; then\n'
        f'  echo "SLOW-SYNC $SLURM_JOB_ID" >&2; sleep {seconds}\n'
        "fi\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def _gone(cluster: Cluster, job: str) -> bool:
    return not cluster.run("squeue", "-h", "-j", job).stdout.strip()


def test_builder_killed_while_others_wait_a_waiter_takes_over(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    (project / "verify.py").write_text(VERIFY)
    uv = _uv_that_builds_slowly(tmp_path, 4)
    logs = tmp_path / "logs"
    logs.mkdir()
    r = uvslurm("submit", "--parsable", "-a", "0-3", "--no-node-local", "-o", f"{logs}/%a.log",
                "verify.py", cwd=project, env={"UVSLURM_UV": str(uv)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    tasks = {i: logs / f"{i}.log" for i in range(4)}
    wait_for(lambda: any("SLOW-SYNC" in log_text(p) for p in tasks.values()), 60, "a builder")
    builder = next(i for i, p in tasks.items() if "SLOW-SYNC" in log_text(p))
    # (at the key's lock, or, in the job's first lines, at the builder's pending file)
    waiting = lambda: sum("uvslurm: waiting for " in log_text(p) for p in tasks.values())  # noqa: E731
    wait_for(lambda: waiting() == 3, 60, "three waiters")
    assert cluster.run("scancel", "--signal=KILL", "--full", f"{job}_{builder}").returncode == 0
    wait_for(lambda: _gone(cluster, job), 120, "the array to end")

    assert "ready (" not in log_text(tasks[builder]), "the killed builder never got to run"
    others = [i for i in tasks if i != builder]
    takers = [i for i in others if re.search(r"^uvslurm: built ", log_text(tasks[i]), re.M)]
    assert len(takers) == 1, "exactly one waiter took the build over"
    for i in others:
        text = log_text(tasks[i])
        assert re.search(r"^VERIFY 0 ", text, re.M), text
        assert "ready (cold)" in text if i in takers else "ready (warm)" in text, text


def _kill_job_at_random_moment(cluster: Cluster, job: str, log: Path, rng: random.Random) -> bool:
    """SIGKILL the job somewhere in its prolog; True if it was still preparing then."""
    wait_for(lambda: "uvslurm: fingerprint" in log_text(log), 60, "the prolog to start")
    time.sleep(rng.uniform(0, 0.5))
    preparing = "ready (" not in log_text(log)
    cluster.run("scancel", "--signal=KILL", "--full", job)
    return preparing


def _uv_that_kills_its_sync(tmp_path: Path) -> Path:
    """uv itself, except that inside a job `uv sync` gets SIGKILL at a random moment of its first
    0.1 s (and says KILLED-SYNC when that hit a running sync)."""
    real = subprocess.run(["bash", "-c", "command -v uv"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    wrapper = tmp_path / "killing-uv"
    wrapper.write_text(
        "#!/bin/bash\n"
        'if [ "$1" = sync ] && [ -n "${SLURM_JOB_ID:-}" ]; then\n'
        f'  {real} "$@" & pid=$!\n'
        '  sleep "$(printf "0.%03d" $((RANDOM % 100)))"\n'
        '  kill -KILL "$pid" 2>/dev/null && echo "KILLED-SYNC" >&2\n'
        '  wait "$pid"; exit $?\n'
        "fi\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def _submit(project: Path, log: Path, *args: str, env: dict[str, str] | None = None) -> str:
    r = uvslurm("submit", "--parsable", "-w", "n1", "-o", str(log), *args, cwd=project, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_kill_at_random_moments_of_cold_builds_on_the_cluster(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    """20 trials, each a cold build into an empty depot: 10 jobs killed (scancel --signal=KILL)
    and 10 builders killed (kill -9 of `uv sync` on the node) at random moments. After each,
    every venv that looks ready is complete, and the next job runs on a complete venv."""
    (project / "verify.py").write_text(VERIFY)
    rng = random.Random(20261125)
    depot = Path(os.environ["SCRATCH"]) / "uvslurm"
    killing_uv = _uv_that_kills_its_sync(tmp_path)
    hits = {"job": 0, "builder": 0}
    for trial in range(20):
        subprocess.run(["rm", "-rf", str(depot)], check=True)
        log = tmp_path / f"k{trial}.log"
        if trial < 10:
            job = _submit(project, log, "verify.py")
            hits["job"] += _kill_job_at_random_moment(cluster, job, log, rng)
        else:
            job = _submit(project, log, "verify.py", env={"UVSLURM_UV": str(killing_uv)})
        wait_for(lambda: _gone(cluster, job), 60, f"job {job} to end")  # noqa: B023
        text = log_text(log)
        if trial >= 10:
            hits["builder"] += "KILLED-SYNC" in text
            # a killed sync is retried (offline, then with the network) or fails the job clearly
            assert "VERIFY 0 " in text or "uvslurm: error:" in text, text
        assert not re.search(r"^VERIFY [1-9]", text, re.M), f"trial {trial} ran on a broken venv"
        for marker in depot.glob("*/*/.uvslurm-ready"):
            assert missing_files(marker.parent) == [], f"trial {trial}: {marker.parent}"
        after = tmp_path / f"k{trial}-after.log"
        job = _submit(project, after, "verify.py")
        wait_for(lambda: _gone(cluster, job), 60, f"job {job} to end")  # noqa: B023
        assert re.search(r"^VERIFY 0 ", log_text(after), re.M), f"trial {trial}: {log_text(after)}"
    print(f"kill trials: 20 run, killed mid-preparation: {hits}; 20 following jobs succeeded")
    assert hits["job"] >= 3 and hits["builder"] >= 3, f"too few kills hit a build: {hits}"


def test_sixteen_jobs_of_one_key_starting_together_on_cold_nodes_build_once(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    (project / "verify.py").write_text(VERIFY)
    logs = tmp_path / "logs"
    logs.mkdir()
    # 2 CPUs a task: 8 tasks fit on a node, so the array starts on both nodes at once
    r = uvslurm("submit", "--wait", "-a", "0-15", "-c", "2", "-o", f"{logs}/%a.log", "verify.py",
                cwd=project)  # fmt: skip
    texts = [log_text(logs / f"{i}.log") for i in range(16)]
    assert r.returncode == 0, r.stderr + "".join(texts)
    assert sum(bool(re.search(r"^uvslurm: built ", t, re.M)) for t in texts) == 1, "one build"
    ran = [re.search(r"^VERIFY 0 \S+ (\S+)$", t, re.M) for t in texts]
    assert all(ran), "16 successes, each on a complete venv"
    assert {m.group(1) for m in ran if m} == {"n1", "n2"}, "cold nodes: both of them"
