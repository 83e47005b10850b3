"""The suite on a filesystem that behaves like a parallel one (`benchmarks/run --shared-latency MS`).

`scripts/dev-cluster up --shared-latency MS` mounts scripts/latencyfs.c on <lab>/latencyfs: every
metadata operation (lookup, stat, open, create, readdir, rename, flock, close, ...) costs MS
milliseconds, data reads and writes do not, and the layer counts the operations it served
(<mount>/.latencyfs-stats). With `--shared-latency` the benchmark project, its depots and uv's
cache live there, as $WORK, $SCRATCH and a shared cache do on a cluster; node-local disk stays
local. Before anything is measured the premise is checked: the layer is mounted and a metadata
operation really costs at least what was asked. If not, every row reads "n/a: why".

Rows of its own, besides the suite's:

  metadata latency   per operation, measured (negative lookups, timed against the layer's count)
  warm start ops     the metadata operations of one warm start (the layer's count), the job
                     script vs `uv run --no-sync`: what a loaded metadata server multiplies
  whole cold start   the job script (place the venv from its image, then the first `uv run`)
                     vs `uv sync --frozen` (copy) into node-local disk + its first `uv run`
  16 imports         16 processes started at once, each `uv run --no-sync python -c "import M"`:
                     makespan with the venv placed on node-local disk, with the squashfs image
                     mounted, and with plain uv's venv on the shared (latency) filesystem
  fresh submit       `uvslurm submit --hold` to an empty depot (uv lock, the prefetch into uv's
                     warm cache, the login node's fingerprint, sbatch): its time and the
                     metadata operations it costs the shared filesystem (the job is cancelled)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import Bench, Sample, log, run
from benchmarks.report import Row
from benchmarks.report import table as report_table

STATS = ".latencyfs-stats"
# the doc's section for a --shared-latency run (the local run has the plain markers)
MARKERS = {"begin": "<!-- benchmarks-shared-latency:begin -->",
           "end": "<!-- benchmarks-shared-latency:end -->"}  # fmt: skip
PROCS = 16
# every row of a --shared-latency run whose premise failed: the suite's own parts and ours
PARTS = (
    "metadata latency of the shared filesystem (ms per operation)",
    "metadata operations of a warm start",
    "warm job start",
    "cold build into the depot",
    "cold node start (directory, image, squashfs)",
    "shared-FS files touched by a cold node start",
    "whole cold node start: placement + first `uv run`",
    f"{PROCS} processes importing at once",
    "array on one cold node",
    "submit to a fresh depot",
)


def default_root() -> Path:
    return Path(os.environ.get("UVSLURM_DEV_LAB", "/var/tmp/uvslurm-dev")) / "latencyfs"


def stats(root: Path) -> dict[str, int]:
    """The layer's counters: {"latency_us": ..., "ops": ..., "getattr": ..., ...}."""
    text = (root / STATS).read_text()
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


def ops(root: Path) -> int:
    return stats(root)["ops"]


@dataclass
class Premise:
    root: Path
    asked_ms: float
    measured_ms: float | None = None  # per metadata operation
    why: str = ""  # why the premise failed ("" when it holds)


def check(root: Path, asked_ms: float, probes: int = 300) -> Premise:
    """Is `root` the latency layer, adding `asked_ms` to each metadata operation?"""
    p = Premise(root, asked_ms)
    try:
        configured = stats(root)["latency_us"] / 1000
    except (OSError, KeyError, ValueError):
        p.why = (f"the latency layer is not mounted on {root} "
                 f"(scripts/dev-cluster up --shared-latency {asked_ms:g})")  # fmt: skip
        return p
    if abs(configured - asked_ms) > 1e-6:
        p.why = f"the layer on {root} adds {configured:g} ms per operation, not {asked_ms:g} ms"
        return p
    before = ops(root)
    t = time.perf_counter()
    for i in range(probes):  # negative lookups: one round trip each, nothing cached
        os.path.lexists(root / f".latency-probe-{os.getpid()}-{i}")
    took = (time.perf_counter() - t) * 1000
    n = ops(root) - before
    if n < probes:
        p.why = f"{probes} lookups on {root} reached the layer only {n} times (a cache in front?)"
        return p
    p.measured_ms = took / n
    if p.measured_ms < 0.9 * asked_ms:
        p.why = f"measured {p.measured_ms:.2f} ms per metadata operation, asked {asked_ms:g} ms"
    return p


def module_of(deps: str) -> str:
    """What the import row imports: numpy when the project has it, else its first package."""
    names = deps.split()
    return "numpy" if "numpy" in names else names[0].replace("-", "_")


# 16 processes at once; the makespan (ms) on stdout. $1: the prolog (sourced in activate mode
# first when $2 is "activate", so that a mounted image lasts for the processes), $3: module
_DRIVER = r"""
if [ "$2" = activate ]; then . "$1" || exit 1; fi
t0=${EPOCHREALTIME/[.,]/}
pids=()
for ((i = 0; i < PROCS; i++)); do
  uv run --no-sync python -c "import $3" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || exit 1; done
t1=${EPOCHREALTIME/[.,]/}
echo $(((t1 - t0) / 1000))
"""


@dataclass
class Imports:
    module: str
    res: dict[str, Sample] = field(default_factory=dict)


def _driver(b: Bench, env: dict[str, str], mode: str, module: str) -> tuple[float, str]:
    p = subprocess.run(
        ["bash", "-c", _DRIVER, "driver", str(b.prolog_sh), mode, module],
        cwd=b.proj, env={**env, "PROCS": str(PROCS)}, capture_output=True, text=True,
    )  # fmt: skip
    if p.returncode != 0:
        raise RuntimeError(f"{PROCS} imports ({mode}) exited {p.returncode}:\n{p.stderr}")
    return float(p.stdout.split()[-1]), p.stderr


def imports(b: Bench, runs: int) -> Imports:
    """16 processes importing at once, uvslurm's venv placed or mounted vs plain uv's venv on
    the shared filesystem (all three with the project there, as on a cluster)."""
    r = Imports(module_of(b.deps))
    depot, sq = b.work / "depot-imports", b.work / "depot-imports-sq"
    base = b.local / "imports"
    base.mkdir(exist_ok=True)
    placed = b.prolog(depot, node_local=str(base))
    squashfs = shutil.which("mksquashfs") and shutil.which("squashfuse")
    if squashfs:
        b.prolog(sq, image="squashfs")
    plain = b.work / "imports-plain-venv"
    b.uv_sync_copy(plain)
    r.res = {"placed": Sample(), "squashfs": Sample(), "plain": Sample()}
    if not squashfs:
        r.res["squashfs"].why = "mksquashfs or squashfuse is not installed"
    for i in range(runs + 1):  # the first round warms the page cache and is dropped
        t = _driver(b, {**b.env, "UV_PROJECT_ENVIRONMENT": str(placed)}, "run", r.module)[0]
        if i:
            r.res["placed"].values.append(t)
        if not r.res["squashfs"].why:
            sq_base = b.local / "imports-sq"
            sq_base.mkdir(exist_ok=True)
            env = {**b.prolog_env(sq, str(sq_base), "squashfs"), "UVSLURM_MODE": "activate"}
            t, err = _driver(b, env, "activate", r.module)
            if "uvslurm: mounted the image" not in err:
                last = err.strip().splitlines()[-1] if err.strip() else "no log"
                r.res["squashfs"] = Sample(why=f"the image was not mounted ({last})")
            elif i:
                r.res["squashfs"].values.append(t)
        t = _driver(b, {**b.env, "UV_PROJECT_ENVIRONMENT": str(plain)}, "run", r.module)[0]
        if i:
            r.res["plain"].values.append(t)
    return r


def whole_start(b: Bench, runs: int, image: str) -> dict[str, Sample]:
    """A whole cold node start, timed: the job script placing the venv from its image and
    running `python -c pass` through `uv run --no-sync`, vs `uv sync --frozen` (copy) into
    node-local disk and its first `uv run --no-sync` (nodestart.py traces the same steps)."""
    depot = b.work / f"depot-whole-{image}"
    b.prolog(depot, image=image)
    res = {"uvslurm": Sample(), "uv": Sample()}
    argv = ["bash", "-c", 'UVSLURM_CMD=(python -c pass); . "$0"', str(b.prolog_sh)]
    for i in range(runs):
        base = b.local / f"whole-{i}"
        base.mkdir()
        env = {**b.prolog_env(depot, str(base), image), "UVSLURM_MODE": "run"}
        t = time.perf_counter()
        err = run(argv, cwd=b.proj, env=env)
        took = (time.perf_counter() - t) * 1000
        if "ready (placed)" not in err:
            last = " ; ".join(err.strip().splitlines()[-2:])
            res["uvslurm"] = Sample(why=f"the venv was not placed from its image ({last})")
            break
        res["uvslurm"].values.append(took)
        venv = b.local / f"whole-uv-{i}" / "venv"
        uenv = {**b.env, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_LINK_MODE": "copy"}
        t = time.perf_counter()
        run(["uv", "sync", "-q", "--frozen"], cwd=b.proj, env=uenv)
        run(["uv", "run", "--no-sync", "python", "-c", "pass"], cwd=b.proj, env=uenv)
        res["uv"].values.append((time.perf_counter() - t) * 1000)
        shutil.rmtree(venv.parent)
        shutil.rmtree(base, ignore_errors=True)
    return res


def warm_ops(b: Bench, root: Path, runs: int) -> dict[str, Sample]:
    """Metadata operations the layer serves for one warm start: the job script (prolog + `uv
    run --no-sync`, from the depot) vs `uv run --no-sync` alone on the same venv. Each run
    waits out the layer's name cache first, so that both start as cold as a new job does."""
    venv = b.prolog(b.work / "depot")
    script = b.work / "job-ops.sh"
    script.write_text(b.uvslurm("submit", "--dry-run", "--no-node-local", "--", "python", "-c", "pass"))  # fmt: skip
    uenv = {**b.env, "UV_PROJECT_ENVIRONMENT": str(venv)}
    res = {"job script": Sample(), "uv run --no-sync": Sample()}
    cache_s = stats(root).get("cache_ms", 0) / 1000
    for _ in range(runs):
        for what, argv, env in (("job script", ["bash", str(script)], b.env),
                                ("uv run --no-sync", ["uv", "run", "--no-sync", "python", "-c", "pass"], uenv)):  # fmt: skip
            time.sleep(cache_s + 0.1)
            before = ops(root)
            run(argv, cwd=b.proj, env=env)
            res[what].values.append(ops(root) - before)
    return res


def fresh_submits(b: Bench, root: Path, runs: int, cluster: bool) -> dict[str, Sample]:
    """`uvslurm submit` as a user's first of a project: an empty depot, uv's cache warm. The job
    is held and cancelled; what is timed is the login node's side."""
    res = {"ms": Sample(), "ops": Sample()}
    if not cluster:
        for s in res.values():
            s.why = "no Slurm cluster (--no-cluster)"
        return res
    for i in range(runs):
        env = {**b.env, "UVSLURM_DEPOT": str(b.work / f"depot-submit-{i}")}
        before, t = ops(root), time.perf_counter()
        job = b.uvslurm("submit", "--parsable", "--hold", "--", "python", "-c", "pass", env=env)
        res["ms"].values.append((time.perf_counter() - t) * 1000)
        res["ops"].values.append(ops(root) - before)
        subprocess.run(["scancel", job.strip()], check=False)
        shutil.rmtree(env["UVSLURM_DEPOT"], ignore_errors=True)
    return res


def cache_dir(root: Path) -> Path:
    """uv's cache on the shared filesystem, kept between runs as a site's shared cache is (the
    first run fills it from the index)."""
    d = root / f"uv-cache-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


@dataclass
class Results:
    imports: Imports
    whole: dict[str, Sample]
    warm_ops: dict[str, Sample]
    submits: dict[str, Sample]


def measure(b: Bench, root: Path, runs: int, image: str, cluster: bool) -> Results:
    n = max(3, runs // 4)
    log(f"metadata operations of a warm start ({n} runs)")
    ops_ = warm_ops(b, root, n)
    log(f"{PROCS} processes importing {module_of(b.deps)} at once ({n} runs)")
    imp = imports(b, n)
    log(f"whole cold node start, timed ({n} runs)")
    whole = whole_start(b, n, image)
    log(f"submit to a fresh depot ({n} runs)")
    return Results(imp, whole, ops_, fresh_submits(b, root, n, cluster))


def na_rows(why: str) -> list[Row]:
    return [Row(part, None, why=why) for part in PARTS]


def rows(p: Premise, r: Results, image: str) -> list[Row]:
    """The rows of ours, before the suite's: the premise's figure first."""
    imp, whole = r.imports, r.whole
    out = [Row(PARTS[0], p.measured_ms, None, f"≥ {p.asked_ms:g} ms", True)]
    job, uv = r.warm_ops["job script"], r.warm_ops["uv run --no-sync"]
    out.append(Row("metadata operations of a warm start: job script vs `uv run --no-sync`",
                   job.median, uv.median, unit="ops"))  # fmt: skip
    u, v = whole["uvslurm"], whole["uv"]
    label = f"whole cold node start, image = {image}: job script (placement + first `uv run`) vs `uv sync --frozen` (copy) + first `uv run` (ms)"  # fmt: skip
    out.append(Row(label, u.median if u.values else None, v.median if v.values else None, why=u.why))  # fmt: skip
    plain = imp.res["plain"]
    for what, label in (("placed", "venv placed on node-local disk"),
                        ("squashfs", "squashfs image mounted")):  # fmt: skip
        s = imp.res[what]
        out.append(Row(f"{PROCS} processes importing {imp.module} at once, {label} vs plain uv's venv on the shared FS: makespan (ms)",
                       s.median if s.values else None, plain.median, why=s.why))  # fmt: skip
    sub = r.submits
    for what, label, unit in (("ms", "time (ms)", "ms"), ("ops", "metadata operations on the shared FS", "ops")):  # fmt: skip
        s = sub[what]
        out.append(Row(f"`uvslurm submit` to a fresh depot (uv lock, prefetch, login fingerprint, sbatch): {label}",
                       s.median if s.values else None, None, unit=unit, why=s.why))  # fmt: skip
    return out


def table(r: Results) -> str:
    imp, whole = r.imports, r.whole
    lines = [
        ("whole cold node start: uvslurm's job script", whole["uvslurm"]),
        ("whole cold node start: `uv sync --frozen` (copy) + first `uv run`", whole["uv"]),
        (
            f"{PROCS} processes, import {imp.module}: venv placed on node-local disk",
            imp.res["placed"],
        ),
        (f"{PROCS} processes, import {imp.module}: squashfs image mounted", imp.res["squashfs"]),
        (
            f"{PROCS} processes, import {imp.module}: plain uv, venv on the shared FS",
            imp.res["plain"],
        ),
    ]
    return report_table(
        ["measurement", "median ms", "min\N{EN DASH}max ms", "runs"],
        [[label, f"{s.median:.0f}", s.spread, str(len(s.values))] if s.values
         else [label, f"n/a: {s.why}", "—", "0"] for label, s in lines],
        {1, 2, 3},
    )  # fmt: skip
