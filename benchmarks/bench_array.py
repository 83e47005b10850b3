"""Array makespan on the dev cluster: N tasks starting together on one cold node vs one build.

    scripts/dev-cluster up
    scripts/dev-cluster env uv run python benchmarks/bench_array.py [--tasks 16] [--deps "numpy pandas"]

Both runs start from an empty depot. "One build" is a single job's `ready (cold) in N ms`; the
makespan is the largest `ready (...) in N ms` over the array's tasks (each counts from its own
start, and the tasks start together), so Slurm's scheduling and polling latency is left out.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

READY = re.compile(r"uvslurm: ready \((\w+)\) in (\d+) ms")


def submit(proj: Path, env: dict[str, str], logs: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "uvslurm", "submit", "--wait", "-w", "n1", "-o", logs, "-e", logs, *args,
         "--", "python", "-c", "pass"],
        cwd=proj, env=env, check=True, capture_output=True,
    )  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--deps", default="numpy pandas")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="uvslurm-bench-array-", dir="/var/tmp"))
    proj = work / "proj"
    proj.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    for cmd in (["uv", "init", "-q", "--app", "--no-package", "--name", "arr", "--python", "3.11", "--no-workspace", "."],
                ["uv", "add", "-q", "--no-sync", *a.deps.split()]):  # fmt: skip
        subprocess.run(cmd, cwd=proj, env=env, check=True)
    rows = []
    arr = ["-a", f"0-{a.tasks - 1}"]
    for label, extra in (
        ("one job", []),
        (f"{a.tasks}-task array (each task places onto its per-job TMPDIR)", arr),
        (
            f"{a.tasks}-task array, --no-node-local (all run from the depot)",
            [*arr, "--no-node-local"],
        ),
    ):
        run_env = {**env, "UVSLURM_DEPOT": str(work / f"depot-{len(rows)}")}
        logs = work / f"logs-{len(rows)}"
        logs.mkdir()
        submit(proj, run_env, str(logs / "%a.log"), *extra)
        found = [READY.search(p.read_text()) for p in logs.iterdir()]
        states = [m.group(1) for m in found if m]
        times = [int(m.group(2)) for m in found if m]
        rows.append((label, max(times), states.count("cold"), len(states)))
    one = rows[0][1]
    print(f"project deps: {a.deps}; node n1 of the dev cluster; empty depot each run\n")
    print("| run | makespan ms | builds | tasks | vs one build |")
    print("|---|---:|---:|---:|---:|")
    for label, ms, builds, n in rows:
        print(f"| {label} | {ms} | {builds} | {n} | {ms / one:.2f} |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
