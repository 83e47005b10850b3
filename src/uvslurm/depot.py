"""The depot on disk: what is in it, and removing things safely (under the prolog's locks).

Layout (see docs/reference/job-script.md): <depot>/<project id>/<key>/ is a job venv with its
.uvslurm-ready marker, <key>.lock its build lock, <key>.tar.zst its image; shell-<fp>/ is the
interactive venv of `uvslurm env`; <depot>/.wheels/<pkg>-<version>/<fp>/ holds rebuilt wheels.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MARKER = ".uvslurm-ready"
USED = ".uvslurm-used"


@dataclass(frozen=True)
class Venv:
    path: Path
    kind: str  # "job", "interactive" or "incomplete"
    project: str  # the project path ("" when unknown)
    components: dict[str, str]
    last_used: float  # epoch seconds

    @property
    def project_exists(self) -> bool:
        return bool(self.project) and Path(self.project).is_dir()


def _marker(path: Path) -> tuple[str, dict[str, str]]:
    project, comps = "", dict[str, str]()
    try:
        text = (path / MARKER).read_text()
    except OSError:
        return project, comps
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "project":
            project = value
        elif key not in ("key", "size_kb", "built_on"):
            comps[key] = value
    return project, comps


def _last_used(path: Path) -> float:
    for name in (USED, MARKER, "pyvenv.cfg"):
        try:
            return (path / name).stat().st_mtime
        except OSError:
            continue
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def venvs(root: Path) -> Iterator[Venv]:
    """Every venv of the depot, job and interactive ones, and directories left incomplete."""
    if not root.is_dir():
        return
    for pdir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        interactive_project = ""
        for entry in sorted(pdir.iterdir()):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            project, comps = _marker(entry)
            if entry.name.startswith("shell-"):
                kind = "interactive"
                project = interactive_project or _interactive_project(pdir)
                interactive_project = project
            else:
                kind = "job" if (entry / MARKER).is_file() else "incomplete"
            yield Venv(entry, kind, project, comps, _last_used(entry))


def _interactive_project(pdir: Path) -> str:
    """An interactive venv has no marker; a job venv of the same project names it."""
    for marker in pdir.glob(f"*/{MARKER}"):
        project, _ = _marker(marker.parent)
        if project:
            return project
    return ""


def usage(path: Path) -> tuple[int, int]:
    """(bytes on disk, inodes) of a tree, without following links."""
    size, inodes = 0, 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            size += st.st_blocks * 512
            inodes += 1
    return size, inodes + 1


class Busy(Exception):
    """A job is building or placing this venv right now."""


def remove(venv: Path) -> None:
    """Remove a venv (and its image) under its build lock; Busy if a builder holds it."""
    lock = venv.parent / f"{venv.name}.lock"
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise Busy(str(venv)) from e
        # rename first: a job starting now sees no marker rather than a half-deleted venv
        trash = venv.parent / f".{venv.name}.trash-gc-{os.getpid()}"
        os.rename(venv, trash)
        shutil.rmtree(trash, ignore_errors=True)
        image = venv.parent / f"{venv.name}.tar.zst"
        image.unlink(missing_ok=True)
    finally:
        os.close(fd)
    lock.unlink(missing_ok=True)


def leftovers(root: Path, older_than: float) -> list[Path]:
    """Build and trash directories of killed builders, and lock files without a venv."""
    now = time.time()
    out = []
    for pdir in (p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")):
        for p in pdir.iterdir():
            if now - p.lstat().st_mtime <= older_than:
                continue
            dead_build = p.name.startswith(".") and (".build-" in p.name or ".trash-" in p.name)
            orphan_lock = p.suffix == ".lock" and not (pdir / p.stem).exists()
            if dead_build or orphan_lock:
                out.append(p)
    return out


def wheel_dirs(root: Path) -> Iterator[tuple[Path, float]]:
    """(<depot>/.wheels/<pkg>-<version>/<fp>, last used) for every rebuilt wheel."""
    for pkg in sorted((root / ".wheels").glob("*")):
        for fp in sorted(p for p in pkg.iterdir() if p.is_dir() and not p.name.startswith(".")):
            yield fp, _last_used(fp)
