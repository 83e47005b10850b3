"""`uvslurm shell-hook bash|zsh|fish`: keep `uvslurm env` current at each prompt.

The hooks are resources (resources/hook.<shell>); on a prompt where the directory, the loaded
modules and MODULEPATH are unchanged they compare one string and return, without a process.
After a change they run one bash on the program that shellcache writes into the user's state
(no Python while `uvslurm env`'s record for the project still holds), else `uvslurm env`."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys

from uvslurm import prolog, shellcache
from uvslurm.context import Context


def quote(shell: str, value: str) -> str:
    if shell == "fish":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return shlex.quote(value)


def text(shell: str) -> str:
    hook = prolog.resource(f"hook.{shell}")
    # the same installation of uvslurm that printed the hook, wherever PATH points later
    command = f"{quote(shell, sys.executable)} -m uvslurm"
    # no program (no private state directory): every change asks `uvslurm env`
    program = shellcache.ensure_program()
    bash = shutil.which("bash") or "bash"
    return (
        hook.replace("@UVSLURM@", command)
        .replace("@PROGRAM@", quote(shell, str(program or "")))
        .replace("@BASH@", quote(shell, bash))
    )


def run(ctx: Context, ns: argparse.Namespace) -> int:
    print(text(ns.shell), end="")
    return 0
