"""The dev cluster's "parallel filesystem" (scripts/latencyfs.c): every metadata operation costs
the latency asked for, data does not; flock passes through to the source, so it excludes across
mounts (nodes); files belong to whoever made them. Mounted here, in the test's own directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import latencyfs_stats as stats
from conftest import wait_for


def test_metadata_operations_cost_the_latency_and_data_does_not(
    tmp_path: Path, latencyfs: Callable[[Path, float], Path]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(100):
        (src / f"f{i}").touch()
    (src / "data").write_bytes(os.urandom(4 << 20))
    mnt = latencyfs(src, 5)
    assert stats(mnt)["latency_us"] == 5000
    before = stats(mnt)
    t = time.perf_counter()
    for i in range(100):
        assert (mnt / f"f{i}").stat().st_size == 0
    took = time.perf_counter() - t
    after = stats(mnt)
    assert after["getattr"] - before["getattr"] >= 100
    assert took >= 100 * 0.005, f"100 lookups took {took * 1000:.0f} ms, less than 100 x 5 ms"
    # 64 reads of 64 KiB through one open file: no metadata operation, no delay
    with open(mnt / "data", "rb", buffering=0) as f:
        before = stats(mnt)
        t = time.perf_counter()
        chunks = iter(lambda: f.read(64 << 10), b"")
        assert sum(len(c) for c in chunks) == 4 << 20
        took = time.perf_counter() - t
        after = stats(mnt)
    # (opening the counter itself asks for the mount root's attributes: up to 2)
    assert after["ops"] - before["ops"] <= 2, "reading data counted metadata operations"
    assert after["data_reads"] > before["data_reads"]
    assert took < 64 * 0.005, f"reading 4 MiB took {took * 1000:.0f} ms: data was delayed too"


def test_flock_excludes_across_mounts_of_one_source(
    tmp_path: Path, latencyfs: Callable[[Path, float], Path]
) -> None:
    """Two mounts of one source, as two nodes see the shared filesystem: a lock taken through
    one excludes through the other (and on the source), and a blocked waiter gets it once the
    holder lets go."""
    src = tmp_path / "src"
    src.mkdir()
    a, b = latencyfs(src, 0.5), latencyfs(src, 0.5)
    # -o: the lock is flock's alone (not its child's), and ends when flock is killed
    holder = subprocess.Popen(["flock", "-o", str(a / "lk"), "sleep", "60"])
    try:
        wait_for(lambda: subprocess.run(["flock", "-n", str(src / "lk"), "true"]).returncode == 1,
                 10, "the lock taken through the first mount")  # fmt: skip
        assert subprocess.run(["flock", "-n", str(b / "lk"), "true"]).returncode == 1
        assert subprocess.run(["flock", "-n", str(a / "lk"), "true"]).returncode == 1
        waiter = subprocess.Popen(["flock", str(b / "lk"), "true"])
        time.sleep(0.5)
        assert waiter.poll() is None, "a blocking flock did not wait for the holder"
        holder.kill()
        holder.wait()
        assert waiter.wait(timeout=10) == 0
    finally:
        holder.kill()
    assert subprocess.run(["flock", "-n", str(b / "lk"), "true"]).returncode == 0
    assert stats(a)["flock"] >= 2 and stats(b)["flock"] >= 3


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory that every user can reach (pytest's own are root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="uvslurm-test-", dir="/var/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_files_belong_to_the_user_who_made_them(
    public_dir: Path, latencyfs: Callable[[Path, float], Path]
) -> None:
    src = public_dir / "src"
    src.mkdir()
    src.chmod(0o1777)
    mnt = latencyfs(src, 0.5)
    p = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
         f"umask 027 && mkdir {mnt}/d && echo x >{mnt}/d/f"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    st = (src / "d" / "f").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o640)
    # the kernel checks modes (default_permissions): that user cannot write into root's files
    (src / "root-only").write_text("")
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh",
                        "-c", f"echo x >{mnt}/root-only"], capture_output=True)  # fmt: skip
    assert p.returncode != 0 and (src / "root-only").read_text() == ""
