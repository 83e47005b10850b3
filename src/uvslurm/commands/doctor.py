"""`uvslurm doctor`: check the site and say what to fix; each line ok, warn or fail."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from uvslurm import nodeenv, sources
from uvslurm.errors import UvslurmError
from uvslurm.project import Project, find_project

NETWORK_FS = (
    "nfs",
    "nfs4",
    "lustre",
    "gpfs",
    "beegfs",
    "cifs",
    "smb3",
    "ceph",
    "fuse",
    "9p",
    "panfs",
    "wekafs",
)


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | fail
    what: str
    detail: str
    fix: str = ""


def _out(argv: list[str]) -> str | None:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def fs_type(path: Path) -> str:
    """The filesystem type of `path`, from the longest matching mount point in /proc/mounts."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    target = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) > 2:
            mnt = parts[1].replace("\\040", " ")
            if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(
                best
            ):
                best, kind = mnt, parts[2]
    return kind


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _space(path: Path) -> tuple[float, int]:
    st = os.statvfs(_existing(path))
    return st.f_bavail * st.f_frsize / 2**30, st.f_favail


def checks(cwd: Path, project_dir: str | None) -> list[Check]:
    out: list[Check] = []
    project: Project | None = None
    try:
        project = (
            find_project(cwd / project_dir, explicit=True) if project_dir else find_project(cwd)
        )
    except UvslurmError:
        if project_dir:
            raise
    config = sources.load(project.tool_table if project else None, {})

    for tool in ("sbatch", "srun"):
        found = shutil.which(tool)
        out.append(Check("ok", tool, found) if found else
                   Check("fail", tool, "not found on PATH", "run uvslurm on a login node of a Slurm cluster"))  # fmt: skip
    if shutil.which("scontrol"):
        ping = _out(["scontrol", "ping"])
        out.append(Check("ok", "slurmctld", ping.splitlines()[0]) if ping and "UP" in ping else
                   Check("warn", "slurmctld", "does not answer `scontrol ping`", "check SLURM_CONF or the cluster"))  # fmt: skip

    try:
        uv = nodeenv.uvtool_find(config)
        version = _out([uv, "--version"]) or "?"
        out.append(Check("ok", "uv", f"{uv} ({version})"))
    except UvslurmError as e:
        uv = ""
        out.append(Check("fail", "uv", e.message, e.hint))

    if os.environ.get("LMOD_VERSION") or os.environ.get("LMOD_CMD"):
        out.append(
            Check("ok", "module system", f"Lmod {os.environ.get('LMOD_VERSION', '')}".strip())
        )
    elif os.environ.get("MODULESHOME"):
        out.append(
            Check("ok", "module system", f"Environment Modules ({os.environ['MODULESHOME']})")
        )
    else:
        out.append(Check("warn", "module system", "none found: loaded modules cannot be part of the fingerprint",
                         "fine on sites without modules; otherwise initialise Lmod in your shell"))  # fmt: skip

    depot = nodeenv.depot_root(config)
    kind = fs_type(_existing(depot))
    gib, inodes = _space(depot)
    try:  # the real test: what a job does first (root passes any access() check)
        depot.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=depot):
            writable = True
    except OSError:
        writable = False
    status = (
        "ok" if writable and gib > 1 and inodes > 10_000 else ("fail" if not writable else "warn")
    )
    out.append(Check(status, "depot", f"{depot} on {kind}, {gib:.0f} GiB and {inodes:,} inodes free" +
                     ("" if writable else ", not writable"),
                     "" if status == "ok" else "set `depot` (or UVSLURM_DEPOT) to scratch with room"))  # fmt: skip

    cache = _out([uv, "cache", "dir"]) if uv else None
    if cache:
        same = os.stat(_existing(Path(cache))).st_dev == os.stat(_existing(depot)).st_dev
        out.append(Check("ok" if same else "warn", "uv cache", f"{cache} ({fs_type(_existing(Path(cache)))})" +
                         ("" if same else ": not on the depot's filesystem, so uv copies every file instead of linking"),
                         "" if same else "set UV_CACHE_DIR to a directory on the depot's filesystem"))  # fmt: skip

    seen = set()
    for label, value in (
        ("SLURM_TMPDIR", os.environ.get("SLURM_TMPDIR")),
        ("TMPDIR", os.environ.get("TMPDIR")),
        ("/tmp", "/tmp"),
    ):
        if not value or value in seen:
            continue
        seen.add(value)
        p = Path(value)
        if not p.is_dir():
            out.append(Check("warn", f"node-local {label}", f"{value} does not exist here"))
            continue
        kind = fs_type(p)
        network = kind.startswith(NETWORK_FS)
        same = os.stat(p).st_dev == os.stat(_existing(depot)).st_dev
        free, _ = _space(p)
        note = (
            "network filesystem: not used"
            if network
            else ("the depot's filesystem: not used in auto mode" if same else "usable")
        )
        out.append(Check("warn" if network else "ok", f"node-local {label}", f"{value} ({kind}, {free:.0f} GiB free): {note}"))  # fmt: skip

    bash = _out(["bash", "-c", "echo ${BASH_VERSINFO[0]}"])
    out.append(Check("ok" if bash and int(bash) >= 5 else "fail", "bash", f"version {bash}",
                     "" if bash and int(bash) >= 5 else "the job prolog needs bash 5 on compute nodes"))  # fmt: skip
    out.append(Check("ok", "flock", shutil.which("flock") or "") if shutil.which("flock") else
               Check("fail", "flock", "not found", "install util-linux"))  # fmt: skip

    if project and uv:
        request = project.python_request()
        found = _out(
            [uv, "python", "find", "--project", str(project.root), *([request] if request else [])]
        )
        out.append(Check("ok", "python", f"{request or 'default'} -> {found}") if found else
                   Check("fail", "python", f"no interpreter for '{request}'",
                         f"run `uv python install {request}` (compute nodes have no network)"))  # fmt: skip
    return out


def run(ns: argparse.Namespace, cwd: Path) -> int:
    results = checks(cwd, ns.project)
    if ns.json:
        print(json.dumps([asdict(c) for c in results], indent=2))
    else:
        from rich.console import Console
        from rich.markup import escape

        c = Console(highlight=False)
        style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for r in results:
            fix = f" [dim]→ {escape(r.fix)}[/]" if r.fix else ""
            c.print(f"[{style[r.status]}]{r.status:4}[/] {escape(r.what)}: {escape(r.detail)}{fix}")
    return 1 if any(r.status == "fail" for r in results) else 0
