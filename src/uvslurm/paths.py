"""Where uvslurm keeps things by default: one place for platformdirs and env overrides."""

from __future__ import annotations

import os
from pathlib import Path

APP = "uvslurm"
SITE_CONFIG = Path("/etc/uvslurm/config.toml")


def site_config_file(environ: os._Environ[str] | dict[str, str]) -> Path:
    return Path(environ.get("UVSLURM_SITE_CONFIG") or SITE_CONFIG)


def user_config_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def default_depot(environ: os._Environ[str] | dict[str, str]) -> Path:
    """$SCRATCH/uvslurm when the site has a scratch area, else the user cache dir."""
    scratch = environ.get("SCRATCH")
    if scratch:
        return Path(scratch) / APP
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP))


def ensure_private_dir(path: Path) -> None:
    """Create the depot `path` if it is missing, mode 0700: what it holds (project names, venvs,
    remembered keys) is its user's alone, even under a world-readable $SCRATCH. Missing parents
    get the umask's modes; an existing directory keeps its mode (a site may share one)."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=True)


def state_dir() -> Path:
    """Per-user state: copies of submitted scripts and default job logs."""
    import platformdirs

    return Path(platformdirs.user_state_dir(APP))
