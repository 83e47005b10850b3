"""The only place that runs sbatch and scontrol."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from uvslurm import proc
from uvslurm.errors import UvslurmError


def find_sbatch() -> str:
    found = shutil.which("sbatch")
    if not found:
        raise UvslurmError(
            "sbatch not found on PATH",
            "run this on a login node of a Slurm cluster (or use --dry-run)",
        )
    return found


def _job_id(line: str) -> str:
    # --parsable prints "jobid" or "jobid;cluster"
    return line.strip().split(";", 1)[0]


def submit(sbatch: str, script: Path, script_args: Sequence[str]) -> str:
    """Submit and return the job id."""
    try:
        out = proc.run([sbatch, "--parsable", str(script), *script_args])
    except proc.CommandFailed as e:
        raise UvslurmError(f"sbatch refused the job: {e.last_line}") from e
    job = _job_id(out)
    if not job:
        raise UvslurmError("sbatch printed no job id")
    return job


def log_path(job: str) -> str | None:
    """StdOut= of the job, with Slurm's patterns already expanded by slurmctld."""
    try:
        out = proc.run(["scontrol", "show", "job", "-o", job])
    except (proc.CommandFailed, UvslurmError):
        return None
    for field in out.split():
        if field.startswith("StdOut="):
            return field[len("StdOut=") :]
    return None


def task_states(job: str) -> list[tuple[str, str, str]]:
    """(array task id, state, exit code) of every task of an array job, as scontrol reports
    them (ended tasks stay visible for MinJobAge seconds)."""
    try:
        out = proc.run(["scontrol", "show", "job", "-o", job])
    except (proc.CommandFailed, UvslurmError):
        return []
    tasks = []
    for line in out.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "ArrayTaskId" in fields:
            tasks.append(
                (fields["ArrayTaskId"], fields.get("JobState", "?"), fields.get("ExitCode", "?"))
            )
    return sorted(tasks, key=lambda t: (len(t[0]), t[0]))


def _pump(f: TextIO | None, path: str | None, sink: TextIO) -> TextIO | None:
    if f is None and path and Path(path).exists():
        f = open(path, errors="replace")  # noqa: SIM115 - kept open while the job runs
    if f is not None:
        chunk = f.read()
        if chunk:
            sink.write(chunk)
            sink.flush()
    return f


def submit_wait(
    sbatch: str,
    script: Path,
    script_args: Sequence[str],
    on_job_id: Callable[[str], None],
    stream: bool = True,
) -> tuple[str, int]:
    """`sbatch --wait`: returns (job id, the job's exit code), streaming the job's log to stderr
    while it runs. `on_job_id(job)` is called as soon as the id is known."""
    p = proc.Stream([sbatch, "--parsable", "--wait", str(script), *script_args])
    job = _job_id(p.readline())
    if not job:
        err = p.finish()[1].strip()
        raise UvslurmError(
            f"sbatch refused the job: {err.splitlines()[-1] if err else 'no job id'}"
        )
    on_job_id(job)
    path = log_path(job) if stream else None
    f: TextIO | None = None
    try:
        while p.running():
            f = _pump(f, path, sys.stderr)
            time.sleep(0.5)
        f = _pump(f, path, sys.stderr)
    finally:
        if f is not None:
            f.close()
    code, rest = p.finish()
    if code != 0 and "error" in rest.lower() and "exit" not in rest.lower():
        sys.stderr.write(rest)
    return job, code
