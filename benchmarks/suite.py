"""The whole benchmark suite in one run: uvslurm against plain uv, side by side, checked against
the product targets; prints the summary table and rewrites the generated section of
docs/performance.md (between its `benchmarks:begin` and `benchmarks:end` markers).

    scripts/dev-cluster env benchmarks/run            # everything, ~5 minutes
    benchmarks/run --quick --no-cluster --output -    # smoke test, print only
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks import array, core, fstouch, hook, latency, nodestart
from benchmarks.common import REPO, Sample, files_in, log, make_bench, output
from benchmarks.report import Row, summary, table, update_doc

SHARED = ("depot", "uv cache")  # what the files-touched target counts


class Noise:
    """Samples the load average and other users' jobs in Slurm's queue while the suite runs."""

    def __init__(self, cluster: bool) -> None:
        self.cluster = cluster
        self.load: list[float] = []
        self.jobs: list[int] = []
        self.jobs_at_array: int | None = None
        self.load_before = float(Path("/proc/loadavg").read_text().split()[0])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def others(self) -> int:
        p = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True)
        if p.returncode != 0:
            return 0
        return sum(1 for name in p.stdout.split() if name != array.JOB_NAME)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.load.append(float(Path("/proc/loadavg").read_text().split()[0]))
            if self.cluster:
                self.jobs.append(self.others())
            self._stop.wait(2)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def wait_idle(self, seconds: float) -> None:
        """Wait (up to `seconds`) until no one else has jobs queued or running."""
        deadline = time.monotonic() + seconds
        n = self.others()
        if n:
            log(f"{n} jobs of others in squeue; waiting up to {seconds:.0f} s for them")
        while n and time.monotonic() < deadline:
            time.sleep(5)
            n = self.others()
        self.jobs_at_array = n

    def describe(self) -> str:
        load = (f"load average (1 min) {self.load_before:.1f} before the run, "
                f"{statistics.median(self.load):.1f} median and {max(self.load):.1f} max during it, "
                f"on {os.cpu_count()} cores") if self.load else ""  # fmt: skip
        if not self.cluster:
            return load
        jobs = f"other users' jobs in squeue: up to {max(self.jobs, default=0)}"
        if self.jobs_at_array is not None:
            jobs += f", {self.jobs_at_array} when the array part started"
        return f"{load}; {jobs}"


def checkout() -> str:
    """Which uvslurm was measured: the commit, and whether src/ had uncommitted changes."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "uvslurm (not a git checkout)"
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True
    )
    return f"uvslurm at {head.stdout.strip()}" + (
        " + uncommitted changes to src/" if dirty.stdout.strip() else ""
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="benchmarks/run", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: a small project (rich), 3 runs, a 4-task array, few prompts",
    )
    ap.add_argument("--no-cluster", action="store_true", help="skip the array part (no Slurm)")
    ap.add_argument(
        "--deps",
        help="packages of the benchmark project "
        "(default: 'numpy pandas matplotlib', with --quick 'rich')",
    )
    ap.add_argument("--runs", type=int, help="runs of each timing (default 21, --quick 3)")
    ap.add_argument("--tasks", type=int, help="tasks of the array (default 16, --quick 4)")
    ap.add_argument("--rounds", type=int, help="runs of each array setup (default 3, --quick 1)")
    ap.add_argument(
        "--node-local",
        default="/dev/shm",
        help="node-local disk to place venvs onto (default /dev/shm: a tmpfs, like "
        "many sites' per-job TMPDIR)",
    )
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=600,
        help="seconds to wait for other users' jobs to leave the queue before the "
        "array part (default 600)",
    )
    ap.add_argument(
        "--shared-latency",
        type=float,
        metavar="MS",
        help="run every row with the project, the depots and uv's cache on the latency layer "
        "(scripts/dev-cluster up --shared-latency MS), plus its own rows; written into the "
        "doc's shared-latency section",
    )
    ap.add_argument(
        "--shared-root",
        help="where the latency layer is mounted (default $UVSLURM_DEV_LAB/latencyfs)",
    )
    ap.add_argument(
        "--output",
        default=str(REPO / "docs" / "performance.md"),
        help="Markdown file whose generated section to rewrite ('-': none)",
    )
    return ap.parse_args(argv)  # fmt: skip


def rows_for(
    res: dict[str, dict[str, Sample]],
    touch: dict[str, dict[str, fstouch.Touched]],
    whole: nodestart.NodeStart,
    hooks: dict[str, tuple[float, float]],
    arr: list[array.Run] | None,
) -> list[Row]:
    warm, cold, node = res["warm"], res["cold"], res["node"]
    rows = []

    def ratio_row(measure: str, x: Sample, y: Sample, limit: float) -> Row:
        return Row(
            measure,
            x.median,
            y.median,
            f"≤ {limit:g}\N{MULTIPLICATION SIGN}",
            round(x.median / y.median, 2) <= limit,  # as the table shows it
        )

    w = warm["job script"]
    rows.append(ratio_row("warm job start: job script vs the plain job script (ms)", w, warm["plain job script"], 1.05))  # fmt: skip
    nc, pnc = warm["job script, no certificates"], warm["plain job script, no certificates"]
    if nc.values:
        rows.append(ratio_row("warm job start without SSL_CERT_DIR/SSL_CERT_FILE: job script vs the plain job script (ms)", nc, pnc, 1.05))  # fmt: skip
    else:
        rows.append(Row("warm job start without SSL_CERT_DIR/SSL_CERT_FILE: job script vs the plain job script (ms)", None, None, "≤ 1.05\N{MULTIPLICATION SIGN}", None, why=nc.why))  # fmt: skip
    rows.append(ratio_row("warm job start: job script vs `uv run --no-sync` (ms)", w, warm["uv run --no-sync"], 1.2))  # fmt: skip
    rows.append(ratio_row("warm job start: job script vs `uv run --frozen` (ms)", w, warm["uv run --frozen"], 1.2))  # fmt: skip
    rows.append(Row("cold build into the depot vs `uv sync --frozen` (copy) (ms)", cold["depot"].median, cold["uv sync"].median))  # fmt: skip
    rows.append(ratio_row("cold node start, directory copied to node-local disk vs `uv sync --frozen` (copy) there (ms)", node["directory"], node["uv sync"], 1.0))  # fmt: skip
    rows.append(ratio_row("cold node start, image unpacked to node-local disk vs `uv sync --frozen` (copy) there (ms)", node["image"], node["uv sync"], 1.0))  # fmt: skip
    sq = node["squashfs"]
    if sq.values:
        rows.append(Row("cold node start, squashfs image mounted on node-local disk (ms)", sq.median, node["uv sync"].median, "< 100 ms", sq.median < 100))  # fmt: skip
    else:  # its premise failed: no figure, and the target is not met
        rows.append(Row("cold node start, squashfs image mounted on node-local disk (ms)", None, node["uv sync"].median, "< 100 ms", False, why=sq.why))  # fmt: skip

    def files(variant: str, *steps: str) -> int:
        t = touch[variant][steps[0]]
        for s in steps[1:]:
            t = t + touch[variant][s]
        return t.files(*SHARED)

    sync = files("uv sync", "placement")
    rows.append(Row("shared-FS files touched by a cold node start's placement, directory (vs `uv sync --frozen`)", files("directory", "placement"), sync, unit="files"))  # fmt: skip
    img = files("image", "placement")
    rows.append(Row("shared-FS files touched by a cold node start's placement, image (vs `uv sync --frozen`)", img, sync, "≤ 10", img <= 10, unit="files"))  # fmt: skip
    ours, theirs = whole.uvslurm, whole.plain
    what = f"a whole cold node start as a job runs it, image = {whole.image or 'n/a'}"
    paths = None if ours is None else ours.shared_paths
    plain_paths = None if theirs is None else theirs.shared_paths
    rows.append(Row(f"shared-FS files touched by {what}: placement + the run step's first `uv run` (vs `uv sync` + `uv run`)", paths, plain_paths, "≤ 10", None if paths is None else paths <= 10, unit="files", why=whole.why))  # fmt: skip
    writes = None if ours is None else ours.writes.calls
    plain_writes = None if theirs is None else theirs.writes.calls
    rows.append(Row(f"writes into the shared uv cache by {what} (vs `uv sync` + `uv run`)", writes, plain_writes, "= 0", None if writes is None else writes == 0, unit="calls", why=whole.why))  # fmt: skip
    if arr:
        for one, many, label in ((arr[0], arr[1], " on one cold node: makespan vs one job's build"),
                                 (arr[3], arr[4], ", image = squashfs: makespan vs one squashfs job's build")):  # fmt: skip
            rows.append(array_row(one, many, label))
    d = res["dry-run"][""].median
    rows.append(Row("`uvslurm submit --dry-run` (ms)", d, None, "≤ 100 ms", d <= 100))
    for shell in hook.SHELLS:
        u = hooks[shell][0] if shell in hooks else None
        rows.append(Row(f"shell hook, {shell}: prompt, nothing changed (ms)", u, None, "< 3 ms", None if u is None else u < 3))  # fmt: skip
    for shell in hook.SHELLS:
        c = hooks[shell][1] if shell in hooks else None
        rows.append(Row(f"shell hook, {shell}: prompt after a directory change (ms)", c, None, "≤ 20 ms", None if c is None else c <= 20))  # fmt: skip
    return rows


def array_row(one: array.Run, many: array.Run, label: str) -> Row:
    """An array against one job: a number only where each run started cold (one build each,
    the premise of both makespans), else "n/a: why"."""
    measure = f"{many.tasks[0]}-task array{label} (ms; builds per run: 1 expected)"
    target = "1 build, ≤ 1.3\N{MULTIPLICATION SIGN}"
    bad = [r for r in (one, many) if any(n != 1 for n in r.builds)]
    if bad:
        why = "; ".join(f"{r.label}: {', '.join(map(str, r.builds))} builds" for r in bad)
        return Row(measure, None, None, target, why=f"not a cold start ({why})")
    return Row(measure, many.makespan, one.makespan, target, round(many.makespan / one.makespan, 2) <= 1.3)  # fmt: skip


def details(
    res: dict[str, dict[str, Sample]],
    touch: dict[str, dict[str, fstouch.Touched]],
    whole: nodestart.NodeStart,
    hooks: dict[str, tuple[float, float]],
    arr: list[array.Run] | None,
) -> str:
    names = {
        ("warm", "job script"): "warm: the job script (prolog + `uv run --no-sync`), from the depot",
        ("warm", "plain job script"): "warm: the plain job script (export UV_PROJECT_ENVIRONMENT, cd, `uv run --no-sync`)",
        ("warm", "job script, no certificates"): "warm: the job script, without SSL_CERT_DIR and SSL_CERT_FILE",
        ("warm", "plain job script, no certificates"): "warm: the plain job script, without SSL_CERT_DIR and SSL_CERT_FILE",
        ("warm", "uv run --no-sync"): "warm: `uv run --no-sync` on the same venv",
        ("warm", "uv run --frozen"): "warm: `uv run --frozen` on the same venv",
        ("cold", "depot"): "cold build into the depot (prolog)",
        ("cold", "depot, image"): "cold build into the depot, `image = \"tar.zst\"` (+ bytecode, + packing)",
        ("cold", "uv sync"): "`uv sync --frozen` (copy) into the depot's filesystem",
        ("node", "directory"): "cold node start: prolog copies the depot venv to node-local disk",
        ("node", "image"): "cold node start: prolog unpacks the image to node-local disk",
        ("node", "squashfs"): "cold node start: job script mounts the squashfs image (and unmounts it at its end)",
        ("node", "uv sync"): "`uv sync --frozen` (copy) into node-local disk",
        ("dry-run", ""): "`uvslurm submit --dry-run`",
    }  # fmt: skip
    timings = table(
        ["measurement", "median ms", "min\N{EN DASH}max ms", "runs"],
        [[label, f"{res[a][b].median:.1f}", res[a][b].spread, str(len(res[a][b].values))]
         if res[a][b].values else [label, f"n/a: {res[a][b].why}", "—", "0"]
         for (a, b), label in names.items()],
        {1, 2, 3},
    )  # fmt: skip

    def cell(t: fstouch.Touched, *roots: str) -> str:
        return f"{t.files(*roots)} ({t.syscalls(*roots)})"

    lines = []
    for variant, label in (("directory", "uvslurm, directory"), ("image", "uvslurm, image (tar.zst)"),
                           ("uv sync", "plain uv")):  # fmt: skip
        steps = touch[variant]
        both = [("whole start", steps["placement"] + steps["uv run"])] if "uv run" in steps else []
        for step, t in (*steps.items(), *both):
            what = {"placement": "placement" if variant != "uv sync" else "`uv sync --frozen` (copy)",
                    "uv run": "first `uv run --no-sync`", "whole start": "**whole cold node start**"}[step]  # fmt: skip
            lines.append([label, what, cell(t, "depot"), cell(t, "uv cache"), cell(t, "project"),
                          cell(t, *SHARED)])  # fmt: skip
    files = table(["setup", "step", "depot", "uv cache", "project", "depot + uv cache"], lines, {2, 3, 4, 5})  # fmt: skip
    parts = [
        "### Timings\n\nEvery measurement behind the summary: median and range over the runs.",
        timings,
        "### Shared-filesystem files touched per cold node start\n\n"
        "Distinct paths (and the syscalls naming them) under each shared root, from `strace -f "
        "-y -e trace=%file,getdents64,flock`. The target counts the depot and uv's cache; the "
        "project's own files (`pyproject.toml`, `uv.lock`, on `$WORK`) are read by both.",
        files,
        "### A whole cold node start as a job runs it\n\n"
        "One trace (`strace -f -y -e trace=%file,%desc`) of the job script from its first line to "
        "its command's end: the prolog places the venv from its image and the run step starts "
        "`python -c pass` through `uv run --no-sync` (benchmarks/nodestart.py). Distinct paths "
        "(and the syscalls naming them) per root; writes into uv's cache: syscalls that create, "
        "change or remove something there, attempted or done (and the distinct paths they name); "
        "its locks: `flock` calls on files there.",
        nodestart.table(whole),
    ]
    if arr:

        def one(r: array.Run) -> float:  # the single job of the same image setting
            return arr[3 if "squashfs" in r.label else 0].makespan

        parts.append(
            "### Array on one cold node\n\n"
            "Node n1 of the dev cluster, an empty depot each run; medians over the rounds. "
            '"vs one build" compares with the single job of the same image setting.'
        )
        parts.append(table(
            ["run", "makespan ms", "min\N{EN DASH}max ms", "builds per run", "tasks", "vs one build"],
            [[r.label, f"{r.makespan:.0f}", f"{min(r.makespans)}\N{EN DASH}{max(r.makespans)}",
              ", ".join(map(str, r.builds)), str(r.tasks[0]), f"{r.makespan / one(r):.2f}"] for r in arr],
            {1, 2, 3, 4, 5},
        ))  # fmt: skip
    parts.append("### Shell hook, per prompt")
    parts.append(table(
        ["shell", "nothing changed (µs)", "after `cd` into the project (ms)"],
        [[s, f"{hooks[s][0] * 1000:.0f}", f"{hooks[s][1]:.1f}"] if s in hooks else [s, "not installed", "—"]
         for s in hook.SHELLS],
        {1, 2},
    ))  # fmt: skip
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    deps = a.deps or ("rich" if a.quick else "numpy pandas matplotlib")
    runs = a.runs or (3 if a.quick else 21)
    tasks = a.tasks or (4 if a.quick else 16)
    rounds = a.rounds or (1 if a.quick else 3)
    prompts, changes = (100, 2) if a.quick else (500, 10)
    missing = [t for t in ("uv", "strace", "zstd") if not shutil.which(t)]
    if missing:
        sys.exit(f"benchmarks: {', '.join(missing)} not found (apt-get install strace zstd)")
    cluster = not a.no_cluster
    if cluster and subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        sys.exit("benchmarks: no Slurm cluster answers (scripts/dev-cluster up, and run this "
                 "under `scripts/dev-cluster env`), or pass --no-cluster")  # fmt: skip
    started = datetime.datetime.now(datetime.timezone.utc)
    measured = checkout()
    root, cache, lat = "/var/tmp", "", None
    if a.shared_latency is not None:
        lat = latency.check(Path(a.shared_root or latency.default_root()), a.shared_latency)
        if lat.why:
            return premise_failed(a, argv, lat.why)
        root, cache = str(lat.root), str(latency.cache_dir(lat.root))
        ops0 = latency.ops(lat.root)
    noise = Noise(cluster)
    noise.start()
    log(f"project: {deps}; work in {root}, node-local disk {a.node_local}")
    b = make_bench(deps, a.node_local, root=root, cache=cache)
    arr = None
    try:
        res = core.measure(b, runs)
        log("files touched (strace)")
        touch = fstouch.measure(b)
        log("a whole cold node start as a job runs it (strace)")
        whole = nodestart.measure(b)
        nfiles = files_in(b.prolog(b.work / "depot-node"))
        nfiles_img = files_in(b.prolog(b.work / "depot-node-img", image="tar.zst"))
        log("shell hook")
        hooks = hook.measure(b, prompts, changes)
        if lat:
            image = nodestart._image()[0] or "tar.zst"
            lat_res = latency.measure(b, lat.root, runs, image, cluster)
        if cluster:
            noise.wait_idle(a.wait_idle)
            arr = array.measure(b, tasks, rounds)
    finally:
        noise.stop()
        b.cleanup()
    rows = rows_for(res, touch, whole, hooks, arr)
    extra = ""
    if lat:
        rows = latency.rows(lat, lat_res, image) + rows
        extra = (f" Shared filesystem: the latency layer on `{lat.root}`, {a.shared_latency:g} ms "
                 f"asked, {lat.measured_ms:.2f} ms measured per metadata operation; it served "
                 f"{latency.ops(lat.root) - ops0} metadata operations during the run.")  # fmt: skip
    uv = output(["uv", "--version"]).strip()
    fs = output(["stat", "-f", "-c", "%T", a.node_local]).strip()
    secs = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    took = f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.0f} min"
    cmd = shlex.join(["benchmarks/run", *(argv if argv is not None else sys.argv[1:])])
    head = (
        f"Generated by `{cmd}` on {started:%Y-%m-%d %H:%M} UTC, in {took}. "
        f"{measured}. Machine: {platform.machine()}, {os.cpu_count()} cores, {uv}. Project: `{deps}` "
        f"({nfiles} files in the venv, {nfiles_img} with the image's bytecode). Node-local disk: "
        f"`{a.node_local}` ({fs}). Medians of {runs} runs (cold builds and starts: "
        f"{max(3, runs // 4)}). Noise: {noise.describe()}.{extra}"
    )
    table_md = summary(rows)
    note = ("The plain uv column is empty where uv has no counterpart (the target is absolute); "
            "for the array it holds one uvslurm job's build. Missed targets read **no**.")  # fmt: skip
    section = "\n\n".join([
        "<!-- generated by benchmarks/run: edit the text outside the markers, not this -->",
        head, table_md, note, details(res, touch, whole, hooks, arr),
        *([latency.table(lat_res)] if lat else []),
    ])  # fmt: skip
    return write(a, table_md, section, lat is not None)


def write(a: argparse.Namespace, table_md: str, section: str, shared: bool) -> int:
    print(table_md)
    if a.output != "-":
        markers = latency.MARKERS if shared else {}
        update_doc(Path(a.output), section, **markers)
        log(f"wrote the results into {a.output}")
    return 0


def premise_failed(a: argparse.Namespace, argv: list[str] | None, why: str) -> int:
    """--shared-latency without the layer it asks for: every row says why, none has a figure."""
    log(f"n/a: {why}")
    cmd = shlex.join(["benchmarks/run", *(argv if argv is not None else sys.argv[1:])])
    table_md = summary(latency.na_rows(why))
    section = "\n\n".join([
        "<!-- generated by benchmarks/run: edit the text outside the markers, not this -->",
        f"`{cmd}`: nothing measured.", table_md,
    ])  # fmt: skip
    return write(a, table_md, section, True)
