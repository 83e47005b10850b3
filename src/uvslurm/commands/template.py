"""`uvslurm template [NAME] [-o FILE]`: #SBATCH header templates, filled from the config."""

from __future__ import annotations

import argparse
import re
from importlib.resources import files
from pathlib import Path

from uvslurm import sbatch_options, sources
from uvslurm.errors import NoProject, UvslurmError
from uvslurm.project import find_project

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


def run(ns: argparse.Namespace, cwd: Path) -> int:
    if not ns.name:
        width = max(map(len, NAMES))
        for name in NAMES:
            print(f"{name:<{width}}  {summary(name)}")
        return 0
    if ns.name not in NAMES:
        raise UvslurmError(f"unknown template '{ns.name}'", f"choose one of: {', '.join(NAMES)}")
    try:
        project = find_project(cwd / ns.project, explicit=True) if ns.project else find_project(cwd)
        config = sources.load(project.tool_table, {}, pyproject=project.root / "pyproject.toml")
    except NoProject:
        if ns.project:
            raise
        config = sources.load(None, {})
    options = sbatch_options.normalize(config.table("sbatch"))
    if ns.profile:
        if ns.profile not in config.profile_names():
            known = ", ".join(config.profile_names()) or "none defined"
            raise UvslurmError(f"unknown profile '{ns.profile}' (available: {known})")
        options.update(sbatch_options.normalize(config.table(f"profiles.{ns.profile}")))
    text = fill(text_of(ns.name), options)
    if not ns.output:
        print(text, end="")
        return 0
    dest = cwd / ns.output
    if dest.exists():
        raise UvslurmError(f"{ns.output} exists", "remove it or choose another file name")
    try:
        dest.write_text(text)
    except OSError as e:
        raise UvslurmError(f"cannot write {ns.output}: {e.strerror}") from e
    dest.chmod(0o755)
    print(f"wrote {ns.output}: submit it with `uvslurm submit {ns.output}`")
    return 0
