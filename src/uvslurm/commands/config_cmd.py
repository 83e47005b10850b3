"""`uvslurm config`: every effective setting and where it came from."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uvslurm import nodeenv, output, paths, sources
from uvslurm.config import ENV_VARS, Config
from uvslurm.context import Context
from uvslurm.errors import UvslurmError
from uvslurm.project import Project


@dataclass(frozen=True)
class Row:
    key: str
    value: Any
    source: str


def _source(config: Config, key: str) -> str:
    source = config.settings[key].source
    if source == "environment" and key in ENV_VARS:
        return f"environment ({ENV_VARS[key]})"
    return source


def effective(config: Config) -> list[Row]:
    """Every setting with its value and origin, the computed ones (depot, uv) resolved."""
    rows = [Row(k, s.value, _source(config, k)) for k, s in sorted(config.settings.items())]
    rows = [r for r in rows if r.key not in ("depot", "uv")]
    try:
        depot = str(nodeenv.depot_root(config))
    except UvslurmError as e:
        depot = f"(invalid: {e.message})"
    if "depot" in config.settings:
        raw = config.get("depot")
        note = "" if raw == depot else f" (set as {raw!r})"
        rows.insert(0, Row("depot", depot, _source(config, "depot") + note))
    else:
        where = "$SCRATCH" if os.environ.get("SCRATCH") else "user cache dir"
        rows.insert(0, Row("depot", depot, f"default ({where})"))
    try:
        uv = nodeenv.uvtool_find(config)
    except UvslurmError:
        uv = "(not found)"
    if "uv" in config.settings:
        rows.append(Row("uv", uv, f"{_source(config, 'uv')} (set as {config.get('uv')!r})"))
    else:
        rows.append(Row("uv", uv, "default (uv on PATH)"))
    return rows


def files(project: Project | None) -> list[tuple[str, Path | None]]:
    """The configuration files that were considered, lowest precedence first."""
    return [
        ("site", paths.site_config_file(os.environ)),
        ("user", paths.user_config_file()),
        ("project", project.root / "pyproject.toml" if project else None),
    ]


def _load(ctx: Context) -> tuple[Project | None, Config, list[UvslurmError]]:
    """The project and configuration as far as they can be read: this command is the one to
    debug a broken configuration with, so it shows what holds and what does not."""
    try:
        return ctx.project, ctx.config, []
    except UvslurmError as first:
        try:
            project = ctx.project
        except UvslurmError:
            project = None
        tool = project.tool_table if project else None
        where = project.root / "pyproject.toml" if project else None
        config, problems = sources.load_reporting(lambda: tool, ctx.cli, pyproject=where)
        return project, config, problems or [first]


def run(ctx: Context, ns: argparse.Namespace) -> int:
    project, config, problems = _load(ctx)
    rows = effective(config)
    considered = files(project)
    if ns.json:
        output.json({r.key: {"value": r.value, "source": r.source} for r in rows})
        return _report(problems)
    output.table(
        "uvslurm settings (lowest to highest: default, site file, user file, project, "
        "environment, command line)",
        [output.Col("setting"), output.Col("value", fold=True),
         output.Col("from", style="dim", fold=True)],
        [[r.key, r.value if isinstance(r.value, str) else json.dumps(r.value), r.source]
         for r in rows],
    )  # fmt: skip
    for label, path in considered:
        state = "(no project here)" if path is None else str(path) + ("" if path.is_file() else " (none)")  # fmt: skip
        output.line((f"{label}: {state}", "dim"), stdout=True)
    if problems:
        output.line("(the settings above leave out the layers with an error)", stdout=True)
    return _report(problems)


def _report(problems: list[UvslurmError]) -> int:
    """Each mistake as the error line other commands stop at; the settings above are what
    holds without the layers that have one."""
    for e in problems:
        output.error(e.line())
    return problems[0].exit_code if problems else 0
