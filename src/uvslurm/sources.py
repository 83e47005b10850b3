"""Read the configuration layers from disk and the environment (the side-effect half of config)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uvslurm import paths, safety, trust
from uvslurm.config import Config, env_layer, merge
from uvslurm.errors import TrustError, UvslurmError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except PermissionError as e:
        raise UvslurmError(f"{path}: cannot read it ({e.strerror})") from e
    return parse_toml(data, path)


def parse_toml(data: bytes, path: Path) -> dict[str, Any]:
    """`data`, read from `path` by the caller (uv.lock is read once per submission)."""
    try:
        return tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
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
    env = dict(os.environ if environ is None else environ)
    site = paths.site_config_file(env)
    user = paths.user_config_file()
    layers: list[tuple[str, Mapping[str, Any]]] = [
        (str(site), _file_layer(site, root_ok=True)),
        (str(user), _file_layer(user, root_ok=False)),
    ]
    if project_table:
        _check_project_code(project_table, pyproject or Path("pyproject.toml"))
        layers.append((f"{pyproject or 'pyproject.toml'} [tool.uvslurm]", project_table))
    layers.append(("environment", env_layer(env)))
    layers.append(("command line", cli))
    return merge(layers)
