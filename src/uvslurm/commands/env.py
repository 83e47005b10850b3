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

from uvslurm import nodeenv, shellcache
from uvslurm.context import Context
from uvslurm.errors import UvslurmError

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


def values_for(ctx: Context, remember: bool = False) -> dict[str, str] | None:
    """The variables for the context's project (None outside any project); with `remember`,
    leave the record that lets the shell hook answer without Python next time."""
    project = ctx.project
    if project is None:
        return None
    settings = nodeenv.settings_for(project, ctx.config)
    fp, _, _ = nodeenv.parse_fingerprint(nodeenv.run_prolog(settings, "fingerprint"))
    if remember:
        shellcache.remember(ctx)
    venv = Path(settings.depot) / settings.project_id / f"shell-{fp}"
    return {"UV_PROJECT_ENVIRONMENT": str(venv), "UVSLURM_ENV_PROJECT": str(project.root)}


def run(ctx: Context, ns: argparse.Namespace) -> int:
    try:
        # (a project named with --project is not what the hook's search finds)
        values = values_for(ctx, remember=ns.project is None and ns.shell != "json")
    except UvslurmError:
        # an untrusted or broken project: what pointed uv elsewhere before must not stay
        print(render(ns.shell, None), end="")
        raise
    print(render(ns.shell, values), end="")
    return 0
