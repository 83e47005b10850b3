"""Array makespan on the dev cluster: N tasks starting together on one cold node vs one build.

Every run starts from an empty depot, with its own copy of the project: a node-local copy is
named by project and key, not by depot, so one run's placements would serve the next. "One
build" is a single job's `ready (cold) in N ms`; the makespan is the largest `ready (...) in N
ms` over the array's tasks (each counts from its own start, and the tasks start together), so
Slurm's scheduling and polling latency is left out.
Each configuration runs `rounds` times, alternating; medians are reported.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import Bench, log

READY = re.compile(r"uvslurm: ready \((\w+)\) in (\d+) ms")
JOB_NAME = "uvslurm-bench"


@dataclass
class Run:
    label: str
    makespans: list[int] = field(default_factory=list)
    builds: list[int] = field(default_factory=list)
    tasks: list[int] = field(default_factory=list)

    @property
    def makespan(self) -> float:
        return statistics.median(self.makespans)


def submit(proj: Path, env: dict[str, str], logs: str, *args: str) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "uvslurm", "submit", "--wait", "-J", JOB_NAME, "-w", "n1", "-o", logs,
         "-e", logs, *args, "--", "python", "-c", "pass"],
        cwd=proj, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if p.returncode != 0:
        raise RuntimeError(f"uvslurm submit {args} exited {p.returncode}:\n{p.stderr}")


def measure(b: Bench, tasks: int, rounds: int) -> list[Run]:
    arr = ["-a", f"0-{tasks - 1}"]
    configs = [
        (Run("one job"), []),
        (Run(f"{tasks}-task array, default settings (one-task jobs run from the depot)"), arr),
        (Run(f"{tasks}-task array, --no-node-local (all run from the depot)"), [*arr, "--no-node-local"]),
        (Run("one job, image = squashfs (build + bytecode + packing)"), ["IMAGE=squashfs"]),
        (Run(f"{tasks}-task array, image = squashfs (each task mounts it)"), [*arr, "IMAGE=squashfs"]),
    ]  # fmt: skip
    n = 0
    for r in range(rounds):
        for run, extra in configs:
            n += 1
            log(f"array round {r + 1}/{rounds}: {run.label}")
            env = {**b.env, "UVSLURM_DEPOT": str(b.work / f"array-depot-{n}")}
            if "IMAGE=squashfs" in extra:
                env["UVSLURM_IMAGE"] = "squashfs"
            logs = b.work / f"array-logs-{n}"
            logs.mkdir()
            proj = b.work / f"array-proj-{n}"
            shutil.copytree(b.proj, proj, symlinks=True, ignore=shutil.ignore_patterns(".venv"))
            submit(proj, env, str(logs / "%a.log"), *[e for e in extra if e != "IMAGE=squashfs"])
            found = [READY.search(p.read_text()) for p in logs.iterdir()]
            states = [m.group(1) for m in found if m]
            if len(states) != (tasks if "-a" in extra else 1):
                raise RuntimeError(f"{run.label}: {len(states)} tasks reported ready, see {logs}")
            run.makespans.append(max(int(m.group(2)) for m in found if m))
            run.builds.append(states.count("cold"))
            run.tasks.append(len(states))
    return [run for run, _ in configs]
