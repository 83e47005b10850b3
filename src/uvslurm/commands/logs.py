"""`uvslurm logs JOB [-f] [--err]`: print a job's log (an array task's: `JOB_TASK`), waiting
for the file while the job is pending; `-f` follows it until the job ends."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import Any

from uvslurm import manifest, output, slurm
from uvslurm.context import Context
from uvslurm.errors import UsageError, UvslurmError

POLL = 0.5


def log_path(doc: dict[str, Any], task: str, err: bool) -> str:
    """Where the log is: as slurmctld expanded it while it knows the job, else the pattern of
    the manifest with what is known filled in."""
    run = (doc.get("tasks") or {}).get(task) if task else doc.get("run")
    known = (run or {}).get("err_log" if err else "log")
    if known:
        return str(known)
    logs = doc.get("logs", {})
    pattern = logs.get("error" if err else "output") or logs.get("output", "")
    name = doc.get("sbatch", {}).get("job-name", {}).get("value", "")
    return manifest.expand_log(pattern, str(doc["job_id"]), task, str(name), getpass.getuser())


def _state(job_id: str) -> str:
    info = slurm.query([job_id]).get(job_id)
    if info is None:  # an array's task not yet listed alone: the array's state
        whole = slurm.query([job_id.split("_", 1)[0]])
        return "PENDING" if any(not i.ended for i in whole.values()) else "ENDED"
    return info.state


def _ended(state: str) -> bool:
    return state in slurm.ENDED or state == "ENDED"


def run(ctx: Context, ns: argparse.Namespace) -> int:
    doc, task = manifest.load(ns.job)
    job = str(doc["job_id"])
    if doc.get("array") and not task:
        tasks = ", ".join(f"{job}_{t}" for t in (doc.get("tasks") or {})) or f"{job}_0"
        raise UsageError(f"job {job} is an array: each task has its own log", f"name one: {tasks}")
    job_id = f"{job}_{task}" if task else job
    path = log_path(doc, task, ns.err)
    if "%" in path:
        raise UvslurmError(f"cannot tell where the log of job {job_id} is ({path})")
    said = False
    while not Path(path).exists():
        state = _state(job_id)
        if _ended(state):
            raise UvslurmError(f"job {job_id} ended ({state}) and left no log at {path}")
        if not said:
            output.line(f"waiting for job {job_id} ({state}) to write {path}")
            said = True
        time.sleep(POLL)
    with open(path, errors="replace") as f:
        sys.stdout.write(f.read())
        sys.stdout.flush()
        while ns.follow:
            ended = _ended(_state(job_id))
            chunk = f.read()  # after the state: what it wrote before it ended is read
            if chunk:
                sys.stdout.write(chunk)
                sys.stdout.flush()
            if ended:
                break
            time.sleep(POLL)
    return 0
