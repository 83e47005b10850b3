"""After submit, on the real dev cluster: `jobs`, `logs`, `cancel`, `show`, `resubmit`, the
manifest beside each job, and the job running the lock it was submitted with (issue 12)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import HOSTILE_NAMES, UV_CACHE, Cluster, log_text, uvslurm, wait_for, wait_for_text

pytestmark = pytest.mark.slurm

TICKS = "import time\nfor i in range(8):\n    print('TICK', i, flush=True)\n    time.sleep(1)\n"


def ok(*args: str, cwd: Path) -> str:
    return uvslurm(*args, cwd=cwd, check=True).stdout


def as_json(command: str, *args: str, cwd: Path) -> Any:
    return json.loads(ok(command, "--json", *args, cwd=cwd))


def listed(project: Path, job: str, *more: str) -> dict[str, Any]:
    """The row of `uvslurm jobs --json` for `job` (failing the test when there is none)."""
    rows = [r for r in as_json("jobs", *more, cwd=project)["jobs"] if r["job_id"] == job]
    assert len(rows) == 1, f"job {job} listed {len(rows)} times"
    return rows[0]


def state(project: Path, job: str) -> str:
    return str(listed(project, job)["state"])


def squeue_state(cluster: Cluster, job: str) -> str:
    return cluster.run("squeue", "-h", "-t", "all", "-j", job, "-o", "%T").stdout.strip()


def test_a_job_is_listed_pending_running_completed_and_its_log_is_followed_to_its_end(
    cluster: Cluster, project: Path
) -> None:
    (project / "ticks.py").write_text(TICKS)
    sub = as_json("submit", "--hold", "ticks.py", cwd=project)
    job = sub["job_id"]
    assert Path(sub["manifest"]).is_file() and sub["lock_sha256"] == sha(project / "uv.lock")
    assert listed(project, job)["state"] == "PENDING"
    # logs waits for the file while the job is pending
    follower = subprocess.Popen(
        [sys.executable, "-m", "uvslurm", "logs", "-f", job],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    assert follower.poll() is None, "logs -f ended while the job was pending"
    cluster.run("scontrol", "release", job)
    wait_for(lambda: state(project, job) == "RUNNING", 60, f"job {job} running")
    row = listed(project, job)
    assert row["nodes"] in ("n1", "n2")
    out, err = follower.communicate(timeout=90)
    # it streamed every tick, and ended by itself when the job ended
    assert [line for line in out.splitlines() if line.startswith("TICK")] == [
        f"TICK {i}" for i in range(8)
    ], out + err
    assert f"waiting for job {job} (PENDING)" in err
    assert squeue_state(cluster, job) in ("COMPLETED", "COMPLETING")
    done = listed(project, job)
    assert (done["state"], done["exit_code"]) == ("COMPLETED", 0)
    assert done["ready"] in ("cold", "placed", "warm")
    # the human table says the same
    table = ok("jobs", cwd=project)
    assert job in table and "COMPLETED" in table


def test_exit_codes_and_failed_state(cluster: Cluster, project: Path, tmp_path: Path) -> None:
    r = uvslurm("submit", "--wait", "--json", "-o", str(tmp_path / "f.log"), "train.py",
                cwd=project, env={"UVSLURM_TEST_EXIT": "3"})  # fmt: skip
    assert r.returncode == 3, r.stderr
    job = json.loads(r.stdout)["job_id"]
    row = listed(project, job)
    assert (row["state"], row["exit_code"]) == ("FAILED", 3)
    shown = as_json("show", job, cwd=project)
    assert shown["run"]["exit_code"] == 3
    # when Slurm has forgotten the job (no accounting, MinJobAge over), the job's own end
    # record still gives its exit code: simulated by a manifest whose id Slurm never knew
    jobs = Path(shown["script"]).parent.parent / "jobs"
    fake = "999999999"
    (jobs / f"{fake}.json").write_text(json.dumps({**shown, "job_id": fake, "run": None}))
    (jobs / f"{fake}.end").write_text(f"time={time.time()}\nnode=n1\nexit_code=5\n")
    gone = listed(project, fake)
    assert (gone["state"], gone["exit_code"]) == ("FAILED", 5)


def test_cancel_stops_a_running_job_and_jobs_says_cancelled(
    cluster: Cluster, project: Path
) -> None:
    (project / "ticks.py").write_text(TICKS.replace("range(8)", "range(300)"))
    job = as_json("submit", "ticks.py", cwd=project)["job_id"]
    wait_for(lambda: "TICK 1" in uvslurm("logs", job, cwd=project).stdout, 60, "a tick")
    r = uvslurm("cancel", job, cwd=project)
    assert r.returncode == 0 and f"cancelled {job}" in r.stderr, r.stderr
    wait_for(lambda: state(project, job) == "CANCELLED", 20, f"job {job} cancelled")
    assert squeue_state(cluster, job) == "CANCELLED"
    # the job script's shell stayed to record the end: the program's SIGTERM
    shown = as_json("show", job, cwd=project)
    wait_for(lambda: as_json("show", job, cwd=project)["run"]["ended_at"], 20, "the end record")
    assert shown["run"]["state"] == "CANCELLED"
    # --all: only this project's unfinished jobs
    held = as_json("submit", "--hold", "train.py", cwd=project)["job_id"]
    assert as_json("cancel", "--all", cwd=project)["cancelled"] == [held]
    wait_for(lambda: state(project, held) == "CANCELLED", 20, f"job {held} cancelled")


def test_array_tasks_are_listed_logged_and_cancelled_one_by_one(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    (project / "arr.py").write_text(
        "import os, sys, time\nt = int(os.environ['SLURM_ARRAY_TASK_ID'])\n"
        "print('TASK', t, flush=True)\ntime.sleep(30 if t == 2 else 0)\nsys.exit(t)\n"
    )
    job = as_json("submit", "-a", "0-2", "-o", str(tmp_path / "a-%A-%a.log"), "arr.py",
                  cwd=project)["job_id"]  # fmt: skip
    wait_for(lambda: "TASK 1" in uvslurm("logs", f"{job}_1", cwd=project).stdout, 90, "task 1")
    assert uvslurm("logs", f"{job}_0", cwd=project).stdout.count("TASK 0") == 1
    wait_for(lambda: "TASK 2" in log_text(tmp_path / f"a-{job}-2.log"), 60, "task 2 running")
    ok("cancel", f"{job}_2", cwd=project)
    wait_for(lambda: state(project, f"{job}_2") == "CANCELLED", 20, "task 2 cancelled")
    rows = {r["job_id"]: r for r in as_json("jobs", cwd=project)["jobs"]}
    assert (rows[f"{job}_0"]["state"], rows[f"{job}_0"]["exit_code"]) == ("COMPLETED", 0)
    assert (rows[f"{job}_1"]["state"], rows[f"{job}_1"]["exit_code"]) == ("FAILED", 1)
    assert job not in rows, "an array is listed by its tasks"
    # the array as a whole has no single log
    r = uvslurm("logs", job, cwd=project)
    assert r.returncode == 2 and f"name one: {job}_0" in r.stderr, r.stderr
    assert set(as_json("show", job, cwd=project)["tasks"]) == {"0", "1", "2"}


def test_a_held_job_runs_the_lock_submitted_after_uv_add(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "held.log"
    code = "import importlib.util as u; print('HAS_ATTRS', u.find_spec('attrs') is not None)"
    job = uvslurm("submit", "--parsable", "--hold", "-o", str(log), "--", "python", "-c", code,
                  cwd=project, check=True).stdout.strip()  # fmt: skip
    submitted = sha(project / "uv.lock")
    env = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE)}
    subprocess.run(["uv", "add", "-q", "--no-sync", "attrs"], cwd=project, env=env, check=True)
    assert sha(project / "uv.lock") != submitted
    cluster.run("scontrol", "release", job)
    wait_for_text(log, "HAS_ATTRS", 120)
    text = log.read_text()
    assert "HAS_ATTRS False" in text, text
    moved = [line for line in text.splitlines() if "changed since submission" in line]
    assert len(moved) == 1 and submitted[:12] in moved[0], text
    wait_for(lambda: state(project, job) == "COMPLETED", 30, "completed")
    shown = as_json("show", job, cwd=project)
    assert shown["lock"]["sha256"] == submitted == shown["run"]["lock_sha256"]
    assert shown["run"]["lock_moved"] is True
    # a job submitted now runs the new lock, attrs in it, and says nothing of a move
    log2 = tmp_path / "now.log"
    r = uvslurm("submit", "--wait", "-o", str(log2), "--", "python", "-c", code, cwd=project)
    assert r.returncode == 0, r.stderr
    assert "HAS_ATTRS True" in log2.read_text()
    assert "changed since submission" not in log2.read_text()


def test_show_names_commit_dirty_lock_fingerprint_exit_and_resubmit_reproduces_it(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a],  # noqa: E731
                                    cwd=project, check=True, capture_output=True, text=True)  # fmt: skip
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "one")
    (project / "train.py").write_text((project / "train.py").read_text() + "# edited\n")
    head = git("rev-parse", "HEAD").stdout.strip()
    args = ["train.py", *HOSTILE_NAMES]
    r = uvslurm("submit", "--wait", "-o", str(tmp_path / "s.log"), "-t", "5", *args, cwd=project)
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    shown = as_json("show", job, cwd=project)
    assert shown["schema"] == 1
    assert shown["argv"] == ["uvslurm", "submit", "--wait", "-o", str(tmp_path / "s.log"),
                             "-t", "5", *args]  # fmt: skip
    assert shown["git"]["commit"] == head and shown["git"]["dirty"] is True
    assert len(shown["git"]["diff_sha256"]) == 64
    assert shown["lock"]["sha256"] == sha(project / "uv.lock")
    assert shown["sbatch"]["time"] == {"value": "5", "source": "command line"}
    assert shown["sbatch"]["job-name"]["source"] == "default"
    run = shown["run"]
    assert (run["state"], run["exit_code"]) == ("COMPLETED", 0)
    assert len(run["fingerprint"]) == 12 and run["components"]["python"].startswith("cpython-3.11")
    # the readable form names the same things
    text = ok("show", job, cwd=project)
    for word in (head, "dirty", shown["lock"]["sha256"], run["fingerprint"], "exit code 0"):
        assert word in text, (word, text)
    script = ok("show", job, "--script", cwd=project)
    assert script == Path(shown["script"]).read_text() and script.startswith("#!/bin/bash")
    # the commit moves: resubmit says so, and runs the same lock with the same arguments
    git("commit", "-qam", "two")
    again = as_json("resubmit", job, cwd=project)
    assert any("the commit moved" in n for n in again["not_reproduced"]), again
    new = again["job_id"]
    wait_for(lambda: state(project, new) == "COMPLETED", 90, f"resubmitted job {new}")
    shown2 = as_json("show", new, cwd=project)
    assert shown2["lock"]["sha256"] == shown["lock"]["sha256"]
    assert shown2["resubmitted_from"] == job and shown2["argv"] == shown["argv"]
    out = log_text(tmp_path / "s.log")  # the same -o: the new job's output replaced it
    assert json.loads(out.split("TRAIN ", 1)[1].splitlines()[0])["argv"] == list(HOSTILE_NAMES)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_with_snapshot_edits_after_submit_do_not_change_what_a_held_job_runs(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a],  # noqa: E731
                                    cwd=project, check=True, capture_output=True, text=True)  # fmt: skip
    init = project / "src" / "demo" / "__init__.py"
    assert init.is_file(), "the test project is a packaged one"
    init.write_text("MARK = 'one'\n")
    (project / "data").mkdir()
    (project / "data" / "d.txt").write_text("one\n")
    (project / "snap.py").write_text(
        "import os, demo\nprint('SNAP', demo.MARK, open('data/d.txt').read().strip(), os.getcwd())\n"
    )
    (project / "untracked.txt").write_text("x")
    git("init", "-q")
    git("add", "src", "data", "snap.py", "pyproject.toml", "uv.lock", "train.py")
    git("commit", "-qm", "one")
    log = tmp_path / "snap.log"
    sub = as_json("submit", "--snapshot", "--hold", "-o", str(log), "snap.py", cwd=project)
    job = sub["job_id"]
    shown = as_json("show", job, cwd=project)
    snap = Path(shown["snapshot"])
    assert snap.name.startswith(".snapshot-") and (snap / "snap.py").is_file()
    assert not (snap / "untracked.txt").exists(), "only git-tracked files are copied"
    # edits after submission: code, the package, data
    init.write_text("MARK = 'two'\n")
    (project / "data" / "d.txt").write_text("two\n")
    (project / "snap.py").write_text("print('EDITED')\n")
    cluster.run("scontrol", "release", job)
    wait_for_text(log, "SNAP", 120)
    text = log.read_text()
    assert f"SNAP one one {snap}" in text and "EDITED" not in text, text
    assert f"running in the snapshot {snap}" in text
    # the same files again make the same snapshot; the edited ones another
    git("commit", "-qam", "two")
    r = uvslurm("submit", "--snapshot", "--wait", "-o", str(tmp_path / "2.log"), "--",
                "python", "snap.py", cwd=project)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "EDITED" in (tmp_path / "2.log").read_text()
    assert len(list(snap.parent.glob(".snapshot-*"))) == 2
    # a snapshot gone before the job starts: the job stops rather than run the code of now
    log3 = tmp_path / "3.log"
    held = as_json("submit", "--snapshot", "--hold", "-o", str(log3), "snap.py", cwd=project)
    shutil.rmtree(as_json("show", held["job_id"], cwd=project)["snapshot"])
    cluster.run("scontrol", "release", held["job_id"])
    wait_for_text(log3, "is gone", 60)
    assert "EDITED" not in log3.read_text()
    wait_for(lambda: listed(project, held["job_id"])["exit_code"] == 75, 30, "exit 75")
    # outside git, --snapshot is refused before anything is submitted
    shutil.rmtree(project / ".git")
    r = uvslurm("submit", "--snapshot", "snap.py", cwd=project)
    assert r.returncode == 1 and "is not in a git work tree" in r.stderr, r.stderr
