"""Shared-filesystem files touched by a cold node start, counted with strace.

On a cluster the depot ($SCRATCH), uv's cache (shared so that nodes install offline) and the
project ($WORK) are on the shared filesystem, whose metadata server pays for every open, stat,
readdir and lock; node-local disk is free. Here the placement, traced alone: making the venv
ready on node-local disk, by the prolog (copying the depot venv, or unpacking its image) vs
`uv sync --frozen` (copy mode) from the cache, followed for plain uv by its first
`uv run --no-sync python -c pass` on that new venv. The whole cold node start as a job runs it
(placement and the run step's first `uv run`, in one trace): nodestart.py.

Counted: syscalls that name a path (strace's %file class, plus getdents64 and flock on a
directory or file descriptor, resolved with -y), and the distinct paths they name, per root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import Bench, output

TRACE = ["strace", "-f", "-qq", "-y", "-s", "4096", "-e", "trace=%file,getdents64,flock"]
_SYSCALL = re.compile(r"^\d+\s+(\w+)\((.*)$")
_AT = re.compile(r'(?:AT_FDCWD|\d+)<([^>]*)>, "((?:[^"\\]|\\.)*)"')
_FD_FIRST = re.compile(r"^(\d+)<([^>]*)>")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class Touched:
    """Per root: distinct paths and the syscalls that named them."""

    paths: dict[str, set[str]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def files(self, *roots: str) -> int:
        return len(set().union(*(self.paths.get(r, set()) for r in roots)))

    def syscalls(self, *roots: str) -> int:
        return sum(self.calls.get(r, 0) for r in roots)

    def __add__(self, other: Touched) -> Touched:
        keys = self.paths.keys() | other.paths.keys()
        return Touched(
            {k: self.paths.get(k, set()) | other.paths.get(k, set()) for k in keys},
            {k: self.calls.get(k, 0) + other.calls.get(k, 0) for k in keys},
        )


def paths_in(line: str) -> set[str]:
    """The filesystem paths one strace line names (not its argv strings, not its cwd)."""
    m = _SYSCALL.match(line)
    if not m or "resumed>" in line:
        return set()
    name, args = m.groups()
    found: set[str] = set()
    fd = _FD_FIRST.match(args)
    if fd and not args[fd.end() :].startswith(', "'):
        found.add(fd.group(2))  # getdents64(3</dir>, ...), flock(9</file>, ...)
    for d, p in _AT.findall(args):
        found.add(os.path.normpath(p if p.startswith("/") else os.path.join(d, p)) if p else d)
    args = _AT.sub("", args)
    strings = _STRING.findall(args)
    if name == "execve":
        strings = strings[:1]
    found.update(s for s in strings if s.startswith("/"))
    return found


def count(
    trace: Path, roots: dict[str, Path], paths: Callable[[str], set[str]] = paths_in
) -> Touched:
    """Per root: the distinct paths the trace names under it (`paths`: what one line names),
    and the calls naming them."""
    t = Touched({r: set() for r in roots}, dict.fromkeys(roots, 0))
    for line in trace.read_text(errors="replace").splitlines():
        hit = set()
        for p in paths(line):
            for r, root in roots.items():
                if p == str(root) or p.startswith(f"{root}/"):
                    t.paths[r].add(p)
                    hit.add(r)
        for r in hit:
            t.calls[r] += 1
    return t


def traced(
    argv: list[str], trace: Path, roots: dict[str, Path], **kw: object
) -> tuple[Touched, str]:
    """Run argv under strace: what it touched under `roots`, and its stdout."""
    p = subprocess.run([*TRACE, "-o", str(trace), *argv], capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise RuntimeError(f"{argv} under strace exited {p.returncode}:\n{p.stderr}")
    return count(trace, roots), str(p.stdout)


def measure(b: Bench) -> dict[str, dict[str, Touched]]:
    """{"directory" | "image": {"placement": ...}, "uv sync": {"placement": ..., "uv run": ...}},
    on the depots that core.cold_node built (or builds them)."""
    cache = Path(output(["uv", "cache", "dir"], env=b.env).strip()).resolve()
    res: dict[str, dict[str, Touched]] = {}
    for what, depot in (("directory", b.work / "depot-node"), ("image", b.work / "depot-node-img")):
        image = "tar.zst" if what == "image" else "none"
        b.prolog(depot, image=image)
        roots = {"depot": depot.resolve(), "uv cache": cache, "project": b.proj.resolve()}
        base = b.local / f"trace-{what}"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir()
        env = b.prolog_env(depot, str(base), image)
        placement, out = traced(
            ["bash", str(b.prolog_sh)], b.work / f"trace-{what}", roots, env=env
        )
        venv = Path(out.strip())
        assert venv.is_relative_to(base), f"not placed on node-local disk: {venv}"
        res[what] = {"placement": placement}
    roots = {"depot": b.work / "no-depot", "uv cache": cache, "project": b.proj.resolve()}
    venv = b.local / "trace-uvsync" / "venv"
    shutil.rmtree(venv.parent, ignore_errors=True)
    venv.parent.mkdir()
    env = {**b.env, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_LINK_MODE": "copy"}
    sync, _ = traced(["uv", "sync", "-q", "--frozen"], b.work / "trace-uvsync", roots, cwd=b.proj, env=env)  # fmt: skip
    res["uv sync"] = {"placement": sync, "uv run": first_run(b, venv, roots)}
    return res


def first_run(b: Bench, venv: Path, roots: dict[str, Path]) -> Touched:
    env = {**b.env, "UV_PROJECT_ENVIRONMENT": str(venv)}
    argv = ["uv", "run", "--no-sync", "python", "-c", "pass"]
    return traced(argv, b.work / f"trace-run-{venv.parent.name}", roots, cwd=b.proj, env=env)[0]
