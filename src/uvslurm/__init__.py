"""uvslurm: run uv-managed Python projects on Slurm clusters.

The library API (docs/reference/api.md): `submit(...) -> Job`, `fingerprint()`, `prepare()`,
and the errors they raise. Importing uvslurm stays cheap (the CLI's start-up budget): the API's
modules load on first use."""

from __future__ import annotations

from uvslurm.errors import (
    ConfigError,
    JobError,
    NoProject,
    PrepareError,
    ProjectError,
    SubmitError,
    TrustError,
    UsageError,
    UvslurmError,
    WaitTimeout,
)

__version__ = "0.1.0"

# not typing's: importing typing costs the CLI's start-up ~10 ms; type checkers know the name
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from uvslurm.api import Fingerprint, Job, fingerprint, prepare, submit

_API = ("Fingerprint", "Job", "fingerprint", "prepare", "submit")

__all__ = [
    "ConfigError",
    "Fingerprint",
    "Job",
    "JobError",
    "NoProject",
    "PrepareError",
    "ProjectError",
    "SubmitError",
    "TrustError",
    "UsageError",
    "UvslurmError",
    "WaitTimeout",
    "__version__",
    "fingerprint",
    "prepare",
    "submit",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        from uvslurm import api

        return getattr(api, name)
    raise AttributeError(f"module 'uvslurm' has no attribute {name!r}")
