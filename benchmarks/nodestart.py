"""A whole cold node start as a job runs it, seen from the shared filesystem.

On a cluster the depot ($SCRATCH) and uv's cache (shared, so that nodes install offline) live on
the shared filesystem, whose metadata server pays for every lookup, create and lock; node-local
disk is free. One trace (`strace -f -y -e trace=%file,%desc`) covers the job script from its
first line to its command's end: the prolog places the depot venv on node-local disk from its
image (`image = "squashfs"` mounted where squashfuse and /dev/fuse work, else `"tar.zst"`
unpacked: the measure says which) and the run step starts `python -c pass` through
`uv run --no-sync`, uv's first run on that venv path. Against plain uv: `uv sync --frozen`
(copy mode) into the same disk, then its first `uv run --no-sync`.

Reported: the distinct paths touched under the depot and uv's cache (target: at most 10), and
the writes into uv's cache (target: none; uv also takes its cache's lock then). A write is any
syscall that creates, changes or removes something there, attempted or done (a create that finds
the file already there still asks the metadata server): an open for writing or creating, mkdir,
rename, unlink, rmdir, link, symlink, chmod, chown, utimes, truncate, and write-like calls on a
descriptor of a file there. When the premise does not hold (no strace, no image tool, the venv
was not placed from its image, plain uv writes nothing either) the measure is "n/a: why".

    uv run python -m benchmarks.nodestart [--deps "PKG ..."] [--node-local DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import fstouch
from benchmarks.common import Bench, log, make_bench, output
from benchmarks.fstouch import _STRING, Touched, paths_in

TRACE = ["strace", "-f", "-qq", "-y", "-s", "256", "-e", "trace=%file,%desc"]
SHARED = ("depot", "uv cache")
_LINE = re.compile(r"^\d+\s+(\w+)\((.*)$")
_FD_PATH = re.compile(r"^(\d+)<([^>]*)>")
# syscalls that change what a path names (their path arguments are the ones changed)
_PATH_WRITES = frozenset({
    "mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir", "link",
    "linkat", "symlink", "symlinkat", "chmod", "fchmodat", "chown", "fchownat", "lchown", "utime",
    "utimes", "utimensat", "futimesat", "truncate", "creat", "mknod", "mknodat", "setxattr",
    "lsetxattr", "removexattr", "lremovexattr",
})  # fmt: skip
# syscalls that change the file behind their first argument, a descriptor
_FD_WRITES = frozenset({
    "write", "pwrite64", "writev", "pwritev", "pwritev2", "ftruncate", "fallocate", "fchmod",
    "fchown", "fsetxattr", "fremovexattr",
})  # fmt: skip
_OPENS = frozenset({"open", "openat", "openat2"})
_WRITE_FLAGS = re.compile(r"\bO_(?:WRONLY|RDWR|CREAT|TRUNC|APPEND)\b")


# calls whose descriptor argument is a directory that a path argument is relative to
_AT_CALL = re.compile(r"(?:at|at2|^statx)$")


def paths_of(line: str) -> set[str]:
    """The paths one strace line names. A call on a descriptor (read, write, fstat, close,
    flock, getdents64, ...) names the file behind it; its data strings name nothing."""
    m = _LINE.match(line)
    if not m or "resumed>" in line:
        return set()
    name, args = m.groups()
    fd = _FD_PATH.match(args)
    if fd and not _AT_CALL.search(name):
        return {fd.group(2)}
    return paths_in(line)


def count(trace: Path, roots: dict[str, Path]) -> Touched:
    """fstouch's count, each descriptor call naming the file behind it."""
    return fstouch.count(trace, roots, paths_of)


@dataclass
class Writes:
    """Writes under one root: the syscalls, and the distinct paths they named."""

    calls: int = 0
    paths: set[str] = field(default_factory=set)
    locks: int = 0  # flock calls on files there


def writes_in(line: str) -> tuple[str, set[str]] | None:
    """("write" | "lock", the paths) when one strace line changes or locks files, else None."""
    m = _LINE.match(line)
    if not m or "resumed>" in line:
        return None
    name, args = m.groups()
    if name == "flock":
        return "lock", paths_of(line)
    fd = _FD_PATH.match(args)
    if name in _FD_WRITES and fd:
        return "write", {fd.group(2)}
    # an open's flags are its only O_ words once the strings (paths) are left out
    if name in _PATH_WRITES or (name in _OPENS and _WRITE_FLAGS.search(_STRING.sub("", args))):
        return "write", paths_in(line)
    return None


def writes(trace: Path, root: Path) -> Writes:
    w = Writes()
    for line in trace.read_text(errors="replace").splitlines():
        found = writes_in(line)
        if not found:
            continue
        kind, paths = found
        under = {p for p in paths if p == str(root) or p.startswith(f"{root}/")}
        if not under:
            continue
        if kind == "lock":
            w.locks += 1
        else:
            w.calls += 1
            w.paths |= under
    return w


@dataclass
class Side:
    """One side of the comparison: what its trace touched, and its writes into uv's cache."""

    touched: Touched
    writes: Writes

    @property
    def shared_paths(self) -> int:
        return self.touched.files(*SHARED)


@dataclass
class NodeStart:
    image: str  # "squashfs, mounted" or "tar.zst, unpacked" ("" when there is none to use)
    uvslurm: Side | None  # None: could not measure (`why`)
    plain: Side | None
    why: str = ""


def _image(want: str = "auto") -> tuple[str, str]:
    """(the image setting, how it is used) this machine allows, or ("", why none). `want`:
    auto (squashfs where it can be mounted, else tar.zst), squashfs or tar.zst."""
    fuse = os.access("/dev/fuse", os.R_OK | os.W_OK) and shutil.which("squashfuse")
    if want in ("auto", "squashfs") and shutil.which("mksquashfs") and fuse:
        return "squashfs", "squashfs, mounted"
    if want == "squashfs":
        return "", "squashfs cannot be mounted here (mksquashfs, squashfuse, a usable /dev/fuse)"
    if shutil.which("zstd"):
        return "tar.zst", "tar.zst, unpacked"
    return "", "neither squashfs (mksquashfs, squashfuse, a usable /dev/fuse) nor zstd"


def _traced(argv: list[str], trace: Path, roots: dict[str, Path], **kw: object) -> tuple[Side, str]:
    """Run argv under strace: what it touched and wrote, and its stderr."""
    p = subprocess.run([*TRACE, "-o", str(trace), *argv], capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise RuntimeError(f"{argv} under strace exited {p.returncode}:\n{p.stderr}")
    return Side(count(trace, roots), writes(trace, roots["uv cache"])), str(p.stderr)


def measure(b: Bench, want: str = "auto") -> NodeStart:
    """The whole cold node start, uvslurm's job script against plain uv (see the module doc)."""
    if not shutil.which("strace"):
        return NodeStart("", None, None, "strace is not installed")
    image, how = _image(want)
    if not image:
        return NodeStart("", None, None, how)
    cache = Path(output(["uv", "cache", "dir"], env=b.env).strip()).resolve()
    depot = b.work / f"depot-nodestart-{image}"
    b.prolog(depot, image=image)
    roots = {"depot": depot.resolve(), "uv cache": cache, "project": b.proj.resolve()}
    local = b.local.resolve()
    if any(
        local == r or local.is_relative_to(r) or r.is_relative_to(local) for r in roots.values()
    ):
        return NodeStart(how, None, None, f"node-local {local} overlaps the depot, uv's cache or the project")  # fmt: skip
    # uvslurm: the job script (its prolog in run mode, then `uv run --no-sync python -c pass`)
    base = b.local / "nodestart"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    env = {**b.prolog_env(depot, str(base), image), "UVSLURM_MODE": "run"}
    argv = ["bash", "-c", 'UVSLURM_CMD=(python -c pass); . "$0"', str(b.prolog_sh)]
    uvslurm, log_text = _traced(argv, b.work / "trace-nodestart", roots, cwd=b.proj, env=env)
    expected = "mounted the image" if image == "squashfs" else "from the image"
    if expected not in log_text or "ready (placed)" not in log_text:
        last = " | ".join(log_text.strip().splitlines()[-2:])
        return NodeStart(
            how, None, None, f"the prolog did not place the venv from its image ({last})"
        )
    # plain uv: `uv sync --frozen` (copy) into node-local disk, then its first `uv run`
    venv = b.local / "nodestart-uv" / "venv"
    shutil.rmtree(venv.parent, ignore_errors=True)
    venv.parent.mkdir()
    uenv = {**b.env, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_LINK_MODE": "copy"}
    sync, _ = _traced(["uv", "sync", "-q", "--frozen"], b.work / "trace-nodestart-sync", roots, cwd=b.proj, env=uenv)  # fmt: skip
    run, _ = _traced(["uv", "run", "--no-sync", "python", "-c", "pass"], b.work / "trace-nodestart-run", roots, cwd=b.proj, env=uenv)  # fmt: skip
    plain = Side(sync.touched + run.touched, Writes(sync.writes.calls + run.writes.calls,
                 sync.writes.paths | run.writes.paths, sync.writes.locks + run.writes.locks))  # fmt: skip
    if not run.writes.calls:
        return NodeStart(how, None, plain, "plain uv's first `uv run` wrote nothing into its cache "
                         "either: nothing to compare")  # fmt: skip
    return NodeStart(how, uvslurm, plain)


def table(r: NodeStart) -> str:
    """The details: per root, distinct paths (and syscalls naming them); uv cache writes."""
    head = [
        "setup",
        "depot",
        "uv cache",
        "project",
        "depot + uv cache",
        "writes into uv cache",
        "its locks",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for label, side in ((f"uvslurm, image = {r.image or 'n/a'}: job script", r.uvslurm),
                        ("plain uv: `uv sync --frozen` (copy) + `uv run`", r.plain)):  # fmt: skip
        if side is None:
            lines.append(
                f"| {label} | " + " | ".join([f"n/a: {r.why}"] + ["—"] * (len(head) - 2)) + " |"
            )
            continue
        t = side.touched
        cells = [f"{t.files(*roots)} ({t.syscalls(*roots)})"
                 for roots in (("depot",), ("uv cache",), ("project",), SHARED)]  # fmt: skip
        w = side.writes
        cells += [f"{w.calls} ({len(w.paths)} paths)", str(w.locks)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.nodestart", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--deps", default="numpy pandas matplotlib", help="packages of the project")
    ap.add_argument("--node-local", default="/dev/shm", help="node-local disk (default /dev/shm)")
    ap.add_argument("--image", choices=("auto", "squashfs", "tar.zst"), default="auto",
                    help="auto: squashfs where it can be mounted, else tar.zst")  # fmt: skip
    a = ap.parse_args(argv)
    b = make_bench(a.deps, a.node_local)
    try:
        log(f"whole cold node start (strace), project: {a.deps}")
        r = measure(b, a.image)
    finally:
        b.cleanup()
    if r.uvslurm is None:
        print(f"n/a: {r.why}")
    print(table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
