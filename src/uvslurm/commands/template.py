"""`uvslurm template [NAME] [-o FILE]`: #SBATCH header templates, filled from the config."""

from __future__ import annotations

import argparse
import re
from importlib.resources import files

from uvslurm import pipeline, sbatch_options
from uvslurm.context import Context
from uvslurm.errors import UvslurmError

NAMES = ("cpu", "gpu", "array", "mpi")
_LINE = re.compile(r"^#SBATCH --([a-z-]+)=(.*)$")


def text_of(name: str) -> str:
    return files("uvslurm.resources.templates").joinpath(f"{name}.sh").read_text()


def summary(name: str) -> str:
    """The template's first comment line after the shebang, without its 'uvslurm template' prefix."""
    line = text_of(name).splitlines()[1]
    return line.lstrip("# ").split(": ", 1)[-1].split(". ", 1)[0].rstrip(".")


def fill(text: str, options: dict[str, str | bool]) -> str:
    """Replace the values of the template's #SBATCH lines that the config or profile sets. Pure."""
    out = []
    for line in text.splitlines(keepends=True):
        m = _LINE.match(line.rstrip("\n"))
        if m and m.group(1) in options and options[m.group(1)] is not True:
            line = sbatch_options.render(m.group(1), options[m.group(1)]) + "  # from your config\n"
        out.append(line)
    return "".join(out)


def run(ctx: Context, ns: argparse.Namespace) -> int:
    if not ns.name:
        width = max(map(len, NAMES))
        for name in NAMES:
            print(f"{name:<{width}}  {summary(name)}")
        return 0
    if ns.name not in NAMES:
        raise UvslurmError(f"unknown template '{ns.name}'", f"choose one of: {', '.join(NAMES)}")
    text = fill(text_of(ns.name), pipeline.sbatch_defaults(ctx.config, ns.profile))
    if not ns.output:
        print(text, end="")
        return 0
    dest = ctx.cwd / ns.output
    if dest.exists():
        raise UvslurmError(f"{ns.output} exists", "remove it or choose another file name")
    try:
        dest.write_text(text)
    except OSError as e:
        raise UvslurmError(f"cannot write {ns.output}: {e.strerror}") from e
    dest.chmod(0o755)
    print(f"wrote {ns.output}: submit it with `uvslurm submit {ns.output}`")
    return 0
