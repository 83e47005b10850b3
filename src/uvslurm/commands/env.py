"""`uvslurm env`: what points plain `uv sync`/`uv run` at this project's depot venv.

The interactive venv is `<depot>/<project id>/shell-<fingerprint>`: the job prolog owns the
`<fingerprint>-<lock hash>` directories next to it (published atomically, deleted when found
without their marker), while this one is the user's own, kept in sync by uv as they edit the lock.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from uvslurm import nodeenv
from uvslurm.commands.prepare import node_settings
from uvslurm.errors import NoProject, UvslurmError
from uvslurm.project import find_project

# what `env` sets; UVSLURM_ENV_PROJECT also tells a later `env` that it may unset them
VARS = ("UV_PROJECT_ENVIRONMENT", "UVSLURM_ENV_PROJECT")


def fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render(shell: str, values: dict[str, str] | None) -> str:
    """Shell code that sets `values`, or unsets what env set before when `values` is None. Pure."""
    if shell == "json":
        return json.dumps(values or {}) + "\n"
    if values is None:
        # only what env set: a UV_PROJECT_ENVIRONMENT of the user's own stays
        if shell == "fish":
            return f"if set -q UVSLURM_ENV_PROJECT; set -e {' '.join(VARS)}; end;\n"
        return f'if [ -n "${{UVSLURM_ENV_PROJECT:-}}" ]; then unset {" ".join(VARS)}; fi\n'
    if shell == "fish":
        return "".join(f"set -gx {k} {fish_quote(v)};\n" for k, v in values.items())
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())


def values_for(cwd: Path, project_dir: str | None) -> dict[str, str] | None:
    """The variables for the project around `cwd` (None outside any project)."""
    try:
        root = (
            find_project(cwd / project_dir, explicit=True) if project_dir else find_project(cwd)
        ).root
    except NoProject:
        if project_dir:
            raise
        return None
    settings = node_settings(str(root), cwd, with_sources=False)
    fp, _, _ = nodeenv.parse_fingerprint(nodeenv.run_prolog(settings, "fingerprint"))
    venv = Path(settings.depot) / settings.project_id / f"shell-{fp}"
    return {"UV_PROJECT_ENVIRONMENT": str(venv), "UVSLURM_ENV_PROJECT": str(root)}


def run(ns: argparse.Namespace, cwd: Path) -> int:
    try:
        values = values_for(cwd, ns.project)
    except UvslurmError:
        # an untrusted or broken project: what pointed uv elsewhere before must not stay
        print(render(ns.shell, None), end="")
        raise
    print(render(ns.shell, values), end="")
    return 0
