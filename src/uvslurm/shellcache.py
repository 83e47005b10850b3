"""The shell hook without Python (docs/design.md, "The shell hook without Python"): the bash
program the hook runs after a directory or module change (resources/hook.sh, after the prolog
functions it calls), and the per-directory records of `uvslurm env` that it reads.

A record says what `uvslurm env` found for a project directory and every check that led there:
the files it read or looked for (by inode, mtime and size, or their absence), the directories
it found private or not, the environment variables it consulted. The program believes the
settings while every check gives the same answer, then computes the fingerprint with the
prolog's own functions; otherwise it leaves the decision to `uvslurm env`, which writes a new
record. Rendering is pure; `ensure_program` and `remember` write into the user's state."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from uvslurm import nodeenv, paths, prolog, safety, trust
from uvslurm.config import _VAR, ENV_VARS, Config
from uvslurm.context import Context
from uvslurm.errors import UvslurmError
from uvslurm.nodeenv import NodeSettings
from uvslurm.project import Project, _members

VERSION = "1"
# what the program calls of the prolog: the fingerprint and the depot's creation, as the
# prolog's main runs them before its fingerprint mode. What only a cold start runs (machine
# facts not yet cached, an interpreter not yet asked) is not decided here: exit 3, and
# `uvslurm env` runs the whole prolog, which caches them for the next time.
ROOTS = ("_uvslurm_fingerprint", "_uvslurm_mkdepot", "_uvslurm_privtmp")
# what decides the configuration files, the depot and the trust records besides the files
ENV = ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "SCRATCH",
       "UVSLURM_SITE_CONFIG", *ENV_VARS.values())  # fmt: skip
# (hook.sh checks the same bound: a file name holds at most 255 bytes)
_NAME_MAX = 238

Entry = tuple[str, ...]


def program_text() -> str:
    """The hook's bash program: the prolog functions it calls, then resources/hook.sh."""
    main = prolog.resource("hook.sh")
    head = "# shellcheck shell=bash\n# shellcheck disable=SC2154 # the prolog's state, its own\n"
    text = prolog.functions_text(ROOTS, cold="exit 3") + "\n" + main
    # without its comment lines (the sources keep them): bash parses a third less at every run,
    # ~1.5 ms of the hook's on a loaded VM. No heredoc or multi-line string of these functions
    # holds a line that starts with '#' (tests/test_unit_shellcache.py compares the functions
    # bash defines from both texts).
    lines = text.split("\n")
    return head + "\n".join(ln for ln in lines if ln.lstrip()[:1] != "#" or "shellcheck" in ln)


def program_name(text: str) -> str:
    return f"hook-{hashlib.sha256(text.encode()).hexdigest()[:12]}.sh"


def record_name(top: str) -> str | None:
    """The record's file name for the project directory `top` (the path, '%' and '/' escaped);
    None when it would be too long for a file name (then the hook always asks Python)."""
    enc = os.fsencode(top).replace(b"%", b"%25").replace(b"/", b"%2F")
    return None if len(enc) >= _NAME_MAX else "r" + os.fsdecode(enc)


def record_text(entries: list[Entry]) -> str | None:
    """The record: fields ended by \\x1f, entries by \\x1e (None when a value holds either)."""
    if any(c in v for e in entries for v in e for c in "\x1e\x1f\0"):
        return None
    return "".join("\x1f".join(e) + "\x1e" for e in entries)


def store() -> Path:
    return paths.state_dir() / "shell"


def _private_dir(path: Path) -> bool:
    """Create `path` (0700) if missing; is it this user's alone?"""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return safety.why_not_private(path) is None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def ensure_program() -> Path | None:
    """The program, written into the store if it is not there (None: no private store)."""
    try:
        where = store()
        if not _private_dir(where):
            return None
        text = program_text()
        path = where / program_name(text)
        if not (path.is_file() and not safety.why_not_private(path) and path.read_text() == text):
            _write(path, text)
        return path
    except OSError:
        return None


def _file(out: list[Entry], path: Path) -> None:
    """A file read or looked for: its identity, or its absence."""
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        out.append(("a", str(path)))
        return
    ns = st.st_mtime_ns
    out.append(("f", str(path), f"{st.st_ino} {ns // 10**9}.{ns % 10**9:09d} {st.st_size}"))


def _mode(out: list[Entry], path: Path) -> bool:
    """A directory (or file) found private, or not; True when private."""
    private = safety.why_not_private(path) is None
    out.append(("p" if private else "n", str(path)))
    return private


def entries(
    project: Project, config: Config, settings: NodeSettings, environ: Mapping[str, str]
) -> list[Entry]:
    """What `uvslurm env` consulted for `project` (found from a directory by the search, not
    named with --project), as the checks the program repeats; the settings it found. A
    superset of Python's checks is harmless (a record that holds less often)."""
    top = project.member_dir or project.root
    out: list[Entry] = [("v", VERSION), ("k", str(top))]
    # project.checked: the directory, its pyproject.toml (followed), or a trust record
    roots = [top] if project.member_dir is None else [top, project.root]
    for d in roots:
        _mode(out, d)
        _mode(out, Path(os.path.realpath(d / "pyproject.toml")))
        _file(out, d / "pyproject.toml")
        _file(out, trust._record(d))
    # project.in_workspace: the directories above, up to one that others could write to
    if project.member_dir is not None or _members(project.pyproject) is None:
        for d in top.parents:
            if not _mode(out, d):
                break
            _file(out, d / "pyproject.toml")
    # Project.python_request
    dirs = [project.root] if project.member_dir is None else [top, *top.parents]
    for d in dirs:
        _file(out, d / ".python-version")
        if d == project.root:
            break
    # the configuration files (sources.load)
    _file(out, paths.site_config_file(dict(environ)))
    _file(out, paths.user_config_file())
    names = list(ENV)
    depot = config.settings.get("depot")
    if depot is not None and depot.source not in ("environment", "command line"):
        names += [m.group("braced") or m.group("name") for m in _VAR.finditer(str(depot.value))]
    for name in dict.fromkeys(names):
        out.append(("e", name, environ[name]) if name in environ else ("u", name))
    out += [("s", k, v) for k, v in settings.environ("fingerprint").items() if k != "UVSLURM_UV"]
    out.append(("c", str(config.get("uv") or "")))
    return out


def _answer(ctx: Context) -> tuple[object, ...]:
    """What a record stands for: the project as found and the prolog's inputs."""
    p, config = ctx.project, ctx.config
    if p is None:
        return ()
    settings = nodeenv.settings_for(p, config)
    return p.root, p.member_dir, settings.environ("fingerprint"), config.get("uv")


def remember(ctx: Context) -> None:
    """Leave the record of `uvslurm env`'s answer in `ctx` for the program (best effort:
    without one, the hook asks Python again). The identities are taken after the answer, then
    the answer is found again from scratch: a file changed meanwhile either gives another
    answer (no record) or an identity the record does not hold (the program asks Python)."""
    project = ctx.project
    if project is None:
        return
    try:
        where = store()
        name = record_name(str(project.member_dir or project.root))
        program = ensure_program() if _private_dir(where) else None
        if name is None or program is None:
            return
        settings = nodeenv.settings_for(project, ctx.config)
        # only this uvslurm's program believes it: another one may compute another fingerprint
        found = [("h", program.name), *entries(project, ctx.config, settings, os.environ)]
        text = record_text(found)
        if text is None or _answer(Context(cwd=ctx.cwd)) != _answer(ctx):
            (where / name).unlink(missing_ok=True)
            return
        _write(where / name, text)
    except (OSError, UvslurmError):
        return
