"""`uvslurm prepare`: run the prolog's venv lifecycle here and now."""

from __future__ import annotations

from pathlib import Path

from uvslurm import nodeenv, sources
from uvslurm.project import find_project


def node_settings(
    project_dir: str | None,
    cwd: Path,
    sync_args: tuple[str, ...] = (),
    no_node_local: bool = False,
    with_sources: bool = True,
) -> nodeenv.NodeSettings:
    project = find_project(cwd / project_dir, explicit=True) if project_dir else find_project(cwd)
    cli_layer = {"node-local": "never"} if no_node_local else {}
    config = sources.load(project.tool_table, cli_layer, pyproject=project.root / "pyproject.toml")
    return nodeenv.settings_for(project, config, sync_args, with_sources=with_sources)


def run(project_dir: str | None, cwd: Path, sync_args: tuple[str, ...], no_node_local: bool) -> int:
    settings = node_settings(project_dir, cwd, sync_args, no_node_local)
    venv = nodeenv.run_prolog(settings, "prepare").strip()
    print(venv)
    return 0
