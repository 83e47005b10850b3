"""A big array over every node of the dev cluster: builds, placements and mounts per node, the
shared filesystem's metadata operations, makespan against one job.

    UVSLURM_DEV_LAB=/var/tmp/uvslurm-devG UVSLURM_DEV_PORT=7917 scripts/dev-cluster up --nodes 8 --shared-latency 0.5
    UVSLURM_DEV_LAB=/var/tmp/uvslurm-devG scripts/dev-cluster env benchmarks/run --scale

The project, its depots and uv's cache live on the latency layer when one is mounted
($UVSLURM_DEV_LAB/latencyfs, or --shared-root), whose operation counter then gives the metadata
operations each run cost the "parallel filesystem" (the logs are kept off it). Runs, each on the
same project, all with the default settings but the last:

  one job          a fresh depot: one build, one placement, one task
  array, cold      a fresh depot, TASKS tasks spread over the nodes (Slurm fills each node's CPUs)
  one per node     the same depot, now built: NODES tasks, one per node (--exclusive)
  array, warm      the same depot again, TASKS tasks
  array, squashfs  a fresh depot, image = "squashfs": TASKS tasks

From the warm runs, the operations per node (n) and per task (t) are solved: one per node costs
NODES*(n + t), the warm array NODES*n + TASKS*t; the build is what the cold array costs beyond the
warm one. Makespan: from just before sbatch to the last task's end (each task prints its end
time), so Slurm's dispatch counts and its --wait polling does not.

Premise: the cluster has at least --nodes nodes up; else every row reads "n/a: why".
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import latency
from benchmarks.common import Bench, log, make_bench
from benchmarks.report import Row, summary, table, update_doc

JOB_NAME = "uvslurm-scale"
MARKERS = {"begin": "<!-- benchmarks-scale:begin -->", "end": "<!-- benchmarks-scale:end -->"}
END = re.compile(r"^UVSLURM_SCALE (\S+) ([\d.]+)$", re.M)
READY = re.compile(r"uvslurm: ready \((\w+)\) in (\d+) ms")
CMD = "import os, time; print('UVSLURM_SCALE', os.environ['SLURMD_NODENAME'], time.time())"


@dataclass
class Run:
    label: str
    tasks: int = 0
    makespan_ms: float = 0
    builds: int = 0
    states: collections.Counter[str] = field(default_factory=collections.Counter)
    placements: collections.Counter[str] = field(default_factory=collections.Counter)  # per node
    mounts: collections.Counter[str] = field(default_factory=collections.Counter)  # per node
    nodes: set[str] = field(default_factory=set)
    ops: int | None = None  # metadata operations on the latency layer
    ready_ms: list[int] = field(default_factory=list)  # each task's prolog, start to ready


def nodes_up() -> list[str]:
    p = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True)
    if p.returncode != 0:
        return []
    ok = ("idle", "mixed", "allocated", "completing")
    return sorted(
        {n for n, state in (line.split() for line in p.stdout.splitlines()) if state in ok}
    )


@dataclass
class Setup:
    b: Bench
    logs: Path  # off the shared filesystem: the tasks' writes to them are not ours
    counter: Path | None  # the latency layer that holds the work directory, if any


def submit(s: Setup, run: Run, depot: str, logs: str, args: list[str], image: str = "") -> Run:
    b = s.b
    env = {**b.env, "UVSLURM_DEPOT": str(b.work / depot)}
    if image:
        env["UVSLURM_IMAGE"] = image
    out = s.logs / logs
    out.mkdir(parents=True)
    before = latency.ops(s.counter) if s.counter else None
    t0 = time.time()
    p = subprocess.run(
        [sys.executable, "-m", "uvslurm", "submit", "--wait", "-J", JOB_NAME,
         "-o", str(out / "%a.log"), "-e", str(out / "%a.log"), *args, "--", "python", "-c", CMD],
        cwd=b.proj, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if p.returncode != 0:
        raise RuntimeError(f"{run.label}: uvslurm submit exited {p.returncode}:\n{p.stderr}")
    if s.counter and before is not None:
        run.ops = latency.ops(s.counter) - before
    ends = []
    for f in out.iterdir():
        text = f.read_text()
        m = END.search(text)
        state = READY.search(text)
        if not m or not state:
            raise RuntimeError(f"{run.label}: {f} has no end line or ready line:\n{text[-2000:]}")
        node = m.group(1)
        ends.append(float(m.group(2)))
        run.nodes.add(node)
        run.states[state.group(1)] += 1
        run.ready_ms.append(int(state.group(2)))
        run.placements[node] += text.count("uvslurm: placed on node-local")
        run.mounts[node] += text.count("uvslurm: mounted the image")
    run.tasks = len(ends)
    run.builds = run.states["cold"]
    run.makespan_ms = (max(ends) - t0) * 1000
    log(f"{run.label}: {run.tasks} tasks on {len(run.nodes)} nodes, {run.makespan_ms:.0f} ms, "
        f"states {dict(run.states)}, ops {run.ops}")  # fmt: skip
    return run


def measure(s: Setup, nodes: int, tasks: int) -> list[Run]:
    arr = ["-a", f"0-{tasks - 1}"]
    one = submit(s, Run("one job"), "depot-one", "one", [])
    cold = submit(s, Run(f"{tasks}-task array, cold"), "depot-arr", "cold", arr)
    per_node = submit(s, Run(f"{nodes} tasks, one per node (--exclusive), built"), "depot-arr",
                      "pernode", ["-a", f"0-{nodes - 1}", "--exclusive"])  # fmt: skip
    warm = submit(s, Run(f"{tasks}-task array, built"), "depot-arr", "warm", arr)
    sq = submit(s, Run(f"{tasks}-task array, cold, image = squashfs"), "depot-sq", "squashfs",
                arr, image="squashfs")  # fmt: skip
    return [one, cold, per_node, warm, sq]


@dataclass
class Model:
    """Metadata operations per node (first task of a venv on a node) and per task, and the
    build's, solved from the runs (None without an operation counter)."""

    per_node: float
    per_task: float
    build: float


def model(runs: list[Run], nodes: int, tasks: int) -> Model | None:
    _, cold, per_node, warm, _ = runs
    if per_node.ops is None or warm.ops is None or cold.ops is None:
        return None
    t = (warm.ops - per_node.ops) / (tasks - nodes)
    n = per_node.ops / nodes - t
    return Model(n, t, cold.ops - warm.ops)


def rows(runs: list[Run], nodes: int, tasks: int, why_ops: str) -> list[Row]:
    one, cold, per_node, warm, sq = runs
    out = []
    for r in (cold, sq):
        ok = r.builds == 1 and len(r.nodes) == nodes
        out.append(Row(f"{r.label} over {len(r.nodes)} nodes: makespan vs one job (ms; builds: {r.builds})",
                       r.makespan_ms, one.makespan_ms, "1 build, all nodes", ok))  # fmt: skip
    for r, what in ((cold, "placements"), (sq, "mounts")):
        per = r.placements if what == "placements" else r.mounts
        most = max((per[n] for n in r.nodes), default=0)
        out.append(Row(f"{r.label}: {what} per node (most on one node; total {sum(per.values())})",
                       most, None, "1 per node", most == 1, unit="count"))  # fmt: skip
    for r in (one, cold, per_node, warm, sq):
        out.append(Row(f"shared-FS metadata operations: {r.label}", r.ops, None, unit="ops", why=why_ops))  # fmt: skip
    m = model(runs, nodes, tasks)
    solved = [None, None, None] if m is None else [m.per_node, m.per_task, m.build]
    for label, v in zip(("per node (first task of the venv there)", "per task", "the build"), solved, strict=True):  # fmt: skip
        out.append(Row(f"shared-FS metadata operations {label}, solved from the runs", v, None, unit="ops", why=why_ops))  # fmt: skip
    return out


def na_rows(why: str) -> list[Row]:
    parts = ("array over every node: makespan vs one job, builds", "placements or mounts per node",
             "shared-FS metadata operations per run", "shared-FS metadata operations per node and per task")  # fmt: skip
    return [Row(p, None, why=why) for p in parts]


def details(runs: list[Run]) -> str:
    return table(
        ["run", "tasks", "nodes", "makespan ms", "prolog ms: median, max", "ready states",
         "placements", "mounts", "metadata ops"],
        [[r.label, str(r.tasks), str(len(r.nodes)), f"{r.makespan_ms:.0f}",
          f"{statistics.median(r.ready_ms):.0f}, {max(r.ready_ms)}",
          ", ".join(f"{k} {v}" for k, v in sorted(r.states.items())),
          str(sum(r.placements.values())), str(sum(r.mounts.values())),
          "n/a" if r.ops is None else str(r.ops)] for r in runs],
        {1, 2, 3, 4, 6, 7, 8},
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0])  # fmt: skip
    ap.add_argument("--nodes", type=int, default=8, help="nodes the cluster must have up (8)")
    ap.add_argument("--tasks", type=int, help="array size (256, --quick 32)")
    ap.add_argument(
        "--deps", help="packages of the project (numpy pandas matplotlib; --quick rich)"
    )
    ap.add_argument("--quick", action="store_true", help="a small project and a 32-task array")
    ap.add_argument("--shared-root", help="the latency layer's mount ($UVSLURM_DEV_LAB/latencyfs)")
    ap.add_argument("--output", default="-", help="Markdown file whose scale section to rewrite")
    a = ap.parse_args(argv)
    tasks = a.tasks or (32 if a.quick else 256)
    deps = a.deps or ("rich" if a.quick else "numpy pandas matplotlib")
    cmd = " ".join(["python -m benchmarks.scale", *(argv if argv is not None else sys.argv[1:])])
    up = nodes_up()
    if len(up) < a.nodes:
        why = f"{len(up)} nodes up, {a.nodes} asked (scripts/dev-cluster up --nodes {a.nodes})"
        return write(a, summary(na_rows(why)), f"`{cmd}`: nothing measured.")
    root = Path(a.shared_root or latency.default_root())
    try:
        latency.ops(root)
        why_ops = ""
    except OSError:
        why_ops = f"no latency layer on {root} to count them (scripts/dev-cluster up --shared-latency 0.5)"  # fmt: skip
    shared = not why_ops
    b = make_bench(deps, "/dev/shm", root=str(root) if shared else "/var/tmp",
                   cache=str(latency.cache_dir(root)) if shared else "")  # fmt: skip
    s = Setup(b, Path(tempfile.mkdtemp(prefix="uvslurm-scale-logs-", dir="/var/tmp")),
              root if shared else None)  # fmt: skip
    try:
        log(f"{tasks}-task arrays over {a.nodes} nodes ({', '.join(up)}), project: {deps}")
        runs = measure(s, a.nodes, tasks)
    finally:
        b.cleanup()
        shutil.rmtree(s.logs, ignore_errors=True)
    table_md = summary(rows(runs, a.nodes, tasks, why_ops))
    head = (f"Generated by `{cmd}`: {len(up)} nodes up, {tasks}-task arrays, project `{deps}`"
            + (f", on the latency layer on `{root}` ({latency.stats(root)['latency_us'] / 1000:g} ms per metadata operation)." if shared else "."))  # fmt: skip
    return write(a, table_md, "\n\n".join([head, table_md, details(runs)]))


def write(a: argparse.Namespace, table_md: str, section: str) -> int:
    print(table_md)
    if a.output != "-":
        update_doc(Path(a.output), "<!-- generated by benchmarks.scale: edit the text outside the markers -->\n\n" + section, **MARKERS)  # fmt: skip
        log(f"wrote the results into {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
