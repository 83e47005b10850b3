"""`uvslurm config`: every effective setting and where it came from."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from uvslurm import nodeenv, paths, sources
from uvslurm.config import Config
from uvslurm.errors import UvslurmError
from uvslurm.project import find_project


def effective(cwd: Path, project_dir: str | None) -> tuple[list[tuple[str, Any, str]], list[str]]:
    """(key, value, source) rows, and the files that were considered."""
    pyproject = None
    try:
        project = (
            find_project(cwd / project_dir, explicit=True) if project_dir else find_project(cwd)
        )
        table: dict[str, Any] | None = project.tool_table
        pyproject = project.root / "pyproject.toml"
    except UvslurmError:
        if project_dir:
            raise
        table = None
    config: Config = sources.load(table, {}, pyproject=pyproject)
    rows = [(k, s.value, s.source) for k, s in sorted(config.settings.items())]
    if "depot" not in config.settings:
        where = "$SCRATCH" if os.environ.get("SCRATCH") else "user cache dir"
        rows.insert(0, ("depot", str(nodeenv.depot_root(config)), f"default ({where})"))
    if "uv" not in config.settings:
        rows.append(("uv", shutil.which("uv") or "(not found)", "default (PATH)"))
    files = [
        f"site: {paths.site_config_file(os.environ)}",
        f"user: {paths.user_config_file()}",
        f"project: {pyproject or '(no project here)'}",
    ]
    return rows, files


def run(ns: argparse.Namespace, cwd: Path) -> int:
    rows, files = effective(cwd, ns.project)
    if ns.json:
        print(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}, indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="uvslurm settings (lowest to highest: default, site, user, project, environment, command line)",
                  title_justify="left")  # fmt: skip
    table.add_column("setting")
    table.add_column("value", overflow="fold")
    table.add_column("from", style="dim", overflow="fold")
    for key, value, source in rows:
        table.add_row(
            escape(key),
            escape(json.dumps(value) if not isinstance(value, str) else value),
            escape(source),
        )
    c = Console(highlight=False)  # stdout: the answer, not a diagnostic
    c.print(table)
    for f in files:
        c.print(escape(f), style="dim")
    return 0
