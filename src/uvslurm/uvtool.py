"""Calls of the user's uv on the login node: find it, check the lock, fill the shared cache."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
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


def ensure_lock(uv: str, project: Project, *, locked: bool, frozen: bool = False) -> None:
    """The lock as `uv run` takes it: `uv lock` when it is missing or stale; with `locked`,
    refuse instead; with `frozen`, as it is (it must exist)."""
    where = f"beside {project.script}" if project.script else f"in {project.root}"
    lock = project.lock.name
    fix = "run `uv lock" + (f" --script {project.script.name}`" if project.script else "`")
    if frozen or locked:
        if not project.lock.is_file():
            flag = "--frozen" if frozen else "--locked"
            raise UvslurmError(f"no {lock} {where}", f"{fix}, or drop {flag}")
        if frozen:
            return
        try:
            proc.run([uv, "lock", "--check", "-q", *project.uv_args()], env=_uv_env())
        except proc.CommandFailed as e:
            raise UvslurmError(
                f"{lock} {where} is out of date ({e.last_line})", f"{fix}, or drop --locked"
            ) from e
        return
    try:
        proc.run([uv, "lock", "-q", *project.uv_args()], env=_uv_env())
    except proc.CommandFailed as e:
        raise UvslurmError(f"`uv lock` failed {where}: {e.last_line}") from e


# the first field of a prefetch stamp; the cache files it records follow, each after a NUL
STAMP_HEADER = "uvslurm prefetch stamp 1"


def cache_files(venv: Path, site: str = "lib/python*/site-packages") -> list[str]:
    """The files of uv's cache that a venv synced with `--link-mode symlink` links to, one per
    installed distribution (its METADATA): what `uv cache clean` (all, or a package) and
    `uv cache prune --ci` remove. `site`: where the venv's packages are (a --target: ".")."""
    found = []
    for meta in sorted(venv.glob(f"{site}/*.dist-info/METADATA")):
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


def _stamped(
    depot: Path, key: Sequence[str], prefix: str, fill: Callable[[Path], list[str]]
) -> None:
    """`fill(tmp)` in a throwaway directory on this machine (paths.throwaway_parent), unless
    the stamp of `key` in the depot says that uv's cache still holds what it fetched last time
    (the cache files `fill` returns: `uv cache clean` removes them, and a stamp trusted after
    that would send the nodes' offline syncs into a gap)."""
    text = "\0".join([*key, os.environ.get("UV_CACHE_DIR", "")])
    stamps = depot / ".prefetch"
    stamp = stamps / hashlib.sha256(text.encode()).hexdigest()[:24]
    if stamp_holds(stamp):
        return
    paths.ensure_depot(depot)
    stamps.mkdir(exist_ok=True)
    import tempfile  # with random, ~2 ms that `submit --dry-run` does not need

    # written whole, then renamed into place: a stamp is either complete or absent
    part = stamps / f".{stamp.name}.tmp-{os.getpid()}"
    # (mkdtemp: a new name, mode 0700, also in a shared /tmp)
    tmp = tempfile.mkdtemp(prefix=f"uvslurm-prefetch-{prefix}", dir=paths.throwaway_parent(os.environ))  # fmt: skip
    try:
        files = fill(Path(tmp))
        part.write_text(stamp_text(files), errors="surrogateescape")
        os.replace(part, stamp)
    finally:
        part.unlink(missing_ok=True)  # (a write that failed half-way)
        shutil.rmtree(tmp, ignore_errors=True)


def prefetch(
    uv: str,
    project: Project,
    sync_args: Sequence[str],
    depot: Path,
    skip: Sequence[str],
    lock: bytes,
    python: str = "",
) -> None:
    """Make the shared uv cache hold everything `uv sync --frozen` needs for this lock (wheels,
    builds, the interpreter), so that compute nodes can sync offline. A throwaway venv with
    symlinks into the cache does it at little cost; a stamp skips it next time, as long as the
    cache still holds the files the venv linked to. `lock` is uv.lock's content; `python` the
    interpreter request the nodes pass to uv."""
    # `skip`: rebuild packages, built on the node under its modules (the login node may lack them)
    skip_args = [a for name in skip for a in ("--no-install-package", name)]
    py_args = ["--python", python] if python else []
    lock_hash = hashlib.sha256(lock).hexdigest()

    def fill(tmp: Path) -> list[str]:
        venv = tmp / "venv"
        # a script's environment is not the project environment: uv takes it as the active one
        where = {"VIRTUAL_ENV" if project.script else "UV_PROJECT_ENVIRONMENT": str(venv)}
        proc.run(
            [uv, "sync", "--frozen", "-q", "--link-mode", "symlink", *project.uv_args(),
             *(["--active"] if project.script else []), *sync_args, *skip_args, *py_args],
            env=_uv_env(**where),
        )  # fmt: skip
        return cache_files(venv)

    key = [project.ident, lock_hash, *sync_args, *skip_args, *py_args, uv]
    try:
        _stamped(depot, key, "sync-", fill)
    except proc.CommandFailed as e:
        raise UvslurmError(
            f"uv could not fetch what the job needs: {e.last_line}",
            "fix the project so that `uv sync --frozen` works here",
        ) from e


# uv's --python-platform name of a Linux node's `uname -m` (scontrol's Arch=)
_TRIPLE_ARCH = {"ppc64le": "powerpc64le", "i686": "i686", "x86_64": "x86_64",
                "aarch64": "aarch64", "arm64": "aarch64", "s390x": "s390x"}  # fmt: skip


def foreign_platforms(arches: Iterable[str], here: str, configured: Sequence[str]) -> list[str]:
    """The platforms (uv's --python-platform names) that a job's nodes may have besides this
    login node's (`here`, its machine): the `platforms` setting when it names any (the nodes'
    glibc is not something Slurm reports), else one per other architecture the nodes report.
    Pure."""
    if configured:
        return list(dict.fromkeys(configured))
    others = {_TRIPLE_ARCH.get(a, a) for a in arches} - {_TRIPLE_ARCH.get(here, here)}
    return [f"{a}-unknown-linux-gnu" for a in sorted(others)]


def prefetch_platform(
    uv: str,
    project: Project,
    sync_args: Sequence[str],
    depot: Path,
    skip: Sequence[str],
    lock: bytes,
    platform: str,
    python: str = "",
) -> None:
    """Fill uv's cache with the lock's wheels for `platform`, so that nodes of that platform
    can sync offline: the lock exported as requirements (the workspace's own packages and
    local paths aside: those are built on the node), installed for that platform into a
    throwaway target. uv's registry wheels are cached alike for `uv pip install` and
    `uv sync`. A stamp skips it while the cache holds what it fetched, as for `prefetch`."""
    py_args = ["--python", python] if python else []
    no_emit = [a for name in skip for a in ("--no-emit-package", name)]

    def fill(tmp: Path) -> list[str]:
        reqs, target = tmp / "requirements.txt", tmp / "target"
        proc.run(
            [uv, "export", "--frozen", "-q", "--no-emit-workspace", "--no-emit-local",
             *project.uv_args(), *sync_args, *no_emit, "-o", str(reqs)],
            env=_uv_env(),
        )  # fmt: skip
        proc.run(
            [uv, "pip", "install", "-q", "--link-mode", "symlink",
             "--python-platform", platform, *py_args, "--target", str(target), "-r", str(reqs)],
            env=_uv_env(),
        )  # fmt: skip
        return cache_files(target, ".")

    key = [project.ident, hashlib.sha256(lock).hexdigest(), *sync_args, *no_emit, *py_args,
           platform, uv]  # fmt: skip
    try:
        _stamped(depot, key, "sync-platform-", fill)
    except proc.CommandFailed as e:
        raise UvslurmError(
            f"uv could not fetch the wheels for {platform} nodes: {e.last_line}",
            "set `platforms` in the config to the nodes' platforms, or drop the ones it cannot serve",
        ) from e
