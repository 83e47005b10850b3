"""`uvslurm trust [DIR] [--revoke]`: allow a project's settings that run programs, or a project
of another user, as direnv's `allow` does (see uvslurm.trust)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from uvslurm import safety, trust
from uvslurm.context import Context
from uvslurm.errors import UvslurmError
from uvslurm.project import Project
from uvslurm.sources import read_toml


def _locate(cwd: Path, directory: str | None) -> Path:
    """DIR itself, or the nearest directory upward holding a pyproject.toml (whoever owns it:
    the user is about to decide whether to trust it, and is shown who that is)."""
    start = (cwd / directory).resolve() if directory else cwd.resolve()
    for d in [start] if directory else [start, *start.parents]:
        if (d / "pyproject.toml").is_file():
            return d
    raise UvslurmError(
        f"no pyproject.toml in {start}", "name the project directory: uvslurm trust DIR"
    )


def run(ctx: Context, ns: argparse.Namespace) -> int:
    root = _locate(ctx.cwd, ns.directory)
    if ns.revoke:
        done = trust.revoke(root)
        print(f"{'no longer trusted' if done else 'was not trusted'}: {root}")
        return 0
    project = Project(root, read_toml(root / "pyproject.toml"))
    code = trust.code_values(project.tool_table)
    trust.allow(root, code)
    owner = safety.owner_name(os.stat(root / "pyproject.toml").st_uid)
    what = "; ".join(f"{k} = {v!r}" for k, v in code.items()) or "it names no programs to run"
    print(f"trusted {root} (pyproject.toml of {owner}): {what}")
    return 0
