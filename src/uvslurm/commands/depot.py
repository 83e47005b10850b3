"""`uvslurm depot list|path|gc|rm`: see and clean the depot."""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uvslurm import depot, names, nodeenv, output, paths, slurm
from uvslurm.context import Context
from uvslurm.errors import UsageError, UvslurmError

GONE_HINT = "a scratch purge or `depot gc`? the next job rebuilds what it needs"


def cpu_summary(cpu: str) -> str:
    """`microarch=zen2 flags=...` -> `zen2`; from older fingerprints `vendor_id=GenuineIntel
    cpu_family=6 model=85 flags=...` -> `GenuineIntel 6/85`."""
    fields = dict(p.split("=", 1) for p in cpu.split(" ") if "=" in p)
    if fields.get("microarch"):
        return fields["microarch"]
    vendor = fields.get("vendor_id") or fields.get("CPU_implementer", "")
    model = "/".join(
        v for v in (fields.get("cpu_family") or fields.get("CPU_architecture"),
                    fields.get("model") or fields.get("CPU_part")) if v
    )  # fmt: skip
    return " ".join(p for p in (vendor, model) if p)


def python_summary(python: str) -> str:
    """`cpython-3.11.7 /usr` -> `3.11.7`, `pypy-3.10.14 /opt/pypy` -> `pypy-3.10.14`; from older
    fingerprints the request as it was (`3.11`)."""
    first = python.split(" ")[0]
    return first.removeprefix("cpython-") or "(any)"


def summary(comps: dict[str, str]) -> str:
    """The fingerprint components a person tells venvs apart by: modules, Python, machine."""
    if not comps:
        return ""
    machine = " ".join(
        p for p in (comps.get("arch", ""), cpu_summary(comps.get("cpu", "")),
                    comps.get("os", ""), comps.get("glibc", "").replace("glibc ", "glibc-")) if p
    )  # fmt: skip
    parts = [
        comps.get("modules") or "no modules",
        f"python {python_summary(comps.get('python', ''))}",
        machine,
    ]
    if comps.get("gpu", "none") != "none":
        parts.append("gpu " + comps["gpu"].split("  ")[0][:40])
    for opt in ("sync", "rebuild"):
        if comps.get(opt):
            parts.append(f"{opt} {comps[opt]}")
    return "; ".join(p for p in parts if p)


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(seconds, 0) / 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def _mb(size: int) -> str:
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{size / 2**10:.0f} KB"


# what Slurm says of this user's jobs, asked once per command and only when a venv names a job
# that may hold it (depot.JOB_HOLD); run() forgets it
_live_jobs = functools.cache(slurm.live_jobs)


def rows(root: Path, problems: list[depot.Problem] | None = None) -> list[dict[str, Any]]:
    now = time.time()
    out: list[dict[str, Any]] = []
    for v in depot.venvs(root, problems):
        size, inodes = depot.usage(v.path)
        out.append({
            "path": str(v.path), "project_dir": v.path.parent.name, "key": v.key, "kind": v.kind,
            "project": v.project or None, "project_exists": v.project_exists if v.project else None,
            "project_state": v.project_state[0] or None,
            "fingerprint": v.key.split("-")[0] if v.kind == "job" else v.key.removeprefix("shell-"),
            "summary": summary(v.components), "components": v.components, "built_on": v.built_on,
            "size_bytes": size, "size_kb_at_build": v.size_kb, "inodes": inodes,
            "last_used": v.last_used, "last_used_ago": _age(now - v.last_used),
            "in_use": depot.holder(v, _live_jobs) is not None,
        })  # fmt: skip
    return out


def _unreadable(problems: list[depot.Problem]) -> list[depot.Problem]:
    """Each directory that could not be read, once (in the order they were met), reported."""
    seen: dict[Path, depot.Problem] = {}
    for p in problems:
        seen.setdefault(p.path, p)
    for p in seen.values():
        output.warn(f"skipped {p.path}: {p.why}")
    return list(seen.values())


def list_cmd(root: Path, as_json: bool) -> int:
    problems: list[depot.Problem] = []
    found = rows(root, problems)
    leftovers = depot.leftovers(root, float("inf"), problems=problems) if root.is_dir() else []
    _unreadable(problems)
    if as_json:
        output.json(found)
        return 0
    if not found:
        what = (
            f"no venvs in the depot {root}" if root.exists() else f"the depot {root} does not exist"
        )
        output.line(f"{what} ({GONE_HINT})", stdout=True)
        return 0
    table: list[list[output.Cell]] = []
    for r in found:
        project: list[output.Part] = [r["project"] or f"? ({r['project_dir']})"]
        if r["project_state"] == "gone":
            project += [" ", ("(gone)", "red")]
        elif r["project_state"] == "unseen":
            project += [" ", ("(not visible here)", "yellow")]
        used: list[output.Part] = [r["last_used_ago"]]
        if r["in_use"]:
            used += [" ", ("(in use)", "bold")]
        venv = r["key"] + ("" if r["kind"] == "job" else f" ({r['kind']})")
        table.append([project, venv, r["summary"], _mb(r["size_bytes"]), f"{r['inodes']:,}", used])
    cols = ("project", "venv", "fingerprint", "size", "inodes", "last used")
    output.table(f"depot {root}", [output.Col(c, fold=True) for c in cols], table)
    total, inodes = sum(int(r["size_bytes"]) for r in found), sum(int(r["inodes"]) for r in found)
    output.line(f"{len(found)} venvs, {_mb(total)}, {inodes:,} inodes", stdout=True)
    if leftovers:
        output.line(f"{len(leftovers)} leftovers of killed builds or deletions: `uvslurm depot gc` "
                    "removes them", stdout=True)  # fmt: skip
    return 0


@dataclass
class _Report:
    dry_run: bool
    freed: int = 0
    removed: int = 0
    skipped: int = 0  # held by jobs
    failed: int = 0  # could not be removed (an error of the filesystem, a permission)

    def done(self, path: Path, why: str, size: int) -> None:
        verb = "would remove" if self.dry_run else "removed"
        print(f"{verb} {path}" + (f": {why}" if why else ""))
        self.freed += size
        self.removed += 1

    def skip(self, path: Path, why: str) -> None:
        output.warn(f"kept {path}: {why}")
        self.skipped += 1

    def fail(self, path: Path, why: str) -> None:
        output.warn(f"kept {path}: {why}")
        self.failed += 1

    def summary(self, unreadable: int, unseen: int) -> str:
        verb = "would free" if self.dry_run else "freed"
        parts = [f"{self.removed} removed"]
        if self.skipped:
            parts.append(f"kept {self.skipped} in use")
        if self.failed:
            parts.append(f"kept {self.failed} it could not remove")
        if unreadable:
            parts.append(f"skipped {unreadable} directories it could not read")
        if unseen:
            parts.append(f"{unseen} projects it could not see were not taken for gone")
        return f"{verb} {_mb(self.freed)} ({'; '.join(parts)})"


def _size(path: Path) -> int:
    try:
        return depot.usage(path)[0] if path.is_dir() else 0
    except OSError:
        return 0


def _remove(
    path: Path,
    why: str,
    report: _Report,
    held: Callable[[], str | None],
    remove: Callable[[], None],
) -> None:
    """Remove one thing (with --dry-run: say whether it would go) and report what happened."""
    size = _size(path)
    try:
        if not report.dry_run:
            remove()
        elif reason := held():
            raise depot.Busy(path, reason)
    except depot.Busy as e:
        report.skip(path, e.why)
    except OSError as e:
        report.fail(path, f"cannot remove it ({e.strerror or e})")
    else:
        report.done(path, why, size)


def _remove_venv(v: depot.Venv, why: str, report: _Report) -> None:
    _remove(
        v.path,
        why,
        report,
        lambda: depot.holder(v, _live_jobs),
        lambda: depot.remove(v, _live_jobs),
    )


def _remove_leftover(item: depot.Leftover, report: _Report) -> None:
    busy = lambda: "its owner is still running" if depot.leftover_is_busy(item) else None  # noqa: E731
    _remove(item.path, item.why, report, busy, lambda: depot.remove_leftover(item))


def _remove_wheel(w: depot.WheelDir, why: str, report: _Report) -> None:
    lock = depot.Leftover(w.path, why, w.lock)
    busy = lambda: "a build is using it" if depot.leftover_is_busy(lock) else None  # noqa: E731
    _remove(w.path, why, report, busy, lambda: depot.remove_wheel_dir(w))


def gc_cmd(root: Path, older_than_days: float, dry_run: bool) -> int:
    if older_than_days < 0:
        raise UvslurmError("--older-than must be 0 or more days")
    if not root.is_dir():
        print(f"nothing to do: the depot {root} does not exist ({GONE_HINT})")
        return 0
    now, limit = time.time(), older_than_days * depot.DAY
    report = _Report(dry_run)
    problems: list[depot.Problem] = []
    gone_projects: set[Path] = set()
    # a project is looked at once; one gc cannot see (an unmounted filesystem, a directory it
    # may not read) is not taken for deleted: its venvs go only by age (depot.project_state)
    states: dict[str, tuple[str, str]] = {}
    for v in list(depot.venvs(root, problems)):
        idle = (now - v.last_used) / depot.DAY
        if v.project and v.project not in states:
            states[v.project] = v.project_state
            if states[v.project][0] == "unseen":
                output.warn(f"cannot see the project {v.project} ({states[v.project][1]}); "
                            "its venvs are not removed as gone")  # fmt: skip
        if v.project and states[v.project][0] == "gone":
            gone_projects.add(v.path.parent)
            _remove_venv(v, f"its project {v.project} is gone", report)
        elif now - v.last_used > limit:
            _remove_venv(v, f"unused for {idle:.0f} days", report)
        elif v.kind == "incomplete":
            _remove_venv(v, "a venv directory without its ready marker", report)
        if not dry_run and v.path.exists():
            # a venv that stays: the holds of jobs that ended go (one file per job otherwise)
            depot.prune_job_holds(v, _live_jobs)
    for w in list(depot.wheel_dirs(root, problems)):
        if now - w.last_used > limit:
            why = f"rebuilt wheel unused for {(now - w.last_used) / depot.DAY:.0f} days"
            _remove_wheel(w, why, report)
    for item in depot.leftovers(root, older_than_days, now, problems):
        _remove_leftover(item, report)
    if not dry_run:
        for pdir in sorted(gone_projects):
            depot.remove_project_dir(pdir)
    unreadable = _unreadable(problems)
    unseen = sum(state == "unseen" for state, _ in states.values())
    print(report.summary(len(unreadable), unseen))
    return 0


def _project_dir(root: Path, project: str | None, ctx: Context) -> tuple[Path, str]:
    """(<depot>/<project id>, the project path) for PROJECT: a project path (which may be gone
    already), the name of a project directory of the depot, or the current project."""
    if not project:
        path = str(ctx.require_project().root)
        return root / nodeenv.project_id(path), path
    candidate = (ctx.cwd / project).resolve()
    if (candidate / "pyproject.toml").is_file():
        return root / nodeenv.project_id(str(candidate)), str(candidate)
    if names.PROJECT_DIR.match(project) and (root / project).is_dir():
        return root / project, project
    if "/" not in project and not candidate.exists():
        # a project's name, as `depot list` shows it in its project directory's name
        same = sorted(
            d.name
            for d in (root.iterdir() if root.is_dir() else ())
            if names.PROJECT_DIR.match(d.name) and d.name.rsplit("-", 1)[0] == project
        )
        if len(same) > 1:
            raise UsageError(
                f"{len(same)} projects named '{project}' in {root}: {', '.join(same)}",
                "give one of these names, or the project's path",
            )
        if same:
            return root / same[0], same[0]
    return root / nodeenv.project_id(str(candidate)), str(candidate)


def rm_cmd(root: Path, project: str | None, ctx: Context) -> int:
    pdir, path = _project_dir(root, project, ctx)
    if not pdir.is_dir():
        print(f"no venvs of {path} in {root}")
        return 0
    report = _Report(dry_run=False)
    problems: list[depot.Problem] = []
    for v in [v for v in depot.venvs(root, problems) if v.path.parent == pdir]:
        _remove_venv(v, "", report)
    for item in depot.leftovers(root, float("inf"), problems=problems):
        if item.path.parent == pdir:
            _remove_leftover(item, report)
    unreadable = _unreadable(
        [p for p in problems if p.path in (root, pdir) or p.path.parent == pdir]
    )
    if report.skipped:
        print(f"kept {report.skipped} venvs of {path} that jobs hold (run it again when they end)")
        return 1
    if report.failed or unreadable:
        print(f"could not remove all of {path} from {root} (see above)")
        return 1
    depot.remove_project_dir(pdir)
    print(f"removed the venvs of {path} ({_mb(report.freed)})")
    return 0


def run(ctx: Context, ns: argparse.Namespace) -> int:
    _live_jobs.cache_clear()
    root = ctx.depot
    if ns.depot_cmd == "path":
        print(root)
        return 0
    if root.is_dir() or root.is_symlink():
        # list, gc and rm look only into a depot of this user's that uvslurm made
        paths.check_depot(root, adopt=True)
    if ns.depot_cmd == "list":
        return list_cmd(root, ns.json)
    if ns.depot_cmd == "gc":
        return gc_cmd(root, ns.older_than, ns.dry_run)
    return rm_cmd(root, ns.rm_project, ctx)
