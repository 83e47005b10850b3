"""Read the configuration layers from disk and the environment (the side-effect half of config)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uvslurm import paths
from uvslurm.config import Config, env_layer, merge
from uvslurm.errors import UvslurmError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise UvslurmError(f"{path}: invalid TOML: {e}", "fix the file's syntax") from e
    except PermissionError as e:
        raise UvslurmError(f"{path}: cannot read it ({e.strerror})") from e


def _optional_toml(path: Path) -> dict[str, Any]:
    return read_toml(path) if path.is_file() else {}


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
        (str(site), _optional_toml(site)),
        (str(user), _optional_toml(user)),
    ]
    if project_table:
        layers.append((f"{pyproject or 'pyproject.toml'} [tool.uvslurm]", project_table))
    layers.append(("environment", env_layer(env)))
    layers.append(("command line", cli))
    return merge(layers)
