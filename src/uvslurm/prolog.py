"""The prolog: bash in sections (resources/prolog/*.sh), joined into the one text that job
scripts embed and that `uvslurm prepare` and `uvslurm fingerprint` run. Pure (no I/O but the
bundled sections, read once)."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

# the sections, (file, what it is for), in the order they are joined: every function is defined
# before the end of main.sh calls it
SECTIONS: tuple[tuple[str, str], ...] = (
    ("lib.sh", "inputs, state, helpers"),
    ("fingerprint.sh", "which binaries fit"),
    ("key.sh", "the venv's depot location"),
    ("build.sh", "a new venv in the depot"),
    ("place.sh", "node-local copy or mount"),
    ("spread.sh", "jobs of several nodes"),
    ("main.sh", "the steps, then the mode"),
)
# in activate mode the job script goes on after the prolog, with an EXIT trap that unmounts a
# mounted image and records the exit code: these functions stay; every other one is unset
KEPT = ("_uvslurm_umount", "_uvslurm_fuse_off", "_uvslurm_atexit", "_uvslurm_record")
# the line of main.sh that becomes the `unset -f` of every other function
UNSET_PLACEHOLDER = "    unset -f _uvslurm_FUNCTIONS"
_DEFINITION = re.compile(r"^(_uvslurm_[A-Za-z0-9_]+)\(\)", re.M)
_WIDTH = 100


@cache
def section_text(name: str) -> str:
    """One section as its file holds it."""
    return files("uvslurm.resources").joinpath("prolog", name).read_text()


def function_names() -> list[str]:
    """Every function the sections define, in the order they are defined."""
    return [m for name, _ in SECTIONS for m in _DEFINITION.findall(section_text(name))]


def _unset_line() -> str:
    """`unset -f` of every function but the KEPT ones, wrapped at _WIDTH like the sections."""
    lines, line = [], "    unset -f"
    for f in (f for f in function_names() if f not in KEPT):
        if len(line) + 1 + len(f) + 2 > _WIDTH:
            lines.append(line + " \\")
            line = "      " + f
        else:
            line += " " + f
    return "\n".join([*lines, line])


def banner(i: int, name: str, what: str) -> str:
    return (
        f"# ==== uvslurm prolog {i}/{len(SECTIONS)}: {name.removesuffix('.sh')} - {what}"
        f" (resources/prolog/{name}) ===="
    )


@cache
def text() -> str:
    """The sections joined in order, each after its banner, without the shellcheck directives
    at its top (they serve the file's own check); one newline at the end."""
    parts = []
    for i, (name, what) in enumerate(SECTIONS, 1):
        lines = section_text(name).rstrip("\n").split("\n")
        while lines and lines[0].startswith("# shellcheck "):
            lines.pop(0)
        parts.append(banner(i, name, what) + "\n" + "\n".join(lines) + "\n")
    joined = "\n".join(parts)
    if joined.count(UNSET_PLACEHOLDER + "\n") != 1:
        raise RuntimeError(f"main.sh must hold the line {UNSET_PLACEHOLDER.strip()!r} once")
    return joined.replace(UNSET_PLACEHOLDER + "\n", _unset_line() + "\n")
