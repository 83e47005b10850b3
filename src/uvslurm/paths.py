"""Where uvslurm keeps things by default: one place for platformdirs and env overrides."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from uvslurm import safety
from uvslurm.errors import UvslurmError

APP = "uvslurm"
SITE_CONFIG = Path("/etc/uvslurm/config.toml")


def site_config_file(environ: os._Environ[str] | dict[str, str]) -> Path:
    return Path(environ.get("UVSLURM_SITE_CONFIG") or SITE_CONFIG)


# platformdirs' rule on Linux: $XDG_*_HOME when it is absolute, else under an absolute $HOME;
# applied here without importing it (~6 ms of every command's start, `submit --dry-run`'s too).
# tests/test_unit_paths.py checks that both agree.
_XDG = {
    "config": ("XDG_CONFIG_HOME", ".config"),
    "cache": ("XDG_CACHE_HOME", ".cache"),
    "state": ("XDG_STATE_HOME", ".local/state"),
}


def user_dir(kind: str) -> Path:
    """The user's `kind` ("config", "cache" or "state") directory of uvslurm."""
    var, rel = _XDG[kind]
    if sys.platform.startswith("linux"):
        xdg = os.environ.get(var, "")
        if xdg.startswith("/"):
            return Path(xdg) / APP
        home = os.environ.get("HOME", "")
        if home.startswith("/"):
            return Path(home) / rel / APP
    import platformdirs

    found: str = getattr(platformdirs, f"user_{kind}_dir")(APP)
    return Path(found)


def user_config_file() -> Path:
    return user_dir("config") / "config.toml"


def default_depot(environ: os._Environ[str] | dict[str, str]) -> Path:
    """$SCRATCH/uvslurm when the site has a scratch area, else the user cache dir."""
    scratch = environ.get("SCRATCH")
    if scratch:
        if not scratch.startswith("/"):
            raise UvslurmError(
                f"SCRATCH={scratch!r} is not an absolute path (the default depot is $SCRATCH/uvslurm)",
                "set SCRATCH to an absolute path, or set `depot`",
            )
        return Path(scratch) / APP
    return user_dir("cache")


def ensure_depot(path: Path) -> None:
    """Create the depot `path` if it is missing: mode 0700 (what it holds is its user's alone,
    even under a world-readable $SCRATCH), with the marker that makes it uvslurm's to clean.
    An existing one must be this user's, closed to other writers, and uvslurm's: a directory
    of other files (`depot = "$SCRATCH"` by mistake) is refused, not adopted."""
    if not path.is_absolute():
        raise UvslurmError(f"the depot {path} is not an absolute path", "set `depot` to one")
    if not os.path.lexists(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # FileExistsError: made by a job or command at the same moment
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
    check_depot(path, adopt=True)


def depot_problem(path: Path) -> UvslurmError | None:
    """Why the existing directory `path` cannot be a depot: it is not this user's, others can
    write into it, or it holds files uvslurm did not make and has no depot marker."""
    # (the depot's grammar, ~20 patterns, compiled only where a depot is looked at: not on
    # `submit --dry-run`'s path)
    from uvslurm import names

    why = safety.why_not_private(path)
    if why:
        return UvslurmError(
            f"the depot is not safe to use: {why}",
            "set `depot` (or UVSLURM_DEPOT) to a directory of your own that others cannot "
            "write, e.g. $SCRATCH/uvslurm",
        )
    if (path / names.DEPOT_MARKER).is_file():
        return None
    foreign = sorted(n for n in os.listdir(path) if not names.is_depot_entry(n))
    if foreign:
        return UvslurmError(
            f"{path} is not a uvslurm depot (it holds {foreign[0]!r}, which uvslurm did not "
            f"make, and no {names.DEPOT_MARKER} marker)",
            f"set `depot` to a directory of its own, e.g. {path / APP}",
        )
    return None


def check_depot(path: Path, adopt: bool = True) -> None:
    """UvslurmError unless `path` is a usable depot (see depot_problem). A directory without the
    marker that holds only names of the depot's grammar (empty, or a depot of an earlier
    uvslurm) gets it."""
    from uvslurm import names

    problem = depot_problem(path)
    if problem:
        raise problem
    marker = path / names.DEPOT_MARKER
    if adopt and not marker.is_file():
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write("uvslurm depot\n")


def private_tmpdir(environ: Mapping[str, str]) -> str | None:
    """A TMPDIR for uv on this node: uv keeps lock files there (uv-<hash>.lock, mode 0666),
    and in a shared /tmp another user can hold one to hang our uv calls. None when TMPDIR is
    already this user's alone; else <TMPDIR>/uvslurm-<uid>/tmp, made 0700 (None if that is
    not possible). The prolog does the same on compute nodes."""
    base = Path(environ.get("TMPDIR") or "/tmp")
    try:
        st = os.stat(base)
    except OSError:
        return None
    if st.st_uid == os.geteuid() and not st.st_mode & (0o022 | 0o1000) and os.path.isdir(base):
        return None
    d = base / f"uvslurm-{os.geteuid()}"
    for sub in (d, d / "tmp"):
        try:
            sub.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
        if safety.why_not_private(sub):
            return None
    return str(d / "tmp")


def throwaway_parent(environ: Mapping[str, str]) -> str | None:
    """Where throwaway trees of this machine's own go (submit's prefetch venv: thousands of
    symlinks, made and removed at once): $XDG_RUNTIME_DIR when it is this user's alone (a tmpfs
    on systemd login nodes), else None, tempfile's own choice ($TMPDIR, /tmp). Never the depot:
    on a parallel filesystem each entry is a round trip to its metadata server."""
    run = environ.get("XDG_RUNTIME_DIR", "")
    if run.startswith("/") and os.path.isdir(run) and not safety.why_not_private(Path(run)):
        return run
    return None


def state_dir() -> Path:
    """Per-user state: copies of submitted scripts and default job logs."""
    return user_dir("state")
