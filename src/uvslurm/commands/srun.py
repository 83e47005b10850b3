"""`uvslurm srun [SRUN-OPTIONS] [-- CMD ...]`: an interactive job whose node prepares the venv
(the same prolog as batch jobs), then runs CMD through `uv run`, or your shell with the venv
active. The exit code is CMD's (srun passes it on)."""

from __future__ import annotations

import argparse
import os
import shutil
import time

from uvslurm import nodeenv, paths, pipeline, proc, render
from uvslurm.context import Context
from uvslurm.errors import UvslurmError

# The user's shell, venv first on PATH even after their rc file (pyenv, conda and module inits
# there prepend their own bin directories). zsh and fish read their own rc files unchanged.
SHELL_BODY = """\
if [ -z "${SHELL:-}" ] || [ "${SHELL##*/}" = bash ]; then
  exec bash --rcfile <(printf '%s\\n' '[ -f ~/.bashrc ] && . ~/.bashrc' 'PATH="$VIRTUAL_ENV/bin:$PATH"') -i
fi
exec "$SHELL" -i"""


def run(ctx: Context, ns: argparse.Namespace) -> int:
    srun = shutil.which("srun")
    if not srun:
        raise UvslurmError("srun not found on PATH", "run this on a login node of a Slurm cluster")
    req = pipeline.Request(
        command=ns.command,
        sync_args=nodeenv.sync_args(ns.extra, ns.all_extras, ns.group, ns.no_dev),
    )
    if ns.command:
        target = pipeline.Target(command=tuple(ns.command), name="interactive", search_from=ctx.cwd)
    else:
        shell = render.UserScript(render.BASH_SHEBANG, [], SHELL_BODY)
        target = pipeline.Target(script=shell, name="interactive", search_from=ctx.cwd)
    p = pipeline.realize(pipeline.plan(ctx, req, target), req)
    scripts = paths.state_dir() / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    script = scripts / f"srun-{os.getpid()}-{time.time_ns()}.sh"
    script.write_text(p.text)
    # the script must be readable on the node: the state dir is in $HOME, shared on clusters
    # --pty only with a terminal (srun warns and ignores it otherwise: scripts, CI)
    pty = ["--pty"] if os.isatty(0) else []
    argv = [srun, *pty, *ns.srun_args, "bash", str(script)]
    proc.exec(argv)
