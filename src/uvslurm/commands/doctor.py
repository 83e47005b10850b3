"""`uvslurm doctor`: check the site and say what to fix; each line ok, warn or fail."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from uvslurm import nodeenv, paths, sources
from uvslurm.commands.config_cmd import load
from uvslurm.config import Config
from uvslurm.errors import UvslurmError
from uvslurm.project import Project

# what the prolog treats as a network filesystem (never node-local): keep in step with
# _uvslurm_local_for in resources/prolog/place.sh
NETWORK_FS = re.compile(r"^(nfs.*|lustre|gpfs|beegfs|cifs|smb.*|fuse.*|ceph|9p|panfs|wekafs)$")
GIB = 2**30


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | fail
    what: str
    detail: str
    fix: str = ""


def _out(argv: list[str]) -> str | None:
    """stdout of a command that succeeded, else None. An active venv is not uv's business."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash in octal (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def fs_type(path: Path, mounts: str | None = None) -> str:
    """The filesystem type of `path`: the longest mount point in /proc/mounts that holds it."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return "unknown"
    target = os.path.realpath(path)
    best, kind = "", "unknown"
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = _unescape(parts[1])
        inside = target == mnt or target.startswith(mnt.rstrip("/") + "/")
        if inside and len(mnt) >= len(best):
            best, kind = mnt, parts[2]
    return kind


def is_network(kind: str) -> bool:
    return bool(NETWORK_FS.match(kind))


def existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free(path: Path) -> tuple[float, int]:
    """(GiB, inodes) available to this user on `path`'s filesystem."""
    st = os.statvfs(existing(path))
    return st.f_bavail * st.f_frsize / GIB, st.f_favail


def writable(path: Path) -> bool:
    """Can we create a file in `path`? (The real test: access() lies for root and ACLs.)"""
    try:
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def _same_fs(a: Path, b: Path) -> bool:
    return os.stat(existing(a)).st_dev == os.stat(existing(b)).st_dev


def slurm_checks() -> list[Check]:
    out = []
    for tool, needed in (("sbatch", True), ("srun", True), ("squeue", False), ("scontrol", False)):
        found = shutil.which(tool)
        if found:
            out.append(Check("ok", tool, found))
        else:
            why = (
                "needed to submit jobs" if needed else "used to follow jobs (--wait, depot checks)"
            )
            out.append(Check("fail" if needed else "warn", tool, f"not found on PATH ({why})",
                             "run uvslurm on a login node of a Slurm cluster, or put Slurm's bin directory on PATH"))  # fmt: skip
    if shutil.which("scontrol"):
        ping = _out(["scontrol", "ping"]) or ""
        if "UP" in ping:
            out.append(Check("ok", "slurmctld", " ".join(ping.split())))
        else:
            out.append(Check("warn", "slurmctld", "does not answer `scontrol ping`",
                             "check SLURM_CONF, or ask your admins whether the controller is down"))  # fmt: skip
    return out


def uv_check(config: Config) -> tuple[Check, str]:
    from uvslurm.errors import UvslurmError

    try:
        uv = nodeenv.uvtool_find(config)
    except UvslurmError as e:
        return Check("fail", "uv", e.message, e.hint), ""
    version = _out([uv, "--version"])
    if version is None:
        return Check("fail", "uv", f"{uv} does not run", "reinstall uv or set UVSLURM_UV"), ""
    return Check("ok", "uv", f"{uv} ({version})"), uv


_MODULE_INITS = ("/etc/profile.d/lmod.sh", "/usr/share/lmod/lmod/init/bash",
                 "/etc/profile.d/modules.sh", "/usr/share/modules/init/bash")  # fmt: skip


def module_check(config: Config) -> Check:
    loaded = [m for m in os.environ.get("LOADEDMODULES", "").split(":") if m]
    state = f"{len(loaded)} loaded" + (f": {', '.join(loaded[:6])}" if loaded else "")
    if not config.get("fingerprint.modules", True):
        state += "; left out of the fingerprint (fingerprint.modules = false)"
    lmod = os.environ.get("LMOD_CMD", "")
    if lmod:
        if not os.access(lmod, os.X_OK):
            return Check("warn", "module system", f"LMOD_CMD={lmod} is not executable",
                         "re-initialise Lmod in your shell (source /etc/profile.d/lmod.sh)")  # fmt: skip
        version = os.environ.get("LMOD_VERSION", "")
        return Check("ok", "module system", f"Lmod {version} ({state})".replace("  ", " "))
    tcl = os.environ.get("MODULES_CMD") or os.environ.get("MODULESHOME")
    if tcl:
        return Check("ok", "module system", f"Environment Modules, {tcl} ({state})")
    init = next((f for f in _MODULE_INITS if os.path.exists(f)), None)
    if init:
        return Check("warn", "module system", f"installed ({init}) but not initialised in this shell: "
                     "modules you load cannot be part of the fingerprint",
                     f"source {init} in your shell (a login shell does it)")  # fmt: skip
    return Check("warn", "module system", "none found: loaded modules cannot be part of the fingerprint",
                 "fine on a site without environment modules")  # fmt: skip


def _under(path: Path, var: str) -> bool:
    base = os.environ.get(var)
    if not base or not os.path.isabs(base):
        return False
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(base))


def depot_check(depot: Path) -> Check:
    kind = fs_type(existing(depot))
    gib, inodes = free(depot)
    exists = depot.is_dir()
    ok_write = writable(depot) if exists else writable(existing(depot))
    where = f"{depot} ({kind}; {gib:.0f} GiB and {inodes:,} inodes free"
    where += ")" if exists else "; created by the first job)"
    problem = paths.depot_problem(depot) if exists else None
    if problem:
        return Check("fail", "depot", f"{where}: {problem.message}", problem.hint)
    if not ok_write:
        return Check("fail", "depot", where + ": not writable",
                     "set `depot` (or UVSLURM_DEPOT) to a directory of yours on scratch")  # fmt: skip
    scratch = os.environ.get("SCRATCH")
    for var in ("HOME", "WORK"):
        if _under(depot, var) and not (scratch and _under(depot, "SCRATCH")):
            return Check("warn", "depot", where + f": under ${var}, whose quota counts every venv file",
                         "set `depot` (or UVSLURM_DEPOT) to scratch, e.g. $SCRATCH/uvslurm")  # fmt: skip
    if kind == "tmpfs":
        return Check("warn", "depot", where + ": memory-backed and node-local, gone at reboot",
                     "set `depot` to a shared filesystem that compute nodes see")  # fmt: skip
    if gib < 5 or inodes < 100_000:
        return Check("warn", "depot", where + ": little room left",
                     "free space (`uvslurm depot gc`) or move the depot")  # fmt: skip
    return Check("ok", "depot", where)


def uv_cache_check(uv: str, depot: Path) -> Check:
    cache = _out([uv, "cache", "dir"])
    if not cache:
        return Check("warn", "uv cache", "`uv cache dir` failed", "check that uv works here")
    path = Path(cache)
    kind = fs_type(existing(path))
    if _same_fs(path, depot):
        return Check(
            "ok", "uv cache", f"{cache} ({kind}): on the depot's filesystem, so uv links files"
        )
    fix = "set UV_CACHE_DIR to a directory on the depot's filesystem, e.g. $SCRATCH/uv-cache"
    return Check("warn", "uv cache", f"{cache} ({kind}): not on the depot's filesystem, so uv falls "
                 "back to copying every file into each venv (slower builds, twice the space)", fix)  # fmt: skip


def node_local_checks(config: Config, depot: Path) -> list[Check]:
    setting = str(config.get("node-local", "auto"))
    if setting == "never":
        return [Check("ok", "node-local", "never (configured): jobs run from the depot")]
    if setting == "auto":
        candidates = [(v, os.environ.get(v, "")) for v in ("SLURM_TMPDIR", "TMPDIR")] + [("/tmp", "/tmp")]  # fmt: skip
    else:
        candidates = [("node-local", setting)]
    out: list[Check] = []
    chosen, seen = "", set()
    for label, value in candidates:
        if not value or value in seen:
            continue
        seen.add(value)
        what = f"node-local {label}" if label != value else f"node-local {value}"
        p = Path(value)
        if not p.is_dir():
            out.append(Check("warn", what, f"{value} does not exist on this node"))
            continue
        kind = fs_type(p)
        gib, _ = free(p)
        desc = f"{value} ({kind}, {gib:.0f} GiB free)"
        if not writable(p):
            out.append(
                Check("warn", what, desc + ": not writable", "jobs fall back to the next candidate")
            )
        elif is_network(kind):
            out.append(Check("warn", what, desc + ": a network filesystem, not used"))
        elif setting == "auto" and _same_fs(p, depot):
            out.append(
                Check(
                    "ok",
                    what,
                    desc + ": the depot's filesystem, not used (jobs run from the depot)",
                )
            )
        elif gib < 1:
            out.append(Check("warn", what, desc + ": little room; big venvs run from the depot"))
        else:
            used = "" if chosen else ": jobs place their venv here"
            chosen = chosen or value
            out.append(Check("ok", what, desc + (used or ": usable")))
    return out


def prolog_checks() -> list[Check]:
    out = []
    bash = _out(["bash", "-c", "echo ${BASH_VERSINFO[0]}"])
    if bash and bash.isdigit() and int(bash) >= 5:
        out.append(Check("ok", "bash", f"version {bash}"))
    else:
        out.append(
            Check("fail", "bash", f"version {bash or '?'}", "the job prolog needs bash 5 or later")
        )
    flock = shutil.which("flock")
    out.append(Check("ok", "flock", flock) if flock else
               Check("fail", "flock", "not found", "install util-linux: the prolog locks with it"))  # fmt: skip
    return out


def python_check(uv: str, project: Project) -> Check:
    request = project.python_request()
    # what the prolog's `uv venv --python REQUEST` takes: not an active venv, not a project .venv
    found = _out(
        [uv, "python", "find", "--system", "--no-project", *([request] if request else [])]
    )
    label = request or "any"
    if not found:
        return Check("warn", "python", f"no interpreter for '{label}' here yet",
                     f"run `uv python install {request}` on a login node: compute nodes have no network"
                     if request else "run `uv python install` on a login node")  # fmt: skip
    managed = _out([uv, "python", "dir"])
    if managed and Path(found).is_relative_to(managed):
        return Check("ok", "python", f"{label} -> {found} (managed by uv)")
    return Check(
        "ok",
        "python",
        f"{label} -> {found} (not managed by uv: compute nodes need it at the same path)",
    )


def image_check(config: Config) -> Check:
    """Can venv images be made and mounted here (image = "squashfs" / "auto")?"""
    setting = str(config.get("image", "none"))
    chosen = nodeenv.image_value(config)
    tools = [t for t in ("mksquashfs", "squashfuse", "unsquashfs") if not shutil.which(t)]
    fuse = os.access("/dev/fuse", os.R_OK | os.W_OK)
    can = "squashfs images can be made and mounted here" if not tools and fuse else (
        f"squashfs images cannot be mounted here ({'missing ' + ', '.join(tools) if tools else '/dev/fuse not usable by this user'})"
    )  # fmt: skip
    detail = f"{setting}" + (f" (= {chosen})" if setting == "auto" else "") + f"; {can}"
    if chosen == "squashfs" and tools:
        return Check(
            "warn", "image", detail, 'install squashfs-tools and squashfuse, or set image = "none"'
        )
    return Check("ok", "image", detail)


def checks(cwd: Path, project_dir: str | None) -> list[Check]:
    out = slurm_checks()
    try:
        project, config = load(cwd, project_dir)
    except UvslurmError as e:
        # an untrusted project or config file: reported, and left out (nothing of it runs)
        out.append(Check("fail", "configuration", e.message, e.hint))
        project, config = None, sources.load(None, {})
    uv_result, uv = uv_check(config)
    out.append(uv_result)
    out.append(module_check(config))
    try:
        depot = nodeenv.depot_root(config)
    except UvslurmError as e:
        out.append(Check("fail", "depot", e.message, e.hint))
        return out
    out.append(depot_check(depot))
    if uv:
        out.append(uv_cache_check(uv, depot))
    out += node_local_checks(config, depot)
    out.append(image_check(config))
    out += prolog_checks()
    if uv and project:
        out.append(python_check(uv, project))
    return out


def run(ns: argparse.Namespace, cwd: Path) -> int:
    results = checks(cwd, ns.project)
    if ns.json:
        print(json.dumps([asdict(c) for c in results], indent=2))
    else:
        from rich.console import Console
        from rich.markup import escape

        c = Console(highlight=False, soft_wrap=True)
        style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for r in results:
            fix = f" [dim]→ {escape(r.fix)}[/]" if r.fix else ""
            c.print(f"[{style[r.status]}]{r.status:4}[/] {escape(r.what)}: {escape(r.detail)}{fix}")
        counts = {s: sum(r.status == s for r in results) for s in style}
        c.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if any(r.status == "fail" for r in results) else 0
