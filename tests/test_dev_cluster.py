"""scripts/dev-cluster beyond its default shape: more nodes (`up --nodes N`) and the "parallel
filesystem" (`up --shared-latency MS`), on a second cluster of the test's own (its own lab
directory and ports), so the shared one is never restarted."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import DEV_CLUSTER

# a port range no other cluster here uses (the shared one: 7817-7822, the lab's: 6817-6822)
PORT = 8317


def dev_cluster(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("NODE_COUNT", "SHARED_LATENCY")}
    if not shutil.which("uv") and os.environ.get("UV"):  # `uv run pytest` names itself
        full["PATH"] = f"{Path(os.environ['UV']).parent}{os.pathsep}{full.get('PATH', '')}"
    return subprocess.run(["bash", str(DEV_CLUSTER), *args], env={**full, **env},
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def nodes_of(conf: str) -> list[tuple[str, int, int]]:
    """(name, port, memory) of each NodeName line."""
    found = re.findall(r"^NodeName=(\S+) Port=(\d+) .* RealMemory=(\d+) ", conf, re.M)
    return [(n, int(p), int(m)) for n, p, m in found]


def test_the_node_count_shapes_slurm_conf_and_the_default_stays_two() -> None:
    default = dev_cluster("conf")
    assert default.returncode == 0, default.stderr
    assert [n for n, _, _ in nodes_of(default.stdout)] == ["n1", "n2"]
    assert dev_cluster("conf", NODE_COUNT="2").stdout == default.stdout
    eight = dev_cluster("conf", NODE_COUNT="8", UVSLURM_DEV_PORT="7917")
    nodes = nodes_of(eight.stdout)
    assert [n for n, _, _ in nodes] == [f"n{i}" for i in range(1, 9)]
    assert [p for _, p, _ in nodes] == list(range(7921, 7929))
    assert "SlurmctldPort=7917\n" in eight.stdout and "SlurmdPort=7918\n" in eight.stdout
    # the machine's memory is split between the nodes
    two_mem, eight_mem = nodes_of(default.stdout)[0][2], nodes[0][2]
    assert abs(two_mem - 4 * eight_mem) <= 4


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--nodes", "0"], "--nodes must be 1 to 99"),
        (["--nodes", "x"], "--nodes must be 1 to 99"),
        (["--shared-latency", "fast"], "--shared-latency takes milliseconds"),
        (["--shards", "2"], "unknown option '--shards'"),
    ],
)
def test_bad_up_options_say_so_in_one_line(args: list[str], says: str) -> None:
    p = dev_cluster("up", *args, UVSLURM_DEV_LAB="/nonexistent/lab")
    assert p.returncode == 2
    assert says in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not Path("/nonexistent/lab").exists()


@pytest.fixture
def lab() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("dev-cluster up needs root")
    # short: the munge socket's path must fit in a sockaddr_un
    d = Path(tempfile.mkdtemp(prefix="uvs-lab-", dir="/var/tmp"))
    yield d
    down = dev_cluster("down", UVSLURM_DEV_LAB=str(d), UVSLURM_DEV_PORT=str(PORT))
    if down.returncode == 0:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slurm
@pytest.mark.slow
def test_a_second_cluster_with_three_nodes_on_a_latency_filesystem(lab: Path) -> None:
    env = {"UVSLURM_DEV_LAB": str(lab), "UVSLURM_DEV_PORT": str(PORT), "DEPOT_FS": "coherent",
           "WITH_MPI": "0"}  # fmt: skip
    up = dev_cluster("up", "--nodes", "3", "--shared-latency", "2", **env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "n1:idle n2:idle n3:idle" in up.stdout, up.stdout
    shared = lab / "latencyfs"
    assert (shared / ".latencyfs-stats").read_text().startswith("latency_us 2000\n")
    assert (lab / "run" / "nodes").read_text() == "3\n"

    def srun(node: str, *cmd: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bash", str(DEV_CLUSTER), "env", "srun", "-w", node, "-N1", *cmd],
            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    # every node sees the layer: a lock held on n1 excludes n3, and n2's lookups pay the latency
    holder = srun("n1", "flock", "-o", str(shared / "lk"), "sleep", "20")
    try:
        deadline = time.monotonic() + 30
        while (
            subprocess.run(["flock", "-n", str(lab / ".latencyfs" / "lk"), "true"]).returncode == 0
        ):
            assert time.monotonic() < deadline, "n1 did not take the lock"
            assert holder.poll() is None, holder.communicate()
            time.sleep(0.2)
        tried = srun("n3", "flock", "-n", "-E", "7", str(shared / "lk"), "true")
        assert tried.wait(timeout=60) == 7, tried.communicate()
    finally:
        holder.terminate()  # srun passes it on to the step
    probe = "import os, time; t = time.perf_counter(); [os.path.lexists(f'{d}/no-{i}') for i in range(100)]; print(time.perf_counter() - t)"  # fmt: skip
    timed = srun("n2", "python3", "-c", probe.replace("{d}", str(shared)))
    out, err = timed.communicate(timeout=60)
    assert timed.returncode == 0, err
    assert float(out) >= 100 * 0.002, f"100 lookups on n2 took {float(out) * 1000:.0f} ms"
    # down: the layer is unmounted and its process gone, as every daemon of this cluster
    pid = int((lab / "run" / "pids" / "latencyfs.pid").read_text())
    down = dev_cluster("down", **env)
    assert down.returncode == 0, down.stderr
    assert "latencyfs" in down.stdout
    assert subprocess.run(["findmnt", "-M", str(shared)], capture_output=True).returncode != 0
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1].startswith("Z")
