"""Read the configuration layers from disk and the environment (the side-effect half of config)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from uvslurm import paths, safety, trust
from uvslurm.config import Config, env_layer, flatten, merge
from uvslurm.errors import TrustError, UvslurmError


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's table: parsed, or as parsed before from the same bytes (_cached)."""
    try:
        data = path.read_bytes()
    except PermissionError as e:
        raise UvslurmError(f"{path}: cannot read it ({e.strerror})") from e
    digest = hashlib.sha256(data).hexdigest()
    table = _cached(path, digest)
    if table is None:
        table = parse_toml(data, path)
        _keep(path, digest, table)
    return table


# A file's table is kept as JSON in the user's cache dir, one file per path, with the sha256 of
# the bytes it was parsed from: tomllib and what it imports (datetime, string, typing's
# generics) cost `submit --dry-run` ~10 ms of its 100 (docs/performance.md). Keyed by content,
# not by times, so an edit is never missed; read only where no other user could have written it
# (it is configuration: the settings that run programs among it).
def _cache_file(path: Path) -> Path:
    name = hashlib.sha256(os.fsencode(str(path))).hexdigest()[:32]
    return paths.user_dir("cache") / "toml" / f"{name}.json"


def _cached(path: Path, digest: str) -> dict[str, Any] | None:
    cache = _cache_file(path)
    if safety.why_not_private(cache.parent) or safety.why_not_private(cache):
        return None
    try:
        doc = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    table = doc.get("table") if isinstance(doc, dict) and doc.get("sha256") == digest else None
    return table if isinstance(table, dict) else None


def _keep(path: Path, digest: str, table: dict[str, Any]) -> None:
    """Write the cache entry atomically; a table JSON cannot hold (TOML dates and times) is not
    kept, and failing to write costs only the next parse."""
    try:
        text = json.dumps({"sha256": digest, "table": table})
    except (TypeError, ValueError):
        return
    cache = _cache_file(path)
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if safety.why_not_private(cache.parent):
            return
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        with os.fdopen(os.open(tmp, flags, 0o600), "w") as f:
            f.write(text)
        os.replace(tmp, cache)


def parse_toml(data: bytes, path: Path) -> dict[str, Any]:
    """`data`, read from `path` by the caller (uv.lock is read once per submission)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UvslurmError(
            f"{path}: line {line} is not UTF-8 (byte 0x{data[e.start]:02x}); TOML files are UTF-8",
            "save the file as UTF-8",
        ) from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UvslurmError(f"{path}: invalid TOML: {e}", "fix the file's syntax") from e


def _file_layer(path: Path, root_ok: bool) -> dict[str, Any]:
    """A configuration file's table. Settings that run programs (`uv`, `fingerprint.commands`)
    are taken only from a file that nobody but this user (or root, for the site file) could
    have written."""
    if not path.is_file():
        return {}
    table = read_toml(path)
    code = trust.code_values(table)
    if code:
        why = safety.why_not_trusted_file(path, root_ok=root_ok)
        if why:
            raise TrustError(
                f"{path} sets {', '.join(code)}, which run programs, but {why}",
                "make the file (and its directories) yours and not writable by others",
            )
    return table


def _check_project_code(table: Mapping[str, Any], pyproject: Path) -> None:
    """A project's settings that run programs are honoured once the user trusted them."""
    code = trust.code_values(table)
    if code and not trust.is_trusted(pyproject.parent, code):
        shown = "; ".join(f"{k} = {v!r}" for k, v in code.items())
        raise TrustError(
            f"{pyproject} [tool.uvslurm] names programs to run ({shown})",
            f"if you trust them, run `uvslurm trust {pyproject.parent}`",
        )


def load(
    project_table: Mapping[str, Any] | None,
    cli: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    pyproject: Path | None = None,
) -> Config:
    """All layers: site file < user file < project [tool.uvslurm] < UVSLURM_* < command line."""
    return load_reporting(lambda: project_table, cli, environ, pyproject, strict=True)[0]


def load_reporting(
    project_table: Callable[[], Mapping[str, Any] | None],
    cli: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    pyproject: Path | None = None,
    *,
    strict: bool = False,
) -> tuple[Config, list[UvslurmError]]:
    """The layers as `load` merges them; unless `strict`, a layer with a mistake is left out
    and its error returned with the rest (`uvslurm config` shows what is wrong, and what holds
    meanwhile)."""
    env = dict(os.environ if environ is None else environ)
    problems: list[UvslurmError] = []
    layers: list[tuple[str, Mapping[str, Any]]] = []

    def add(source: str, read: Callable[[], Mapping[str, Any] | None]) -> None:
        try:
            table = read()
            if table:
                flatten(table, source)  # its mistakes are this layer's
                layers.append((source, table))
        except UvslurmError as e:
            if strict:
                raise
            problems.append(e)

    def site() -> Mapping[str, Any]:
        path = paths.site_config_file(env)
        if env.get("UVSLURM_SITE_CONFIG") and not os.path.exists(path):
            # a site that names its file means it to be read: silence would hide a typo
            raise UvslurmError(
                f"UVSLURM_SITE_CONFIG={path}: no such file",
                "fix the path, or unset UVSLURM_SITE_CONFIG (default: /etc/uvslurm/config.toml)",
            )
        return _file_layer(path, root_ok=True)

    def project() -> Mapping[str, Any] | None:
        table = project_table()
        if table:
            _check_project_code(table, pyproject or Path("pyproject.toml"))
        return table

    add(str(paths.site_config_file(env)), site)
    add(str(paths.user_config_file()), lambda: _file_layer(paths.user_config_file(), False))
    add(f"{pyproject or 'pyproject.toml'} [tool.uvslurm]", project)
    add("environment", lambda: env_layer(env))
    layers.append(("command line", cli))
    return merge(layers), problems
