"""What the prolog needs to know, as one value shared by submit, prepare and fingerprint."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from uvslurm import paths, proc, prolog, schema
from uvslurm.config import Config, expand_path
from uvslurm.errors import EXIT_PREPARE, PrepareError, UsageError, UvslurmError
from uvslurm.project import Project

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_ADD_SEALS = 1033  # F_ADD_SEALS, which Python's fcntl names only where its libc did
_SEALS = 0xF  # F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE


class NodeSettings(NamedTuple):
    project: str
    uv: str
    depot: str
    node_local: str
    offline: str  # "auto", "true" or "false"
    python: str
    sync_args: tuple[str, ...]
    fingerprint_env: tuple[str, ...]
    fingerprint_commands: tuple[str, ...] = ()
    fingerprint_modules: bool = True
    fingerprint_ignore_modules: tuple[str, ...] = ()  # module names or patterns left out
    rebuild: tuple[str, ...] = ()  # normalized package names
    rebuild_sources: str = ""  # rebuild.encode(...) of their locked sources
    image: str = "none"  # "none", "tar.zst" or "squashfs"
    lock_hash: str = ""  # sha256 of the uv.lock submitted ("" when none was read)
    lock_dir: str = ""  # the submitted pyproject.toml + uv.lock the node builds from (pipeline)
    record: str = ""  # where the job records its start and end for its manifest (manifest.py)
    snapshot: str = ""  # the copy of the project's git-tracked files the command runs in
    script: str = ""  # a PEP 723 script whose environment this is ("": a project's)
    platforms: tuple[str, ...] = ()  # the `platforms` setting: other nodes' platforms

    @property
    def project_id(self) -> str:
        return project_id(self.project) if self.project else ""

    def environ(self, mode: str) -> dict[str, str]:
        """The prolog's inputs, encoded as schema.INPUTS declares them."""
        env = {i.prolog: i.encode(getattr(self, i.attr)) for i in schema.INPUTS}
        return {**env, "UVSLURM_MODE": mode}


def project_id(project: str) -> str:
    """The project's directory name in the depot: `<name>-<hash>`, as the prolog computes it
    (sha256 of the path plus a newline, the name's bytes outside [A-Za-z0-9._-] as '_').
    tests/test_prolog.py checks that both agree."""
    raw = os.fsencode(project)
    name = raw.rsplit(b"/", 1)[-1]
    safe = "".join(chr(b) if chr(b) in _SAFE else "_" for b in name)
    digest = hashlib.sha256(raw + b"\n").hexdigest()
    return f"{safe[:40]}-{digest[:10]}"


def sync_args(
    extras: Sequence[str] = (),
    all_extras: bool = False,
    groups: Sequence[str] = (),
    no_dev: bool = False,
    *,
    packages: Sequence[str] = (),
    only_groups: Sequence[str] = (),
    no_groups: Sequence[str] = (),
    all_packages: bool = False,
    all_groups: bool = False,
    no_default_groups: bool = False,
) -> tuple[str, ...]:
    """uv's flags that select what a venv holds, validated so the prolog can word-split them
    safely."""
    out: list[str] = []
    named = (("--package", packages), ("--extra", extras), ("--group", groups),
             ("--only-group", only_groups), ("--no-group", no_groups))  # fmt: skip
    for flag, names in named:
        for n in names:
            if not _NAME.fullmatch(n):
                raise UsageError(f"{flag}: invalid name '{n}'")
            out += [flag, n]
    flags = (("--all-packages", all_packages), ("--all-extras", all_extras),
             ("--all-groups", all_groups), ("--no-dev", no_dev),
             ("--no-default-groups", no_default_groups))  # fmt: skip
    return (*out, *(flag for flag, on in flags if on))


def selection(ns: Any) -> tuple[str, ...]:
    """sync_args of a command line parsed with cli's uv selection group."""
    return sync_args(
        ns.extra, ns.all_extras, ns.group, ns.no_dev,
        packages=ns.package, only_groups=ns.only_group, no_groups=ns.no_group,
        all_packages=ns.all_packages, all_groups=ns.all_groups,
        no_default_groups=ns.no_default_groups,
    )  # fmt: skip


def depot_root(config: Config) -> Path:
    """The configured depot, expanded (UvslurmError when it names an unset variable or is
    relative), else the default."""
    setting = config.settings.get("depot")
    if setting is None:
        return paths.default_depot(os.environ)
    return Path(expand_path("depot", str(setting.value), setting.source, os.environ))


def uvtool_find(config: Config) -> str:
    """The uv executable the configuration names (UvslurmError when there is none)."""
    from uvslurm import uvtool

    return uvtool.find_uv(config.get("uv"))


def image_value(config: Config) -> str:
    """How the depot stores venvs. The default is a plain directory: measured here, a squashfs
    image mounts in ~3 ms whatever the venv's size, but it costs every cold build bytecode
    compilation and packing, and where FUSE is not allowed unpacking it is slower than copying
    the directory. `auto` takes squashfs where this machine could mount it (compute nodes
    usually share the login nodes' software and FUSE policy), else the directory."""
    value = str(config.get("image"))
    if value == "auto":
        missing, fuse = squashfs_here()
        return "none" if not fuse or {"mksquashfs", "squashfuse"} & set(missing) else "squashfs"
    return value if value in ("tar.zst", "squashfs") else "none"


def squashfs_here() -> tuple[list[str], bool]:
    """The squashfs tools missing on this machine (mksquashfs makes images, squashfuse mounts
    them, unsquashfs unpacks them where FUSE is not allowed), and whether /dev/fuse is usable."""
    missing = [t for t in ("mksquashfs", "squashfuse", "unsquashfs") if not shutil.which(t)]
    return missing, os.access("/dev/fuse", os.R_OK | os.W_OK)


def platforms(config: Config) -> tuple[str, ...]:
    names = tuple(config.get("platforms"))
    for n in names:
        if not _NAME.fullmatch(n):
            raise UsageError(
                f"platforms: '{n}' is not a platform name (e.g. aarch64-manylinux_2_28)"
            )
    return names


def fingerprint_env(config: Config) -> tuple[str, ...]:
    names = tuple(config.get("fingerprint.env"))
    for n in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n):
            raise UsageError(f"fingerprint.env: '{n}' is not a variable name")
    return names


def settings_for(
    project: Project | None,
    config: Config,
    sync: tuple[str, ...] = (),
    python: str | None = None,
) -> NodeSettings:
    """The prolog's inputs for `project` (None: outside any project) under `config`: `sync`
    the selection flags given (a workspace member adds itself, as `uv run` selects it there),
    `python` the interpreter asked for on the command line (else the project's request); where
    the sources of `rebuild` packages are comes later (pipeline.effects), from the lock."""
    from uvslurm import rebuild, uvtool

    names = tuple(rebuild.normalize(n) for n in config.get("rebuild"))
    return NodeSettings(
        project=project.ident if project else "",
        uv=uvtool.find_uv(config.get("uv")),
        depot=str(depot_root(config)),
        node_local=str(config.get("node-local")),
        offline=str(config.get("offline")),
        python=python or (project.python_request() if project else ""),
        sync_args=project.selection(sync) if project else sync,
        fingerprint_env=fingerprint_env(config),
        fingerprint_commands=tuple(config.get("fingerprint.commands")),
        fingerprint_modules=bool(config.get("fingerprint.modules")),
        fingerprint_ignore_modules=tuple(config.get("fingerprint.ignore-modules")),
        rebuild=names,
        image=image_value(config),
        script=str(project.script) if project and project.script else "",
        platforms=platforms(config),
    )


def _unnamed_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("uvslurm-prolog", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    # Pythons built against a glibc older than 2.27 lack memfd_create
    import tempfile

    with tempfile.TemporaryFile() as f:
        return os.dup(f.fileno())


@contextlib.contextmanager
def prolog_file() -> Iterator[int]:
    """A descriptor of an unnamed file that holds the prolog's joined sections (the text that job
    scripts hold), open while the `with` lasts: a sealed memfd, else a temporary file unlinked
    at once. Nothing to name, check or clean up, and no other user can open it."""
    try:
        fd = _unnamed_file()
    except OSError as e:
        raise _unwritable(e) from e
    try:
        try:
            with open(fd, "wb", closefd=False) as f:
                f.write(prolog.text().encode())
        except OSError as e:
            raise _unwritable(e) from e
        # nothing the prolog starts (uv, build backends: they inherit it) can change the text
        # under it; a temporary file takes no seals
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, _ADD_SEALS, _SEALS)
        yield fd
    finally:
        os.close(fd)


def _unwritable(e: OSError) -> UvslurmError:
    return UvslurmError(
        f"cannot write the prolog to a temporary file: {e.strerror or e}",
        "free some space in $TMPDIR, or set TMPDIR to a directory of yours",
    )


def prolog_argv(fd: int) -> list[str]:
    """How the prolog runs here, from `prolog_file`'s descriptor `fd` (handed to the child):
    bash opens /dev/fd/FD afresh (a new offset), and so does _uvslurm_load for the rest."""
    return ["bash", f"/dev/fd/{fd}"]


def run_prolog(settings: NodeSettings, mode: str, *, quiet: bool = False) -> str:
    """Run the bundled prolog here (prepare / fingerprint); its log lines go to our stderr, or
    with `quiet` (the library API, which never prints) only its last one, into the error."""
    env = {**os.environ, **settings.environ(mode)}
    # a depot that is not this user's, or not uvslurm's, is refused here with the reason; one
    # that cannot be created, the prolog reports
    with contextlib.suppress(OSError):
        paths.ensure_depot(Path(settings.depot))
    if quiet:
        try:
            with prolog_file() as fd:
                return proc.run(prolog_argv(fd), env=env, pass_fds=(fd,))
        except proc.CommandFailed as e:
            if e.returncode == EXIT_PREPARE:
                raise PrepareError(f"the venv could not be prepared: {e.last_line}") from e
            raise
    with prolog_file() as fd:
        code, out = proc.call(prolog_argv(fd), env=env, pass_fds=(fd,))
    if code == EXIT_PREPARE:
        raise PrepareError("the venv could not be prepared (see the uvslurm: lines above)")
    if code != 0:
        raise proc.CommandFailed(["uvslurm prolog", mode], code, "")
    return out


def parse_fingerprint(text: str) -> tuple[str, str, dict[str, str]]:
    """prolog fingerprint output -> (hash, venv path, components)."""
    fp, venv, comps = "", "", {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "fingerprint":
            fp = value
        elif key == "venv":
            venv = value
        else:
            comps[key] = value
    return fp, venv, comps
