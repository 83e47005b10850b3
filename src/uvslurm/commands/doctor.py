"""`uvslurm doctor`: check the site and say what to fix; each line ok, warn or fail."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from uvslurm import depot as depot_mod
from uvslurm import nodeenv, output, paths, proc, sources
from uvslurm.config import Config
from uvslurm.context import Context
from uvslurm.errors import UvslurmError
from uvslurm.project import Project
from uvslurm.schema import is_network

GIB = 2**30


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | fail
    what: str
    detail: str
    fix: str = ""


def _out(argv: list[str]) -> str | None:
    """stdout of a command that succeeded within 20 s, else None."""
    p = proc.probe(argv, timeout=20, env=proc.clean_env())
    return p.stdout.strip() if p and p.returncode == 0 else None


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
    tools, fuse = nodeenv.squashfs_here()
    can = "squashfs images can be made and mounted here" if not tools and fuse else (
        f"squashfs images cannot be mounted here ({'missing ' + ', '.join(tools) if tools else '/dev/fuse not usable by this user'})"
    )  # fmt: skip
    detail = f"{setting}" + (f" (= {chosen})" if setting == "auto" else "") + f"; {can}"
    if chosen == "squashfs" and tools:
        return Check(
            "warn", "image", detail, 'install squashfs-tools and squashfuse, or set image = "none"'
        )
    return Check("ok", "image", detail)


# One task on each of two nodes: task 0 holds a flock on FILE, task 1 tries it; each prints
# "<task> <node> <what happened>" (held | busy | free | failed <why> | unseen). Files next to
# FILE say when the lock is held and when task 1 is done (10 s at most each).
_LOCK_PROBE = r"""
f=$1 me="$SLURM_PROCID ${SLURMD_NODENAME:-?}"
wait_for() { local i; for i in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
if [ "$SLURM_PROCID" = 0 ]; then
  exec 9>>"$f" || { echo "$me failed cannot open $f"; exit 0; }
  if err=$(flock -n 9 2>&1); then echo "$me held"; else echo "$me failed ${err##*: }"; fi
  : >"$f.held"
  wait_for "$f.done"
else
  if wait_for "$f.held"; then
    if err=$(flock -n "$f" true 2>&1); then echo "$me free"
    elif [ -z "$err" ]; then echo "$me busy"
    else echo "$me failed ${err##*: }"
    fi
  else
    echo "$me unseen"
  fi
  : >"$f.done"
fi
"""
_LEASE = (
    "builders of one key{} take turns by a lease file instead (a heartbeat every 2 s, taken "
    "over after 15 s of silence: a key may be built twice at worst), and `uvslurm depot gc`/`rm` "
    "see runs outside Slurm jobs {} by the use they record every minute only (written down in the "
    "depot; jobs are asked of Slurm)"
)
_PER_NODE_FIX = (
    "ask for coherent locks on the depot's filesystem (Lustre -o flock, BeeGFS "
    "tuneUseGlobalFileLocks, NFS without local_lock)"
)


def _flock_here(path: Path) -> str | None:
    """None when an exclusive flock works on `path` here, else why not."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        return e.strerror or str(e)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None
    except OSError as e:
        return e.strerror or str(e)
    finally:
        os.close(fd)


def _two_node_probe(path: Path) -> tuple[str, str]:
    """(result, detail): result is coherent, per-node, failing or unknown."""
    argv = ["srun", "--nodes=2", "--ntasks-per-node=1", "--immediate=20", "--time=1",
            "--job-name=uvslurm-doctor", "--quiet", "bash", "-c", _LOCK_PROBE, "probe", str(path)]  # fmt: skip
    p = proc.probe(argv, timeout=60, env=proc.clean_env())
    if p is None:
        return "unknown", "`srun --nodes=2` did not answer within 60 s"
    seen = {}
    for line in p.stdout.splitlines():
        task, _, rest = line.partition(" ")
        node, _, what = rest.partition(" ")
        seen[task] = (node, what)
    if set(seen) != {"0", "1"}:
        why = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
        return "unknown", f"`srun --nodes=2` gave no answer from two nodes ({why})"
    (n0, held), (n1, tried) = seen["0"], seen["1"]
    if held.startswith("failed") or tried.startswith("failed"):
        why = (held if held.startswith("failed") else tried).removeprefix("failed").strip()
        return "failing", f"flock fails on {n0 if held.startswith('failed') else n1} ({why})"
    if tried == "unseen":
        return (
            "unknown",
            f"{n1} did not see the file {n0} wrote (is the depot on a shared filesystem?)",
        )
    if tried == "busy":
        return "coherent", f"a flock held on {n0} excludes {n1}"
    return "per-node", f"a flock held on {n0} does not exclude {n1}"


def lock_check(depot: Path, slurm: bool) -> Check:
    """Do file locks in the depot exclude across nodes? Where Slurm answers, one srun task on
    each of two nodes finds out; else only whether flock works here at all is known."""
    where = depot if depot.is_dir() else existing(depot)
    if not writable(where):
        return Check("warn", "depot locks", f"not checked: {where} is not writable")
    probe = where / f".write-test-lockprobe-{os.getpid()}"
    try:
        why = _flock_here(probe)
        if why is not None:
            result, detail = "failing", f"flock fails here ({why})"
        elif slurm:
            result, detail = _two_node_probe(probe)
        else:
            result, detail = (
                "unknown",
                "flock works on this node; not checked across nodes (no Slurm here)",
            )
    finally:
        for f in (
            probe,
            probe.with_name(probe.name + ".held"),
            probe.with_name(probe.name + ".done"),
        ):
            f.unlink(missing_ok=True)
    if result != "unknown" and depot.is_dir():
        # gc and rm on any node then know whether other nodes' holds can be seen (depot.locks)
        with contextlib.suppress(OSError):
            depot_mod.record_locks(depot, result, detail)
    if result == "coherent":
        return Check("ok", "depot locks", f"coherent across nodes: {detail}")
    if result == "per-node":
        lease = _LEASE.format(" on different nodes", "on other nodes")
        return Check("warn", "depot locks", f"per node only: {detail}; {lease}", _PER_NODE_FIX)
    if result == "failing":
        lease = _LEASE.format("", "from a venv")
        return Check("warn", "depot locks", f"failing: {detail}; {lease}; keep uv's cache off this "
                     "filesystem (uv needs its locks)", "ask for working locks on the depot's "
                     "filesystem (Lustre: -o flock), or set `depot` to one that has them")  # fmt: skip
    return Check("warn", "depot locks", detail, "run `uvslurm doctor` where sbatch and srun work")


def checks(ctx: Context) -> list[Check]:
    out = slurm_checks()
    try:
        project, config = ctx.project, ctx.config
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
    slurm = all(c.status == "ok" for c in out if c.what in ("srun", "slurmctld"))
    out.append(lock_check(depot, slurm and any(c.what == "slurmctld" for c in out)))
    if uv:
        out.append(uv_cache_check(uv, depot))
    out += node_local_checks(config, depot)
    out.append(image_check(config))
    out += prolog_checks()
    if uv and project:
        out.append(python_check(uv, project))
    return out


def run(ctx: Context, ns: argparse.Namespace) -> int:
    results = checks(ctx)
    if ns.json:
        output.json(results)
    else:
        style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for r in results:
            fix: list[output.Part] = [" ", (f"→ {r.fix}", "dim")] if r.fix else []
            status = (f"{r.status:4}", style[r.status])
            output.line(status, f" {r.what}: {r.detail}", *fix, stdout=True)
        counts = {s: sum(r.status == s for r in results) for s in style}
        output.line(", ".join(f"{n} {s}" for s, n in counts.items()), stdout=True)
    return 1 if any(r.status == "fail" for r in results) else 0
