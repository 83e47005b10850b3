"""What the prolog needs to know, as one value shared by submit, prepare and fingerprint."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from uvslurm import paths, proc, prolog
from uvslurm.config import Config, expand_path
from uvslurm.errors import PrepareError, UsageError, UvslurmError
from uvslurm.project import Project

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SAFE = frozenset(string.ascii_letters + string.digits + "._-")


@dataclass(frozen=True)
class NodeSettings:
    project: str
    uv: str
    depot: str
    node_local: str
    offline: str
    python: str
    sync_args: tuple[str, ...]
    fingerprint_env: tuple[str, ...]
    fingerprint_commands: tuple[str, ...] = ()
    fingerprint_modules: bool = True
    rebuild: tuple[str, ...] = ()  # normalized package names
    rebuild_sources: str = ""  # rebuild.encode(...) of their locked sources
    image: str = "none"  # "none", "tar.zst" or "squashfs"

    @property
    def project_id(self) -> str:
        return project_id(self.project) if self.project else ""

    def environ(self, mode: str) -> dict[str, str]:
        return {
            "UVSLURM_PROJECT": self.project,
            "UVSLURM_PROJECT_ID": self.project_id,
            "UVSLURM_UV": self.uv,
            "UVSLURM_DEPOT": self.depot,
            "UVSLURM_NODE_LOCAL": self.node_local,
            "UVSLURM_OFFLINE": self.offline,
            "UVSLURM_PYTHON": self.python,
            "UVSLURM_SYNC_ARGS": " ".join(self.sync_args),
            "UVSLURM_FP_ENV": " ".join(self.fingerprint_env),
            "UVSLURM_FP_COMMANDS": "".join(c + "\x1e" for c in self.fingerprint_commands),
            "UVSLURM_FP_MODULES": "1" if self.fingerprint_modules else "0",
            "UVSLURM_REBUILD": ",".join(self.rebuild),
            "UVSLURM_REBUILD_SOURCES": self.rebuild_sources,
            "UVSLURM_IMAGE": self.image,
            "UVSLURM_MODE": mode,
        }


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
    extras: Sequence[str], all_extras: bool, groups: Sequence[str], no_dev: bool
) -> tuple[str, ...]:
    """uv's selection flags, validated so the prolog can word-split them safely."""
    out: list[str] = []
    for flag, names in (("--extra", extras), ("--group", groups)):
        for n in names:
            if not _NAME.fullmatch(n):
                raise UsageError(f"{flag}: invalid name '{n}'")
            out += [flag, n]
    if all_extras:
        out.append("--all-extras")
    if no_dev:
        out.append("--no-dev")
    return tuple(out)


def depot_root(config: Config) -> Path:
    """The configured depot, expanded (UvslurmError when it names an unset variable or is
    relative), else the default."""
    setting = config.settings.get("depot")
    if setting is None:
        return paths.default_depot(os.environ)
    return Path(expand_path("depot", str(setting.value), setting.source, os.environ))


def offline_value(config: Config) -> str:
    v = config.get("offline", "auto")
    return "auto" if v == "auto" else ("true" if v else "false")


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
    value = str(config.get("image", "none"))
    if value == "auto":
        fuse = os.access("/dev/fuse", os.R_OK | os.W_OK)
        tools = shutil.which("mksquashfs") and shutil.which("squashfuse")
        return "squashfs" if fuse and tools else "none"
    return value if value in ("tar.zst", "squashfs") else "none"


def fingerprint_env(config: Config) -> tuple[str, ...]:
    names = tuple(config.get("fingerprint.env", []))
    for n in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n):
            raise UsageError(f"fingerprint.env: '{n}' is not a variable name")
    return names


def settings_for(
    project: Project | None,
    config: Config,
    sync: tuple[str, ...] = (),
    with_sources: bool = True,
) -> NodeSettings:
    """The prolog's inputs for `project` (None: outside any project) under `config`.
    `with_sources` resolves where each `rebuild` package's source will be (no download)."""
    from uvslurm import rebuild, uvtool

    names = tuple(rebuild.normalize(n) for n in config.get("rebuild", []))
    sources = ""
    if project is not None and names and with_sources:
        if not project.lock.is_file():
            raise UvslurmError(f"rebuild: no uv.lock in {project.root}", "run `uv lock` first")
        from uvslurm.sources import read_toml

        located = rebuild.locate(read_toml(project.lock), names, project.root)
        sources = rebuild.encode(rebuild.local_sources(located, depot_root(config)))
    return NodeSettings(
        project=str(project.root) if project else "",
        uv=uvtool.find_uv(config.get("uv")),
        depot=str(depot_root(config)),
        node_local=str(config.get("node-local")),
        offline=offline_value(config),
        python=project.python_request() if project else "",
        sync_args=sync,
        fingerprint_env=fingerprint_env(config),
        fingerprint_commands=tuple(config.get("fingerprint.commands", [])),
        fingerprint_modules=bool(config.get("fingerprint.modules", True)),
        rebuild=names,
        rebuild_sources=sources,
        image=image_value(config),
    )


def prolog_argv() -> list[str]:
    """How the prolog runs here: its joined sections, the text that job scripts hold."""
    return ["bash", "-c", prolog.text(), "uvslurm-prolog"]


def run_prolog(settings: NodeSettings, mode: str) -> str:
    """Run the bundled prolog here (prepare / fingerprint); its log lines go to our stderr."""
    import subprocess

    env = {**os.environ, **settings.environ(mode)}
    # a depot that is not this user's, or not uvslurm's, is refused here with the reason; one
    # that cannot be created, the prolog reports
    with contextlib.suppress(OSError):
        paths.ensure_depot(Path(settings.depot))
    p = subprocess.run(prolog_argv(), env=env, stdout=subprocess.PIPE, text=True, check=False)
    if p.returncode == 75:
        raise PrepareError("the venv could not be prepared (see the uvslurm: lines above)")
    if p.returncode != 0:
        raise proc.CommandFailed(["bash", "prolog.sh", mode], p.returncode, "")
    return p.stdout


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
