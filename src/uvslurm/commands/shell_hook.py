"""`uvslurm shell-hook bash|zsh|fish`: keep `uvslurm env` current at each prompt.

The hooks are resources (resources/hook.<shell>); on a prompt where the directory, the loaded
modules and MODULEPATH are unchanged they compare one string and return, without a process."""

from __future__ import annotations

import argparse
import shlex
import sys
from importlib.resources import files

from uvslurm.context import Context


def text(shell: str) -> str:
    hook = files("uvslurm.resources").joinpath(f"hook.{shell}").read_text()
    # the same installation of uvslurm that printed the hook, wherever PATH points later
    command = f"{shlex.quote(sys.executable)} -m uvslurm"
    return hook.replace("@UVSLURM@", command)


def run(ctx: Context, ns: argparse.Namespace) -> int:
    print(text(ns.shell), end="")
    return 0
