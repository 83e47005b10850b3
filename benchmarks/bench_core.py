"""Core benchmarks, side by side in one run, as ratios against plain uv.

    uv run python benchmarks/bench_core.py [--deps "numpy pandas matplotlib"] [--runs 15]

Measures on this machine (no Slurm needed: the job script is run by bash as a node would run it):
  warm start     the rendered job script (prolog + `uv run --no-sync`) on a ready venv
                 vs `uv run --no-sync` and vs `uv run --frozen` on the same venv
  cold build     prolog building the depot venv vs `uv sync --frozen` (copy mode) into a fresh dir
  placed         prolog copying a ready depot venv to node-local disk vs `uv sync --frozen`
                 (copy mode) from the warm cache into the same disk
  dry-run        `uvslurm submit --dry-run` end to end
Prints a Markdown table (paste it into docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROLOG = REPO / "src" / "uvslurm" / "resources" / "prolog.sh"


def ms(f: Callable[[], object]) -> float:
    t = time.perf_counter()
    f()
    return (time.perf_counter() - t) * 1000


def run(argv: list[str], **kw: object) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


def uv_sync_copy(proj: Path, env: dict[str, str], venv: Path) -> None:
    """uv's own way to materialize the venv: `uv sync --frozen` in copy mode, warm cache."""
    venv_env = {**env, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_LINK_MODE": "copy"}
    run(["uv", "sync", "-q", "--frozen"], cwd=proj, env=venv_env)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deps", default="rich", help="packages of the benchmark project")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument(
        "--node-local",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="node-local disk to place onto (default /dev/shm, a tmpfs like many per-job TMPDIRs)",
    )
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="uvslurm-bench-"))
    proj, depot = work / "proj", work / "depot"
    local = Path(tempfile.mkdtemp(prefix="uvslurm-bench-", dir=a.node_local))
    env = {**os.environ, "SCRATCH": str(work / "scratch"), "UVSLURM_DEPOT": str(depot)}
    env.pop("VIRTUAL_ENV", None)
    proj.mkdir()
    run(
        [
            "uv",
            "init",
            "-q",
            "--app",
            "--no-package",
            "--name",
            "bench",
            "--python",
            "3.11",
            "--no-workspace",
            ".",
        ],
        cwd=proj,
        env=env,
    )
    run(["uv", "add", "-q", "--no-sync", *a.deps.split()], cwd=proj, env=env)
    run(["uv", "lock", "-q"], cwd=proj, env=env)
    penv = {**env, "UVSLURM_PROJECT": str(proj), "UVSLURM_MODE": "prepare", "UVSLURM_NODE_LOCAL": "never",
            "UVSLURM_PYTHON": "3.11"}  # fmt: skip
    out = subprocess.run(
        ["bash", str(PROLOG)], env=penv, capture_output=True, text=True, check=True
    )
    venv = out.stdout.strip()
    nfiles = sum(len(f) for _, _, f in os.walk(venv))
    rows: list[tuple[str, float, str, float]] = []

    # warm start: alternate the three so drift hits all alike
    script = subprocess.run(
        [sys.executable, "-m", "uvslurm", "submit", "--dry-run", "--no-node-local", "--", "python", "-c", "pass"],
        cwd=proj, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (work / "job.sh").write_text(script)
    uenv = {**env, "UV_PROJECT_ENVIRONMENT": venv}
    w, nosync, frozen = [], [], []
    for _ in range(a.runs + 1):
        w.append(ms(lambda: run(["bash", str(work / "job.sh")], cwd=proj, env=env)))
        nosync.append(
            ms(lambda: run(["uv", "run", "--no-sync", "python", "-c", "pass"], cwd=proj, env=uenv))
        )
        frozen.append(
            ms(lambda: run(["uv", "run", "--frozen", "python", "-c", "pass"], cwd=proj, env=uenv))
        )
    w, nosync, frozen = w[1:], nosync[1:], frozen[1:]
    rows.append(
        ("warm job start (uvslurm script)", median(w), "`uv run --no-sync`", median(nosync))
    )
    rows.append(("warm job start (uvslurm script)", median(w), "`uv run --frozen`", median(frozen)))

    # cold build in the depot vs uv sync --frozen (copy) into a fresh directory
    cold, sync = [], []
    for i in range(max(3, a.runs // 5)):
        shutil.rmtree(depot, ignore_errors=True)
        cold.append(ms(lambda: run(["bash", str(PROLOG)], env=penv)))
        d = work / f"uvsync-{i}"
        sync.append(ms(lambda d=d: uv_sync_copy(proj, env, d)))
        shutil.rmtree(d)
    rows.append(
        ("cold build into the depot", median(cold), "`uv sync --frozen` (copy)", median(sync))
    )

    # placed: copy the ready depot venv to node-local disk vs uv sync copy into the same disk
    placed, sync2 = [], []
    lenv = {**penv, "UVSLURM_NODE_LOCAL": str(local)}
    for i in range(max(3, a.runs // 5)):
        shutil.rmtree(local / f"uvslurm-{os.getuid()}", ignore_errors=True)
        placed.append(ms(lambda: run(["bash", str(PROLOG)], env=lenv)))
        d = local / f"uvsync-{i}"
        sync2.append(ms(lambda d=d: uv_sync_copy(proj, env, d)))
        shutil.rmtree(d)
    rows.append(
        (
            "placed on node-local disk",
            median(placed),
            "`uv sync --frozen` (copy) there",
            median(sync2),
        )
    )

    dry = [ms(lambda: run([sys.executable, "-m", "uvslurm", "submit", "--dry-run", "--", "python"], cwd=proj, env=env))
           for _ in range(a.runs)]  # fmt: skip
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{subprocess.run(['uv', '--version'], capture_output=True, text=True).stdout.strip()}; "
          f"project deps: {a.deps} ({nfiles} files in the venv); {a.runs} runs, medians.\n")  # fmt: skip
    print("| uvslurm | ms | plain uv | ms | ratio |")
    print("|---|---:|---|---:|---:|")
    for name, x, other, y in rows:
        print(f"| {name} | {x:.1f} | {other} | {y:.1f} | {x / y:.2f} |")
    print(f"| `uvslurm submit --dry-run` | {median(dry):.1f} | (target: 150 ms) | | |")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(local, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
