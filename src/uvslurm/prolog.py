"""The prolog: bash in sections (resources/prolog/*.sh), joined into the one text that job
scripts embed and that `uvslurm prepare` and `uvslurm fingerprint` run. Pure (no I/O but the
bundled sections, read once).

The text comes in two parts (docs/design.md, "A warm start reads only the warm path"): the warm
part, every section with the functions that a warm start runs, and the rest (building, leases,
placing, pruning) after it, as comment lines that bash does not parse. In the warm part each of
those functions is a one-line stub that calls `_uvslurm_load` (lib.sh), which reads them from
the script's own text, then runs the real one. A job script puts the rest at its very end."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

# the sections, (file, what it is for), in the order they are joined: every function is defined
# before the end of main.sh calls it
SECTIONS: tuple[tuple[str, str], ...] = (
    ("fast.sh", "a warm start from the memo"),
    ("run.sh", "the command and the job's records"),
    ("lib.sh", "state, helpers of the full path"),
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
# what a warm start runs (a ready venv in the depot or on node-local disk, in every mode), and
# what may run after _uvslurm_load is gone: bash parses these on every start. Every other
# function is read only when a job calls it (tests/test_prolog.py checks that warm starts never
# do); parsing all of them cost ~5 ms per start.
WARM = (
    *("_uvslurm_log", "_uvslurm_die", "_uvslurm_since", "_uvslurm_owned", "_uvslurm_mkdepot"),
    *("_uvslurm_privtmp", "_uvslurm_sorted", "_uvslurm_ready", "_uvslurm_intact"),
    *("_uvslurm_hold", "_uvslurm_beat", "_uvslurm_load", "_uvslurm_facts", "_uvslurm_key"),
    *("_uvslurm_fingerprint", "_uvslurm_report", "_uvslurm_nl_candidates", "_uvslurm_holdcopy"),
    *("_uvslurm_local_for", "_uvslurm_localize", "_uvslurm_spread", "_uvslurm_main"),
    *("_uvslurm_nl_base", "_uvslurm_perjob", "_uvslurm_unpend"),
    *("_uvslurm_exec", "_uvslurm_snapshot", "_uvslurm_ino", "_uvslurm_ldso", "_uvslurm_os"),
    *("_uvslurm_modules", "_uvslurm_python", "_uvslurm_uvlayout", "_uvslurm_watch_modules"),
    *("_uvslurm_finduv", "_uvslurm_factsname", "_uvslurm_pyfresh", "_uvslurm_jobhold"),
    *("_uvslurm_runargs", "_uvslurm_jobless", "_uvslurm_marker_fp", "_uvslurm_tls"),
    *KEPT,
)
# the line of main.sh that becomes the `unset -f` of every other function
UNSET_PLACEHOLDER = "    unset -f _uvslurm_FUNCTIONS"
# the first line of the rest, as _uvslurm_load (lib.sh) looks for it; its last line
REST_BEGIN = "#### uvslurm prolog, the rest: {n} lines, read by _uvslurm_load when needed ####"
REST_END = "#### uvslurm prolog, end of the rest: {n} lines ####"
_DEFINITION = re.compile(r"^(_uvslurm_[A-Za-z0-9_]+)\(\)", re.M)
_WIDTH = 100


@cache
def section_text(name: str) -> str:
    """One section as its file holds it."""
    return resource("prolog", name)


def resource(*parts: str) -> str:
    """A file of uvslurm.resources: read where it is on disk (importlib.resources and the
    zipfile it imports cost every `submit --dry-run` ~2 ms), through it otherwise."""
    path = Path(__file__).parent.joinpath("resources", *parts)
    if path.is_file():
        return path.read_text()
    from importlib.resources import files

    return files("uvslurm.resources").joinpath(*parts).read_text()


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


def chunks(text: str) -> list[tuple[str, str]]:
    """A section's lines cut into (function name, its comment and definition) and ("", any
    other lines); joined with newlines they give the text back. A definition ends on its own
    line when that ends with `}`, else at the next line that begins with `}` (the sections
    indent function bodies)."""
    lines = text.split("\n")
    out: list[tuple[str, str]] = []
    other: list[str] = []
    i = 0
    while i < len(lines):
        m = _DEFINITION.match(lines[i])
        if not m:
            other.append(lines[i])
            i += 1
            continue
        start = len(other)
        while start > 0 and other[start - 1].startswith("#"):
            start -= 1
        comment = other[start:]
        del other[start:]
        if other:
            out.append(("", "\n".join(other)))
            other = []
        end = i
        if not lines[i].rstrip().endswith("}"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("}"))
        out.append((m.group(1), "\n".join([*comment, *lines[i : end + 1]])))
        i = end + 1
    if other:
        out.append(("", "\n".join(other)))
    return out


def _stub(name: str) -> str:
    return f'{name}() {{ _uvslurm_load; {name} "$@"; }}'


@cache  # warm_text and rest_text both need it: one cut of the sections per process
def _parts(lazy: bool = True) -> tuple[list[str], list[str]]:
    """(the warm part's sections, the rest's sections), each after its banner; not lazy: every
    function in the warm part, as bash has them once _uvslurm_load ran, and no rest."""
    warm, rest = [], []
    for i, (name, what) in enumerate(SECTIONS, 1):
        lines = section_text(name).rstrip("\n").split("\n")
        while lines and lines[0].startswith("# shellcheck "):
            lines.pop(0)
        kept, later = [], []
        for fn, chunk in chunks("\n".join(lines)):
            if lazy and fn and fn not in WARM:
                later.append(chunk)
                chunk = _stub(fn)
            kept.append(chunk)
        if later:
            rest.append(banner(i, name, what) + "\n\n" + "\n\n".join(later) + "\n")
        warm.append(banner(i, name, what) + "\n" + "\n".join(kept) + "\n")
    return warm, rest


@cache
def warm_text(lazy: bool = True) -> str:
    """The warm part: the sections joined in order, each after its banner, without the
    shellcheck directives at its top (they serve the file's own check) and with a stub for each
    function not in WARM (not lazy: with every function, for checks of the whole); one newline
    at the end."""
    joined = "\n".join(_parts(lazy)[0])
    if joined.count(UNSET_PLACEHOLDER + "\n") != 1:
        raise RuntimeError(f"main.sh must hold the line {UNSET_PLACEHOLDER.strip()!r} once")
    return joined.replace(UNSET_PLACEHOLDER + "\n", _unset_line() + "\n")


@cache
def rest_text() -> str:
    """The rest: the functions not in WARM, by section, each line commented out (bash skips
    them, and a job script's body that ends in an open quote or here-document cannot run
    them); framed by REST_BEGIN and REST_END; one newline at the end."""
    # _parts(True), as warm_text calls it: functools.cache keys `()` and `(True,)` apart
    lines = "\n\n".join(_parts(True)[1]).rstrip("\n").split("\n")
    body = [f"#{line}" for line in lines]
    n = len(body)
    return "\n".join([REST_BEGIN.format(n=n), *body, REST_END.format(n=n)]) + "\n"


def text() -> str:
    """The whole prolog: the warm part, then the rest."""
    return warm_text() + rest_text()


_CALL = re.compile(r"\b_uvslurm_[A-Za-z0-9_]+\b")


def functions_text(roots: tuple[str, ...], cold: str = "") -> str:
    """The definitions of `roots` and of every prolog function they call (transitively), in
    the sections' order, with their comments: what another bash program (the shell hook's)
    takes from the prolog so that it computes what the prolog computes, with the same code.
    With `cold`, a function that a warm start does not run (not in WARM) is a one-line stub
    that runs `cold` instead (and what only it calls is left out)."""
    defined = {fn: chunk for name, _ in SECTIONS for fn, chunk in chunks(section_text(name)) if fn}
    wanted: set[str] = set()
    todo = [r for r in roots if r in defined]
    while todo:
        fn = todo.pop()
        if fn in wanted:
            continue
        wanted.add(fn)
        if not cold or fn in WARM:
            todo += [c for c in _CALL.findall(defined[fn]) if c in defined and c not in wanted]
    return (
        "\n\n".join(
            chunk if not cold or fn in WARM else f"{fn}() {{ {cold}; }}"
            for fn, chunk in defined.items()
            if fn in wanted
        )
        + "\n"
    )
