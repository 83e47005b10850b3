"""`uvslurm srun [SRUN-OPTIONS] [-- CMD ...]`: an interactive job whose node prepares the venv
(the same prolog as batch jobs), then runs CMD through `uv run`, or your shell with the venv
active. The exit code is CMD's (srun passes it on)."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Mapping

from uvslurm import nodeenv, output, pipeline, proc, render
from uvslurm.context import Context
from uvslurm.errors import UvslurmError

# The user's shell, venv first on PATH even after their rc file (pyenv, conda and module inits
# there prepend their own bin directories). zsh and fish read their own rc files unchanged.
SHELL_BODY = """\
if [ -z "${SHELL:-}" ] || [ "${SHELL##*/}" = bash ]; then
  exec bash --rcfile <(printf '%s\\n' '[ -f ~/.bashrc ] && . ~/.bashrc' 'PATH="$VIRTUAL_ENV/bin:$PATH"') -i
fi
exec "$SHELL" -i"""


# sbatch options of the config that mean something else to srun (or nothing): an interactive
# step's output is the terminal, and it is neither an array nor requeued
BATCH_ONLY = frozenset(
    {"array", "output", "error", "input", "requeue", "no-requeue", "ignore-pbs", "export-file",
     "kill-on-invalid-dep", "get-user-env", "open-mode", "wait-all-nodes"}
)  # fmt: skip
# One argv string holds at most 32 pages (MAX_ARG_STRLEN, 128 KiB with its NUL), and the job
# script is about that big: it travels in pieces of at most 32767 characters (4 bytes each at
# most in UTF-8), which this loader, bash's whole `-c` text, joins and evaluates as `bash -c`
# would have run the script; the prolog reads its rest from the same variable (lib.sh:
# _uvslurm_load). All of argv and the environment may hold a quarter of the stack limit (2 MB).
PIECE = 32 * 1024 - 1
LOADER = 'printf -v _uvslurm_text %s "$@"; set --; eval "$_uvslurm_text"'


def bash_argv(text: str) -> list[str]:
    """`bash -c` for the script `text`, whatever its size (PIECE); $0 is uvslurm-srun."""
    pieces = [text[i : i + PIECE] for i in range(0, len(text), PIECE)]
    return ["bash", "-c", LOADER, "uvslurm-srun", *pieces]


def srun_options(options: Mapping[str, str | bool]) -> tuple[list[str], list[str]]:
    """(srun arguments for the configured sbatch options, the names left out). They come
    before the user's own srun options, which therefore win (srun takes the last of each)."""
    args, skipped = [], []
    for name, value in sorted(options.items()):
        if name in BATCH_ONLY:
            skipped.append(name)
        else:
            args.append(f"--{name}" if value is True else f"--{name}={value}")
    return args, skipped


def run(ctx: Context, ns: argparse.Namespace) -> int:
    srun = shutil.which("srun")
    if not srun:
        raise UvslurmError("srun not found on PATH", "run this on a login node of a Slurm cluster")
    req = pipeline.Request(
        command=ns.command,
        profile=ns.profile,
        locked=ns.locked,
        frozen=ns.frozen,
        sync_args=nodeenv.selection(ns),
        python=ns.python,
        argv=getattr(ns, "argv", ()),
    )
    if ns.command:
        target = pipeline.Target(command=tuple(ns.command), name="interactive", search_from=ctx.cwd)
    else:
        shell = render.UserScript(render.BASH_SHEBANG, [], SHELL_BODY)
        target = pipeline.Target(script=shell, name="interactive", search_from=ctx.cwd)
    plan = pipeline.plan(ctx, req, target)
    configured = {
        k: v for k, v in plan.options.effective.items() if k not in plan.options.defaulted
    }
    args, skipped = srun_options(configured)
    if skipped:
        output.warn(
            f"not for srun, left out: {', '.join('--' + n for n in skipped)} (from the config)"
        )
    p = pipeline.realize(plan, req)
    # the script travels in srun's argv (`bash -c`): no copy to keep readable on the node, and
    # none left behind, since this process becomes srun
    # --pty only with a terminal (srun warns and ignores it otherwise: scripts, CI)
    pty = ["--pty"] if os.isatty(0) else []
    proc.exec([srun, *pty, *args, *ns.srun_args, *bash_argv(p.text)])
