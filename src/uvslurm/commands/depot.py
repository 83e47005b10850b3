"""`uvslurm depot list|path|gc|rm`: see and clean the depot."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from uvslurm import depot, nodeenv, sources
from uvslurm.errors import UvslurmError
from uvslurm.project import find_project


def _root(cwd: Path) -> Path:
    try:
        project = find_project(cwd)
        config = sources.load(project.tool_table, {}, pyproject=project.root / "pyproject.toml")
    except UvslurmError:
        config = sources.load(None, {})
    return nodeenv.depot_root(config)


def _summary(comps: dict[str, str]) -> str:
    parts = [
        comps.get("modules") or "no modules",
        f"python {comps.get('python') or '?'}",
        comps.get("os", ""),
    ]
    if comps.get("gpu", "none") != "none":
        parts.append("gpu")
    return ", ".join(p for p in parts if p)


def _age(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:.0f} d ago" if days >= 1 else f"{seconds / 3600:.0f} h ago"


def list_cmd(root: Path, as_json: bool) -> int:
    rows: list[dict[str, Any]] = []
    now = time.time()
    for v in depot.venvs(root):
        size, inodes = depot.usage(v.path)
        rows.append({
            "path": str(v.path), "kind": v.kind, "project": v.project, "project_exists": v.project_exists,
            "fingerprint": _summary(v.components), "size_bytes": size, "inodes": inodes,
            "last_used": v.last_used, "last_used_ago": _age(now - v.last_used),
        })  # fmt: skip
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    c = Console(highlight=False)
    if not rows:
        c.print(
            f"no venvs in {escape(str(root))} (empty, or purged: the next job rebuilds what it needs)"
        )
        return 0
    table = Table(title=f"depot {root}", title_justify="left")
    for col in ("project", "venv", "fingerprint", "size", "inodes", "last used"):
        table.add_column(col, overflow="fold")
    for r in rows:
        project = r["project"] or "?"
        if r["project"] and not r["project_exists"]:
            project += " (gone)"
        name = Path(str(r["path"])).name + ("" if r["kind"] == "job" else f" ({r['kind']})")
        table.add_row(
            escape(str(project)), escape(name), escape(str(r["fingerprint"])),
            f"{int(r['size_bytes']) / 2**20:.0f} MB", str(r["inodes"]), str(r["last_used_ago"]),
        )  # fmt: skip
    c.print(table)
    return 0


def gc_cmd(root: Path, older_than_days: float, dry_run: bool) -> int:
    from uvslurm import output

    now, limit = time.time(), older_than_days * 86400
    doomed: list[tuple[Path, str]] = []
    for v in depot.venvs(root):
        if now - v.last_used > limit:
            doomed.append((v.path, f"unused for {(now - v.last_used) / 86400:.0f} days"))
        elif v.project and not v.project_exists:
            doomed.append((v.path, f"its project {v.project} is gone"))
        elif v.kind == "incomplete" and now - v.last_used > 86400:
            doomed.append((v.path, "left incomplete by a killed build"))
    for wheel_dir, used in depot.wheel_dirs(root):
        if now - used > limit:
            doomed.append((wheel_dir, f"rebuilt wheel unused for {(now - used) / 86400:.0f} days"))
    leftovers = depot.leftovers(root, 86400) if root.is_dir() else []
    freed = 0
    for path, why in doomed:
        size, _ = depot.usage(path)
        if dry_run:
            print(f"would remove {path}: {why}")
            freed += size
            continue
        try:
            if path.parent.parent.name == ".wheels":
                shutil.rmtree(path)
            else:
                depot.remove(path)
        except depot.Busy:
            output.warn(f"skipped {path}: a job is building or placing it")
            continue
        print(f"removed {path}: {why}")
        freed += size
    for path in leftovers:
        if dry_run:
            print(f"would remove {path}: leftover")
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    verb = "would free" if dry_run else "freed"
    print(f"{verb} {freed / 2**20:.0f} MB")
    return 0


def rm_cmd(root: Path, project: str | None, cwd: Path) -> int:
    from uvslurm import output

    path = find_project(cwd / project, explicit=True).root if project else find_project(cwd).root
    pdir = root / nodeenv.project_id(str(path))
    if not pdir.is_dir():
        print(f"no venvs of {path} in {root}")
        return 0
    busy = 0
    for entry in sorted(pdir.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            try:
                depot.remove(entry)
            except depot.Busy:
                busy += 1
                output.warn(f"kept {entry}: a job is building or placing it")
    if not busy:
        shutil.rmtree(pdir, ignore_errors=True)
    print(f"removed the venvs of {path}" + (f" except {busy} in use" if busy else ""))
    return 1 if busy else 0


def run(ns: argparse.Namespace, cwd: Path) -> int:
    root = _root(cwd)
    if ns.depot_cmd == "path":
        print(root)
        return 0
    if ns.depot_cmd == "list":
        return list_cmd(root, ns.json)
    if ns.depot_cmd == "gc":
        return gc_cmd(root, ns.older_than, ns.dry_run)
    return rm_cmd(root, ns.project, cwd)
