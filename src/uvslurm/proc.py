"""The one place that starts processes and turns their failures into typed errors."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from uvslurm.errors import UvslurmError


class CommandFailed(UvslurmError):
    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {returncode}"
        super().__init__(f"`{' '.join(argv[:3])}` failed: {last}")
        self.last_line = last
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    input: str | None = None,
) -> str:
    """Run argv (never through a shell) and return its stdout; CommandFailed on non-zero exit."""
    try:
        p = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as e:
        raise UvslurmError(f"cannot run {argv[0]}: not found") from e
    except PermissionError as e:
        raise UvslurmError(f"cannot run {argv[0]}: permission denied") from e
    if p.returncode != 0:
        raise CommandFailed(argv, p.returncode, p.stderr)
    return p.stdout
