"""The depot on disk: what is in it, and removing things safely (under the prolog's locks).

Layout (see docs/reference/job-script.md): <depot>/<project id>/<key>/ is a job venv with its
.uvslurm-ready marker, <key>.lock its build lock, <key>.squashfs or <key>.tar.zst its image;
shell-<fp>/ is the interactive venv of `uvslurm env`; <depot>/.wheels/<pkg>-<version>/<fp>/ holds rebuilt wheels.

Who holds what (docs/reliability.md, the gc rows): a builder or placer holds the key's
exclusive lock; a Slurm job names itself beside the venv it runs from (<venv>/.uvslurm-job-*,
believed while Slurm has the job); a run outside a job holds a shared flock on
<venv>/.uvslurm-used for as long as its command runs. Opening that file records the last use.
Removing a venv takes both locks exclusively, without waiting, asks Slurm about the jobs, renames
the venv away, and gives it back if a job touched it meanwhile.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from uvslurm import names
from uvslurm.nodeenv import project_id

MARKER = ".uvslurm-ready"
USED = ".uvslurm-used"
IMAGES = (".squashfs", ".tar.zst")  # a venv's single-file image, next to its directory
UV_LOCK = ".lock"  # uv's own lock inside a venv, held while it installs
DAY = 86400.0
# a live builder touches its lease and its build directory every 2 s (the prolog's heartbeat,
# lib.sh): one untouched for this long is a dead builder's, on whichever node it ran
HEARTBEAT = 600.0
FAILED_FOR = 60.0  # how long the prolog remembers a failed build
# a job that runs from a depot venv records a use (.uvslurm-used) when it starts and every minute
# while it runs (lib.sh: _uvslurm_hold); where flock does not reach across nodes, a use this
# recent is a job that may still run on a node whose flocks this one cannot see (three beats:
# one may be late)
HOLD_FRESH = 180.0
# <venv>/.uvslurm-job-<cluster>-<job id>: a job (an array: its array job) that runs from the
# depot venv names itself there (lib.sh: _uvslurm_jobhold); it holds the venv while Slurm still
# has the job. Where Slurm cannot be asked, or the job is another cluster's, a hold counts for
# this long after it was taken (longer than the time limits sites allow).
JOB_HOLD = ".uvslurm-job-"
JOB_HOLD_MAX = 30 * DAY
# (this cluster's name, the ids of this user's jobs that Slurm still has), or None when Slurm
# cannot be asked: slurm.live_jobs, passed in by the commands (this module starts no process)
LiveJobs = Callable[[], "tuple[str, set[str]] | None"]
# <depot>/.uvslurm-locks: what is known of the depot's file locks when they do not exclude across
# nodes: "per-node" or "failing", then why (written by `uvslurm doctor` and by the prolog)
LOCKS = names.LOCKS
_BUILD, _TRASH, _PACK = names.BUILD, names.TRASH, names.PACK


@dataclass(frozen=True)
class Venv:
    path: Path
    kind: str  # "job", "interactive" or "incomplete" (a directory without its marker)
    project: str  # the project path ("" when unknown)
    components: dict[str, str]  # the fingerprint components recorded in the marker
    built_on: str = ""
    size_kb: int | None = None  # recorded at build time
    last_used: float = 0.0  # epoch seconds
    used_stamp: int | None = None  # mtime_ns of .uvslurm-used when it was read

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def project_exists(self) -> bool:
        return bool(self.project) and Path(self.project).is_dir()

    @property
    def project_state(self) -> tuple[str, str]:
        """project_state() of the venv's project: ("", "") when the marker names none."""
        return project_state(self.project) if self.project else ("", "")

    @property
    def lock(self) -> Path:
        """The lock a builder holds: the prolog's key lock, or uv's own in an interactive venv."""
        if self.kind == "interactive":
            return self.path / UV_LOCK
        return self.path.parent / f"{self.path.name}.lock"


def project_state(project: str) -> tuple[str, str]:
    """("present" | "gone" | "unseen", why unseen): is the project directory still there? It is
    gone only when it is missing from a parent directory that this user can read and that holds
    something: a missing or empty parent may be a mount point whose filesystem is not mounted
    here (gc must not take a project on an unmounted filesystem for a deleted one), and an
    unreadable one tells nothing. A path that is no longer a directory (or a .py script) is gone
    too."""
    try:
        st = os.stat(project)
    except FileNotFoundError:
        if os.path.islink(project):
            return "unseen", "it is a symbolic link to what cannot be seen here"
    except OSError as e:
        return "unseen", f"cannot look at it ({e.strerror or e})"
    else:
        # a .py file: a PEP 723 script, whose venvs the depot keeps under its path
        script = stat.S_ISREG(st.st_mode) and project.endswith(".py")
        return ("present", "") if stat.S_ISDIR(st.st_mode) or script else ("gone", "")
    parent = os.path.dirname(project.rstrip("/")) or "/"
    try:
        with os.scandir(parent) as entries:
            empty = next(entries, None) is None
    except FileNotFoundError:
        return "unseen", f"{parent} is missing too (a filesystem not mounted here?)"
    except OSError as e:
        return "unseen", f"cannot read {parent} ({e.strerror or e})"
    if empty:
        return "unseen", f"{parent} is empty (a filesystem not mounted here?)"
    return "gone", ""


@dataclass(frozen=True)
class Problem:
    """A directory of the depot that could not be read: left alone, and reported."""

    path: Path
    why: str


def _entries(d: Path, problems: list[Problem] | None) -> list[Path]:
    """The entries of directory `d`, sorted. One that cannot be read has none: it goes into
    `problems` (raised when there is no such list), so that the rest of the depot is still seen."""
    try:
        return sorted(d.iterdir())
    except OSError as e:
        if problems is None:
            raise
        problems.append(Problem(d, f"cannot read it ({e.strerror or e})"))
        return []


@dataclass(frozen=True)
class Marker:
    project: str = ""
    built_on: str = ""
    size_kb: int | None = None
    components: dict[str, str] = field(default_factory=dict)


def read_marker(venv: Path) -> Marker | None:
    """The venv's ready marker (None when it has none)."""
    try:
        return parse_marker((venv / MARKER).read_text(errors="surrogateescape"), venv.parent.name)
    except OSError:
        return None


def parse_marker(text: str, project_dir: str) -> Marker:
    """A ready marker as the prolog writes it: key=, project=, size_kb=, built_on=, the files
    it samples to see that the venv is still whole (check=SIZE PATH) and the fingerprint
    components, one per line. The project path is trusted only when it is the one the depot
    directory (`project_dir`) was named after (a path may hold a newline)."""
    # the project path ends at one of the "\nsize_kb=" that follow: the one it hashes to
    project, rest = "", text
    head = re.match(r"key=[^\n]*\nproject=", text)
    if head:
        for end in (m.start() for m in re.finditer(r"\nsize_kb=", text)):
            if project_id(text[head.end() : end]) == project_dir:
                project, rest = text[head.end() : end], text[end + 1 :]
                break
    built_on, size_kb, comps = "", None, dict[str, str]()
    for line in rest.splitlines():
        key, sep, value = line.partition("=")
        if not sep or key in ("key", "project", "check"):
            continue
        if key == "size_kb":
            size_kb = int(value) if value.isdigit() else None
        elif key == "built_on":
            built_on = value
        else:
            comps[key] = value
    return Marker(project, built_on, size_kb, comps)


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _last_used(venv: Path, interactive: bool) -> float:
    """A job records each use in .uvslurm-used; uv changes an interactive venv's files when it
    syncs (plain `uv run` records nothing; cleaning up: docs/howto/keep-venvs-off-work.md)."""
    names = [USED, MARKER, "pyvenv.cfg", "."]
    if interactive:
        names += [str(p.relative_to(venv)) for p in venv.glob("lib/python*/site-packages")]
    stamps = [_mtime_ns(venv / n) for n in names]
    found = [s for s in stamps if s is not None]
    if not found:
        return 0.0
    return (max(found) if interactive else found[0]) / 1e9


def _ours(path: Path) -> bool:
    """A real directory (not a symlink) of this user's: what uvslurm may look into or remove."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def _project_dirs(root: Path, problems: list[Problem] | None = None) -> list[Path]:
    """The project directories of the depot: names of its grammar only."""
    if not root.is_dir():
        return []
    return [p for p in _entries(root, problems) if names.PROJECT_DIR.match(p.name) and _ours(p)]


def venvs(root: Path, problems: list[Problem] | None = None) -> Iterator[Venv]:
    """Every venv of the depot: job and interactive ones, and directories left incomplete
    (a project directory that cannot be read goes into `problems`)."""
    for pdir in _project_dirs(root, problems):
        entries = [
            p for p in _entries(pdir, problems)
            if (names.JOB_VENV.match(p.name) or names.SHELL_VENV.match(p.name)) and _ours(p)
        ]  # fmt: skip
        markers = {e: read_marker(e) for e in entries if not e.name.startswith("shell-")}
        # an interactive venv has no marker: a job venv of the same project names the project
        known = next((m.project for m in markers.values() if m and m.project), "")
        for entry in entries:
            marker = markers.get(entry)
            interactive = entry.name.startswith("shell-")
            if interactive:
                kind, marker = "interactive", Marker(project=known)
            else:
                kind = "job" if marker else "incomplete"
                marker = marker or Marker()
            yield Venv(
                entry, kind, marker.project, marker.components, marker.built_on,
                marker.size_kb, _last_used(entry, interactive), _mtime_ns(entry / USED),
            )  # fmt: skip


def usage(path: Path) -> tuple[int, int]:
    """(bytes on disk, inodes) of a tree as `du` counts them: links not followed, a file with
    several hard links inside the tree counted once."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0, 0
    size, inodes = st.st_blocks * 512, 1
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            size += st.st_blocks * 512
            inodes += 1
    return size, inodes


class Busy(Exception):
    """A job holds this venv (building, placing or running from it): it was not removed."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


def _try_lock(path: Path, create: bool) -> int | None:
    """An exclusive flock on `path` without waiting: the fd, None when the file does not exist
    (and `create` is false). BlockingIOError when another process holds it."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        # opened for writing: NFS emulates flock with POSIX locks, which need it; no O_TRUNC,
        # which would count as a use
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)


def _locked(path: Path) -> bool:
    """Does another process hold a flock on `path`? (Takes it for an instant when not.)"""
    try:
        fd = _try_lock(path, create=False)
    except BlockingIOError:
        return True
    except OSError:
        return False
    _close(fd)
    return False


def locks(root: Path) -> tuple[str, str]:
    """("coherent" | "per-node" | "failing", why): what is known of the depot's flocks. Taken
    for coherent unless `uvslurm doctor` or a job found otherwise and wrote it down (LOCKS)."""
    try:
        kind, _, why = (root / LOCKS).read_text(errors="replace").partition("\n")
    except OSError:
        return "coherent", ""
    kind = kind.strip()
    return (kind, why.strip()) if kind in ("per-node", "failing", "coherent") else ("coherent", "")


def record_locks(root: Path, kind: str, why: str) -> None:
    """Write down what `uvslurm doctor` found out about the depot's flocks (LOCKS): gc and rm
    read it, and builders waiting on a dead builder's lease (lib.sh: _uvslurm_claim)."""
    (root / LOCKS).write_text(f"{kind}\n{why}\n")


def _unseen_hold(venv: Venv, now: float | None = None) -> str | None:
    """On a depot whose flocks do not reach across nodes: why a job elsewhere may still run from
    `venv` (one started with it, or refreshed its hold, within HOLD_FRESH), or None."""
    kind, _ = locks(venv.path.parent.parent)
    stamp = _mtime_ns(venv.path / USED)
    if kind == "coherent" or stamp is None:
        return None
    age = (time.time() if now is None else now) - stamp / 1e9
    if age >= HOLD_FRESH:
        return None
    return (
        f"a job may still run from it on another node (its last use or hold was {max(age, 0):.0f}"
        f" s ago, and flock on this depot is {kind}: other nodes' locks are not seen here)"
    )


@dataclass(frozen=True)
class JobHold:
    path: Path
    cluster: str  # "-": the job did not say
    job: str
    taken: float  # epoch seconds


def job_holds(venv: Path) -> list[JobHold]:
    """The jobs that named themselves as running from `venv` (JOB_HOLD files)."""
    out = []
    try:
        entries = [e for e in os.scandir(venv) if e.name.startswith(JOB_HOLD)]
    except OSError:
        return []
    for e in entries:
        cluster, _, job = e.name[len(JOB_HOLD) :].rpartition("-")
        try:
            taken = e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if job.isdigit() and cluster:
            out.append(JobHold(Path(e.path), cluster, job, taken))
    return out


def _job_hold(venv: Venv, live: LiveJobs | None, now: float | None = None) -> str | None:
    """Why a job may still run from `venv` by its JOB_HOLD, or None. Slurm says which jobs are
    still there; a hold it cannot tell about (no Slurm here, another cluster's) counts for
    JOB_HOLD_MAX."""
    holds = job_holds(venv.path)
    if not holds:
        return None
    known = live() if live else None
    now = time.time() if now is None else now
    for h in holds:
        if known is not None and h.cluster in ("-", known[0]):
            if h.job in known[1]:
                return f"job {h.job} runs from it (or waits to run again)"
            continue
        if now - h.taken < JOB_HOLD_MAX:
            where = f"cluster {h.cluster}'s job" if h.cluster != "-" else "job"
            return (
                f"{where} {h.job} took it {(now - h.taken) / DAY:.1f} days ago and Slurm here"
                " cannot say whether it still runs"
            )
    return None


def prune_job_holds(venv: Venv, live: LiveJobs) -> int:
    """Remove the JOB_HOLD files of this cluster's jobs that Slurm no longer has (a venv that
    stays would otherwise gather one per job); none when Slurm cannot be asked. How many went."""
    holds = job_holds(venv.path)
    known = live() if holds else None
    if known is None:
        return 0
    gone = 0
    for h in holds:
        if h.cluster in ("-", known[0]) and h.job not in known[1]:
            h.path.unlink(missing_ok=True)
            gone += 1
    return gone


def holder(venv: Venv, live: LiveJobs | None = None) -> str | None:
    """Why `venv` cannot be removed now, or None. `live` asks Slurm which jobs are still there."""
    if _locked(venv.lock):
        return "a job is building or placing it"
    if _locked(venv.path / USED):
        return "a running job uses it"
    return _job_hold(venv, live) or _unseen_hold(venv)


def _trash_name(path: Path) -> Path:
    return path.parent / f".{path.name}.trash-gc-{os.getpid()}-{time.monotonic_ns()}"


def remove(venv: Venv, live: LiveJobs | None = None) -> None:
    """Remove `venv` (and its image and lock file) unless a job holds it (Busy). A job that
    starts using it while this runs either finds it gone and rebuilds it, or keeps it: the
    venv is renamed away first and given back when its .uvslurm-used changed since `venvs()`
    read it."""
    try:
        key_fd = _try_lock(venv.lock, create=venv.kind != "interactive")
    except BlockingIOError:
        raise Busy(venv.path, "a job is building or placing it") from None
    use_fd = None
    try:
        try:
            use_fd = _try_lock(venv.path / USED, create=False)
        except BlockingIOError:
            raise Busy(venv.path, "a running job uses it") from None
        if why := _job_hold(venv, live) or _unseen_hold(venv):
            raise Busy(venv.path, why)
        trash = _trash_name(venv.path)
        os.rename(venv.path, trash)
        if _mtime_ns(trash / USED) != venv.used_stamp:
            os.rename(trash, venv.path)
            raise Busy(venv.path, "a job started using it just now")
        for image in IMAGES:
            venv.path.with_name(f"{venv.path.name}{image}").unlink(missing_ok=True)
        if venv.kind != "interactive":
            # unlinked while held: a prolog waiting on this file locks the new one instead
            venv.lock.unlink(missing_ok=True)
    finally:
        _close(use_fd, key_fd)
    shutil.rmtree(trash, ignore_errors=True)


@dataclass(frozen=True)
class Leftover:
    path: Path
    why: str
    lock: Path | None = None  # held by a live owner; the leftover goes only when it is free


def _age(path: Path, now: float) -> float:
    """Seconds since `path` last changed (0 when it cannot be seen: nothing is old then)."""
    try:
        return now - path.lstat().st_mtime
    except OSError:
        return 0.0


def leftovers(
    root: Path,
    older_than_days: float,
    now: float | None = None,
    problems: list[Problem] | None = None,
) -> list[Leftover]:
    """What killed builders, placers and prefetches left, and what nothing will use again:
    build and trash directories, lock files without a venv, stale machine facts, temporary
    prefetch venvs (a directory that cannot be read goes into `problems`)."""
    now = time.time() if now is None else now
    out: list[Leftover] = []
    for pdir in _project_dirs(root, problems):
        out += _project_leftovers(pdir, problems)
    for wheels in sorted((root / ".wheels").glob("*")) if (root / ".wheels").is_dir() else []:
        if not (names.WHEEL_PKG.match(wheels.name) and _ours(wheels)):
            continue
        for p in _entries(wheels, problems):
            m = names.WHEEL_BUILD.match(p.name)
            if m:
                lock = wheels / f"{m['key']}.lock"
                out.append(Leftover(p, "a killed wheel build", lock))
            elif m := names.WHEEL_LEASE.match(p.name):
                lock = wheels / f"{m['key']}.lock"
                out.append(Leftover(p, "the lease of a killed wheel build", lock))
    # a prefetch's stamp before its rename (its venv is on the login node's own disk; older
    # versions made it here, as sync-*)
    stamps = root / ".prefetch"
    for p in sorted([*stamps.glob("sync-*"), *stamps.glob(".*.tmp-*")]) if stamps.is_dir() else []:
        if _age(p, now) > DAY:
            out.append(Leftover(p, "a killed prefetch"))
    facts = root / ".facts"
    for p in _entries(facts, problems) if facts.is_dir() else []:
        if _age(p, now) > older_than_days * DAY:
            out.append(Leftover(p, f"machine facts unused for {older_than_days:g} days"))
    return out


def _project_leftovers(pdir: Path, problems: list[Problem] | None = None) -> list[Leftover]:
    out: list[Leftover] = []
    present = {p.name for p in _entries(pdir, problems)}
    for name in sorted(present):
        path = pdir / name
        if m := _BUILD.match(name):
            out.append(Leftover(path, "a killed build", pdir / f"{m['key']}.lock"))
        elif _TRASH.match(name):
            out.append(Leftover(path, "a venv being deleted by a killed process"))
        elif m := _PACK.match(name):
            out.append(
                Leftover(path, "an image a killed build was packing", pdir / f"{m['key']}.lock")
            )
        elif m := names.LEASE.match(name):
            out.append(Leftover(path, "the lease of a killed build", pdir / f"{m['key']}.lock"))
        elif names.FAILED.match(name):
            if time.time() - path.lstat().st_mtime > FAILED_FOR:
                out.append(Leftover(path, "the record of a failed build"))
        elif names.PENDING.match(name):
            # its start removes it when its memo is written, a later start of the same node
            # with the same inputs when it was killed; one killed on a node that runs no such
            # start again stays. A day: no start is on its full path for that long
            if time.time() - path.lstat().st_mtime > DAY:
                out.append(Leftover(path, "the pending file of a killed start"))
        elif m := names.KEY_LOCK.match(name):
            key = m["key"]
            building = any(_BUILD.match(n) and n.startswith(f".{key}.build-") for n in present)
            building = building or f".{key}.lease" in present
            if key not in present and not building:
                out.append(Leftover(path, "a lock without its venv", path))
    return out


def remove_leftover(item: Leftover) -> None:
    """Remove `item` if its owner is gone (Busy when its lock is held or its heartbeat recent)."""
    fd, trash = None, None
    if _beating(item.path):
        raise Busy(item.path, "its owner is still running")
    if item.lock is not None:
        try:
            fd = _try_lock(item.lock, create=False)
        except BlockingIOError:
            raise Busy(item.path, "its owner is still running") from None
    try:
        if item.path.is_dir() and not item.path.is_symlink():
            trash = item.path if _TRASH.match(item.path.name) else _trash_name(item.path)
            if trash != item.path:
                os.rename(item.path, trash)
        else:
            # a lock file goes while held (the prolog re-checks the file it locked)
            item.path.unlink(missing_ok=True)
    finally:
        _close(fd)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _beating(path: Path, now: float | None = None) -> bool:
    """A build directory or lease that a builder touched within HEARTBEAT: alive, maybe on a node
    whose flocks this one cannot see (per-node or failing locks)."""
    name = path.name
    if not (_BUILD.match(name) or names.WHEEL_BUILD.match(name) or names.LEASE.match(name)
            or names.WHEEL_LEASE.match(name)):  # fmt: skip
        return False
    m = _mtime_ns(path)
    return m is not None and (time.time() if now is None else now) - m / 1e9 < HEARTBEAT


def leftover_is_busy(item: Leftover) -> bool:
    return (item.lock is not None and _locked(item.lock)) or _beating(item.path)


@dataclass(frozen=True)
class WheelDir:
    path: Path  # <depot>/.wheels/<pkg>-<version>/<fingerprint>
    last_used: float

    @property
    def lock(self) -> Path:
        return self.path.parent / f"{self.path.name}.lock"


def wheel_dirs(root: Path, problems: list[Problem] | None = None) -> Iterator[WheelDir]:
    """Every rebuilt wheel, with when a build last used it (a directory that cannot be read
    goes into `problems`)."""
    base = root / ".wheels"
    if not base.is_dir():
        return
    for pkg in _entries(base, problems):
        if not (names.WHEEL_PKG.match(pkg.name) and _ours(pkg)):
            continue
        for fp in _entries(pkg, problems):
            if not (names.FINGERPRINT.match(fp.name) and _ours(fp)):
                continue
            stamp = _mtime_ns(fp / USED) or _mtime_ns(fp) or 0
            yield WheelDir(fp, stamp / 1e9)


def remove_wheel_dir(wheel: WheelDir) -> None:
    """Remove a rebuilt wheel under its build lock (Busy when a build holds it). Its lock file
    stays: the prolog's wheel builder does not re-check a lock it waited on."""
    try:
        fd = _try_lock(wheel.lock, create=True)
    except BlockingIOError:
        raise Busy(wheel.path, "a build is using it") from None
    try:
        trash = _trash_name(wheel.path)
        os.rename(wheel.path, trash)
    finally:
        _close(fd)
    shutil.rmtree(trash, ignore_errors=True)


def remove_project_dir(pdir: Path) -> bool:
    """Remove a project's depot directory once nothing but what it remembers (fingerprint
    hashes, copies of small locks, the memo, the certificates' env files, the copies submitted
    jobs build from or run in) is left."""
    try:
        entries = list(pdir.iterdir())
    except OSError:
        return False
    memory = [
        p
        for p in entries
        if p.name in (names.KEYS, names.MEMO)
        or names.LOCK_COPY.match(p.name)
        or names.TLS_ENV.match(p.name)
    ]
    copies = [p for p in entries if names.SUBMITTED.match(p.name) or names.SNAPSHOT.match(p.name)]
    if len(memory) + len(copies) != len(entries) or any(
        p.is_symlink() or not p.is_file() for p in memory
    ):
        return False
    if any(not _ours(p) for p in copies):
        return False
    for p in memory:
        p.unlink(missing_ok=True)
    for p in copies:
        shutil.rmtree(p, ignore_errors=True)
    try:
        pdir.rmdir()
    except OSError:
        return False
    return True
