"""Calls of the user's uv on the login node: find it, check the lock, fill the shared cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from uvslurm import paths, proc
from uvslurm.errors import UvslurmError
from uvslurm.project import Project


def find_uv(configured: str | None) -> str:
    """Absolute path of the uv to use: the configured one (UVSLURM_UV / `uv` key) or PATH's."""
    if configured:
        found = shutil.which(configured)
        if not found:
            raise UvslurmError(
                f"uv not found at '{configured}' (from UVSLURM_UV or the 'uv' setting)",
                "point it at a uv executable or unset it",
            )
        return os.path.abspath(found)
    found = shutil.which("uv")
    if not found:
        raise UvslurmError("uv not found on PATH", "install uv or set UVSLURM_UV to its path")
    return os.path.abspath(found)


def _uv_env(**extra: str) -> dict[str, str]:
    env = proc.clean_env(**extra)
    # uv's lock files in a shared /tmp could be held by another user (see paths.private_tmpdir)
    tmp = paths.private_tmpdir(env)
    if tmp:
        env["TMPDIR"] = tmp
    return env


def ensure_lock(uv: str, project: Project, locked: bool) -> None:
    """`uv lock` when uv.lock is missing or stale; with `locked`, refuse instead."""
    root = str(project.root)
    if locked:
        if not project.lock.is_file():
            raise UvslurmError(f"no uv.lock in {root}", "run `uv lock`, or drop --locked")
        try:
            proc.run([uv, "lock", "--check", "-q", "--project", root], env=_uv_env())
        except proc.CommandFailed as e:
            raise UvslurmError(
                f"uv.lock in {root} is out of date", "run `uv lock`, or drop --locked"
            ) from e
        return
    try:
        proc.run([uv, "lock", "-q", "--project", root], env=_uv_env())
    except proc.CommandFailed as e:
        raise UvslurmError(f"`uv lock` failed in {root}: {e.last_line}") from e


# the first field of a prefetch stamp; the cache files it records follow, each after a NUL
STAMP_HEADER = "uvslurm prefetch stamp 1"


def cache_files(venv: Path) -> list[str]:
    """The files of uv's cache that a venv synced with `--link-mode symlink` links to, one per
    installed distribution (its METADATA): what `uv cache clean` (all, or a package) and
    `uv cache prune --ci` remove."""
    found = []
    for meta in sorted(venv.glob("lib/python*/site-packages/*.dist-info/METADATA")):
        if meta.is_symlink():
            found.append(os.path.normpath(meta.parent / os.readlink(meta)))
    return found


def stamp_text(files: Sequence[str]) -> str:
    return "\0".join([STAMP_HEADER, *files])


def stamp_holds(stamp: Path) -> bool:
    """Does uv's cache still hold what the prefetch that wrote `stamp` put there? Every cache
    file it records must still be there (a few stats). A stamp of an older uvslurm (empty) or
    one cut short is not believed: the prefetch runs again and writes a new one."""
    try:
        fields = stamp.read_text(errors="surrogateescape").split("\0")
    except OSError:
        return False
    return fields[0] == STAMP_HEADER and all(os.path.exists(f) for f in fields[1:])


def prefetch(
    uv: str,
    project: Project,
    sync_args: Sequence[str],
    depot: Path,
    skip: Sequence[str],
    lock: bytes,
) -> None:
    """Make the shared uv cache hold everything `uv sync --frozen` needs for this lock (wheels,
    builds, the interpreter), so that compute nodes can sync offline. A throwaway venv with
    symlinks into the cache does it at little cost; a stamp skips it next time, as long as the
    cache still holds the files the venv linked to (`uv cache clean` removes them; a stamp
    trusted after that would send the nodes' offline syncs into a gap). `lock` is uv.lock's
    content."""
    lock_hash = hashlib.sha256(lock).hexdigest()
    cache_dir = os.environ.get("UV_CACHE_DIR", "")
    # `skip`: rebuild packages, built on the node under its modules (the login node may lack them)
    skip_args = [a for name in skip for a in ("--no-install-package", name)]
    stamp_key = "\0".join([str(project.root), lock_hash, *sync_args, *skip_args, uv, cache_dir])
    stamps = depot / ".prefetch"
    stamp = stamps / hashlib.sha256(stamp_key.encode()).hexdigest()[:24]
    if stamp_holds(stamp):
        return
    paths.ensure_depot(depot)
    stamps.mkdir(exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="sync-", dir=stamps)
    try:
        venv = Path(tmp, "venv")
        proc.run(
            [uv, "sync", "--frozen", "-q", "--link-mode", "symlink", "--project",
             str(project.root), *sync_args, *skip_args],
            env=_uv_env(UV_PROJECT_ENVIRONMENT=str(venv)),
        )  # fmt: skip
        # written whole, then renamed into place: a stamp is either complete or absent
        Path(tmp, "stamp").write_text(stamp_text(cache_files(venv)), errors="surrogateescape")
        os.replace(Path(tmp, "stamp"), stamp)
    except proc.CommandFailed as e:
        raise UvslurmError(
            f"uv could not fetch what the job needs: {e.last_line}",
            "fix the project so that `uv sync --frozen` works here",
        ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
