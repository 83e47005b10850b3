"""The benchmark command runs end to end and writes a complete summary into a copy of the doc."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO, latencyfs_stats

BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
HEADER = ["measure", "uvslurm", "plain uv", "ratio", "target", "met?"]
SHELLS = ("bash", "zsh", "fish")
# (start of the measure, has a plain-uv counterpart) for every row of a --no-cluster run
ROWS = [
    ("warm job start: job script vs the plain job script", True),
    ("warm job start without SSL_CERT_DIR/SSL_CERT_FILE: job script vs the plain job script", True),
    ("warm job start: job script vs `uv run --no-sync`", True),
    ("warm job start: job script vs `uv run --frozen`", True),
    ("cold build into the depot", True),
    ("cold node start, directory copied", True),
    ("cold node start, image unpacked", True),
    ("cold node start, squashfs image mounted", True),
    ("shared-FS files touched by a cold node start's placement, directory", True),
    ("shared-FS files touched by a cold node start's placement, image", True),
    ("shared-FS files touched by a whole cold node start as a job runs it, image = ", True),
    ("writes into the shared uv cache by a whole cold node start as a job runs it", True),
    ("`uvslurm submit --dry-run`", False),
    *((f"shell hook, {s}: prompt, nothing changed", False) for s in SHELLS),
    *((f"shell hook, {s}: prompt after a directory change", False) for s in SHELLS),
]
NUMBER = re.compile(r"^\d+(\.\d+)?$")
CERTS = ("SSL_CERT_DIR", "SSL_CERT_FILE")


def summary_rows(text: str) -> list[dict[str, str]]:
    lines = text.splitlines()
    start = lines.index("| " + " | ".join(HEADER) + " |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(HEADER, [c.strip() for c in line.strip("|").split("|")], strict=True)))
    return rows


TIMES = "\u00d7"  # the multiplication sign of the report's ratio targets


def _verdict(row: dict[str, str]) -> str | None:
    """What "met?" must say for a target "≤ 1.2" + TIMES (on the ratio) or "< 100 ms", "≤ 10",
    "= 0" (on uvslurm's value); None for other targets, or a value within rounding of the bound."""
    ratio = re.fullmatch(rf"([≤<]) ([\d.]+){TIMES}", row["target"])
    plain = re.fullmatch(r"([≤<=]) ([\d.]+)(?: ms)?", row["target"])
    m = ratio or plain
    if m is None:
        return None
    value = float(row["ratio"] if ratio else row["uvslurm"])
    bound = float(m.group(2))
    if m.group(1) == "=":
        return "yes" if value == bound else "**no**"
    if abs(value - bound) < 0.011:
        return None
    ok = value <= bound if m.group(1) == "≤" else value < bound
    return "yes" if ok else "**no**"


def test_the_verdict_follows_the_numbers() -> None:
    row = {"ratio": "1.25", "uvslurm": "5", "target": f"≤ 1.2{TIMES}", "met?": ""}
    assert _verdict(row) == "**no**"
    assert _verdict({**row, "ratio": "1.10"}) == "yes"
    assert _verdict({**row, "target": "< 100 ms", "uvslurm": "120"}) == "**no**"
    assert _verdict({**row, "target": "≤ 10", "uvslurm": "8"}) == "yes"
    assert _verdict({**row, "target": "= 0", "uvslurm": "0"}) == "yes"
    assert _verdict({**row, "target": "= 0", "uvslurm": "3"}) == "**no**"
    assert _verdict({**row, "target": f"1 build, ≤ 1.3{TIMES}"}) is None


@pytest.mark.slow
def test_quick_run_writes_every_row_with_numbers(tmp_path: Path) -> None:
    if not shutil.which("strace") or not shutil.which("zstd"):
        pytest.skip("needs strace and zstd")
    original = (REPO / "docs" / "performance.md").read_text()
    doc = tmp_path / "performance.md"
    doc.write_text(original)
    p = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--no-cluster", "--output", str(doc)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    text = doc.read_text()
    # only the generated section changed
    assert text.split(BEGIN)[0] == original.split(BEGIN)[0]
    assert text.split(END)[1] == original.split(END)[1]
    section = text.split(BEGIN)[1].split(END)[0]
    rows = summary_rows(section)
    assert rows == summary_rows(p.stdout), "the printed table is the one in the doc"
    assert len(rows) == len(ROWS), [r["measure"] for r in rows]
    for row, (start, has_plain) in zip(rows, ROWS, strict=True):
        assert row["measure"].startswith(start), (row["measure"], start)
        shell = re.match(r"shell hook, (\w+):", start)
        if shell and not shutil.which(shell.group(1)):
            assert row["uvslurm"] == "n/a"
            continue
        if "without SSL_CERT_DIR" in start and not any(map(os.environ.get, CERTS)):
            assert row["uvslurm"] == "n/a"  # the row above ran without them
            continue
        assert NUMBER.match(row["uvslurm"]), row
        if has_plain:
            assert NUMBER.match(row["plain uv"]) and NUMBER.match(row["ratio"]), row
            assert abs(float(row["ratio"]) - float(row["uvslurm"]) / float(row["plain uv"])) < 0.02
        if row["target"] != "—":
            assert row["met?"] in ("yes", "**no**"), row
            expected = _verdict(row)
            if expected is not None:
                assert row["met?"] == expected, f"the verdict does not follow the numbers: {row}"
    assert "--quick --no-cluster" in section
    assert "array" not in " ".join(r["measure"] for r in rows)


def test_nodestart_counts_writes_and_the_files_behind_descriptors(tmp_path: Path) -> None:
    """benchmarks/nodestart.py reads `strace -y -e trace=%file,%desc`: a call on a descriptor
    names the file behind it (its data names nothing), an at-call joins its directory and path,
    and a write is a create attempt, a change or a removal, not a read."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from benchmarks import nodestart

    lines = [
        '7 openat(AT_FDCWD</p>, "/c/CACHEDIR.TAG", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = -1 '
        "EEXIST (File exists)",
        '7 openat(AT_FDCWD</p>, "/c/i/x.msgpack", O_RDONLY|O_CLOEXEC) = 3</c/i/x.msgpack>',
        '7 read(3</c/i/x.msgpack>, "/etc/passwd, O_WRONLY"..., 100) = 100',
        '7 write(4</c/.tmp/y>, "/d/data", 7) = 7',
        '7 rename("/c/.tmp/y", "/c/i/y") = 0',
        '7 mkdir("/c", 0777) = -1 EEXIST (File exists)',
        "7 flock(9</c/.lock>, LOCK_SH|LOCK_NB) = 0",
        '8 newfstatat(5</d/p>, "k/bin/python", {st_mode=S_IFREG|0755, ...}, 0) = 0',
        '8 read(6</d/.facts/h>, "cpu=a /b", 100) = 8',
        "8 close(6</d/.facts/h>) = 0",
        '8 openat(AT_FDCWD</p>, "/d/p/k.lock", O_WRONLY|O_CREAT|O_APPEND, 0666 <unfinished ...>',
        "8 <... openat resumed>) = 6</d/p/k.lock>",
    ]
    trace = tmp_path / "trace"
    trace.write_text("\n".join(lines) + "\n")
    w = nodestart.writes(trace, Path("/c"))
    assert (w.calls, w.locks) == (4, 1), w
    assert w.paths == {"/c/CACHEDIR.TAG", "/c/.tmp/y", "/c/i/y", "/c"}
    t = nodestart.count(trace, {"depot": Path("/d"), "uv cache": Path("/c")})
    assert t.paths["depot"] == {"/d/p/k/bin/python", "/d/.facts/h", "/d/p/k.lock"}
    assert t.calls["depot"] == 4
    assert "/etc/passwd" not in t.paths["uv cache"] and len(t.paths["uv cache"]) == 6


@pytest.mark.slow
def test_a_figure_whose_premise_failed_is_not_reported(tmp_path: Path) -> None:
    """A squashfuse that cannot mount: the prolog unpacks the image instead (as it should on
    such a node), and the row for the mounted image says so instead of giving that time."""
    if not shutil.which("strace") or not shutil.which("zstd"):
        pytest.skip("needs strace and zstd")
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "squashfuse").write_text("#!/bin/sh\necho 'squashfuse: cannot mount' >&2\nexit 1\n")
    (shim / "squashfuse").chmod(0o755)
    p = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--no-cluster", "--output", "-"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
        env={**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{shim}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    (row,) = [r for r in summary_rows(p.stdout) if "squashfs image mounted" in r["measure"]]
    assert row["uvslurm"].startswith("n/a: the image was not mounted"), row
    assert row["met?"] == "**no**"


def _benchmarks(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=timeout,
    )  # fmt: skip


SHARED_BEGIN = "<!-- benchmarks-shared-latency:begin -->"


def test_shared_latency_without_the_layer_measures_nothing(tmp_path: Path) -> None:
    """--shared-latency where no latency layer is mounted: every row says why, none has a
    figure, and only the doc's shared-latency section is written."""
    original = (REPO / "docs" / "performance.md").read_text()
    doc = tmp_path / "performance.md"
    doc.write_text(original)
    p = _benchmarks("--quick", "--no-cluster", "--shared-latency", "0.5", "--shared-root",
                    str(tmp_path / "nothing-here"), "--output", str(doc))  # fmt: skip
    assert p.returncode == 0, p.stderr
    rows = summary_rows(p.stdout)
    assert len(rows) >= 6
    for row in rows:
        assert row["uvslurm"].startswith("n/a: the latency layer is not mounted on "), row
        assert row["met?"] == "—"
    text = doc.read_text()
    assert text.split(SHARED_BEGIN)[0] == original.split(SHARED_BEGIN)[0]
    assert summary_rows(text.split(SHARED_BEGIN)[1]) == rows


def test_scale_with_fewer_nodes_than_asked_measures_nothing() -> None:
    """benchmarks/run --scale where the cluster has fewer nodes than asked (none, or the
    shared dev cluster's 2): n/a rows, no job submitted."""
    p = _benchmarks("--scale", "--quick", "--nodes", "99", "--output", "-")
    assert p.returncode == 0, p.stderr
    rows = summary_rows(p.stdout)
    assert rows and all(re.match(r"n/a: \d+ nodes up, 99 asked", r["uvslurm"]) for r in rows), rows


def test_the_latency_premise_is_measured_on_the_layer(
    tmp_path: Path, latencyfs: Callable[[Path, float], Path]
) -> None:
    """--shared-latency checks its premise on the layer itself: the latency the layer adds is
    the one asked for, and an operation really costs that (timed against the layer's count)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from benchmarks import latency

    src = tmp_path / "shared"
    src.mkdir()
    mnt = latencyfs(src, 2)
    before = latencyfs_stats(mnt)["ops"]
    ok = latency.check(mnt, 2, probes=50)
    assert ok.why == "" and ok.measured_ms is not None and ok.measured_ms >= 2, ok
    assert latencyfs_stats(mnt)["ops"] - before >= 50
    other = latency.check(mnt, 0.5, probes=50)
    assert other.measured_ms is None
    assert other.why == f"the layer on {mnt} adds 2 ms per operation, not 0.5 ms"
    assert latency.check(src, 2).why.startswith(f"the latency layer is not mounted on {src}")


def test_the_latency_rows_say_why_a_figure_is_missing() -> None:
    """The layer's own rows: numbers where measured, "n/a: why" where the premise of one failed
    (an image that was not mounted), the ratio against plain uv's venv on the shared FS."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from benchmarks import latency
    from benchmarks.common import Sample
    from benchmarks.report import summary

    imp = latency.Imports("numpy", {"placed": Sample([120.0]), "plain": Sample([240.0]),
                                    "squashfs": Sample(why="the image was not mounted (no fuse)")})  # fmt: skip
    res = latency.Results(imp, {"uvslurm": Sample([80.0]), "uv": Sample([400.0])},
                          {"job script": Sample([118]), "uv run --no-sync": Sample([86])},
                          {"ms": Sample([2500.0, 3100.0, 2800.0]), "ops": Sample([2290, 2274, 2301])})  # fmt: skip
    premise = latency.Premise(Path("/x"), 0.5, measured_ms=0.61)
    table = summary_rows(summary(latency.rows(premise, res, "squashfs")))
    rows = {r["measure"].split(":")[0].split(",")[0]: r for r in table}
    assert (
        rows["metadata latency of the shared filesystem (ms per operation)"]["uvslurm"] == "0.610"
    )
    warm = rows["metadata operations of a warm start"]
    assert (warm["uvslurm"], warm["plain uv"]) == ("118", "86")
    assert rows["whole cold node start"]["ratio"] == "0.20"
    placed, mounted = [r for r in table if r["measure"].startswith("16 processes importing numpy")]
    assert (placed["uvslurm"], placed["ratio"]) == ("120.0", "0.50")
    assert mounted["uvslurm"] == "n/a: the image was not mounted (no fuse)"
    submit = [r for r in table if r["measure"].startswith("`uvslurm submit` to a fresh depot")]
    assert [(r["uvslurm"], r["plain uv"]) for r in submit] == [("2800.0", "—"), ("2290", "—")]
    skipped = latency.fresh_submits(None, Path("/x"), 3, cluster=False)  # type: ignore[arg-type]
    assert [s.why for s in skipped.values()] == ["no Slurm cluster (--no-cluster)"] * 2


def test_an_array_row_is_a_number_only_where_every_run_started_cold() -> None:
    """Each run needs its one build: a run that found its venv ready (a copy left on the node
    by an earlier run, as a node-local copy is named by project and key, not by depot) would
    compare an array that built nothing with a job that did."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from benchmarks import array, suite

    one = array.Run("one job", [1200, 1100], [1, 1], [1, 1])
    many = array.Run("16-task array", [1500, 1400], [1, 1], [16, 16])
    row = suite.array_row(one, many, " on one cold node: makespan vs one job's build")
    assert (row.uvslurm, row.plain, row.met) == (1450.0, 1150.0, True)
    assert row.measure.startswith("16-task array on one cold node")
    warm = array.Run("16-task array", [300, 1400], [0, 1], [16, 16])
    row = suite.array_row(one, warm, ", image = squashfs: makespan vs one squashfs job's build")
    assert row.uvslurm is None and row.plain is None and row.met is None
    assert row.cells()[1] == "n/a: not a cold start (16-task array: 0, 1 builds)"


def test_scale_solves_operations_per_node_and_per_task() -> None:
    """benchmarks.scale's model, on the 8-node runs of docs/performance.md: one per node costs
    nodes*(n + t), the built array nodes*n + tasks*t, the build the cold array's surplus; and
    the placements per node row reports the busiest node against the target of one."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from collections import Counter

    from benchmarks import scale
    from benchmarks.report import summary

    def run(ops: int | None, placements: dict[str, int] | None = None) -> scale.Run:
        per = Counter(placements or {})
        return scale.Run("r", tasks=256, makespan_ms=1000, builds=1, placements=per,
                         nodes=set(per) or {f"n{i}" for i in range(1, 9)}, ops=ops)  # fmt: skip

    spread = {f"n{i}": 32 for i in range(1, 9)}
    runs = [run(24358), run(858846, spread), run(26710), run(798388), run(57096)]
    m = scale.model(runs, 8, 256)
    assert m is not None
    assert (round(m.per_task), round(m.per_node), round(m.build)) == (3112, 227, 60458)
    assert scale.model([*runs[:3], run(None), runs[4]], 8, 256) is None
    rows = summary_rows(summary(scale.rows(runs, 8, 256, "")))
    (placed,) = [r for r in rows if "placements per node" in r["measure"]]
    assert (placed["uvslurm"], placed["met?"]) == ("32", "**no**")
    counted = summary_rows(summary(scale.rows([*runs[:3], run(None), runs[4]], 8, 256, "no layer")))
    assert [r["uvslurm"] for r in counted if "solved" in r["measure"]] == ["n/a: no layer"] * 3
