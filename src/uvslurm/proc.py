"""The one place that starts processes (uv, sbatch, scontrol, srun, the prolog, doctor's probes)
and turns their failures into one-line errors. Never through a shell."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from uvslurm.errors import UvslurmError

if TYPE_CHECKING:
    import subprocess


class CommandFailed(UvslurmError):
    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {returncode}"
        super().__init__(f"`{' '.join(argv[:3])}` failed: {last}")
        self.last_line = last
        self.returncode = returncode


class Probe(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment for a child, plus `extra`: an activated venv on the login node is not
    uv's idea of the project environment (nor anything else's we start)."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(extra)
    return env


def _cannot_run(argv: Sequence[str], e: OSError) -> UvslurmError:
    why = "not found" if isinstance(e, FileNotFoundError) else (e.strerror or str(e)).lower()
    return UvslurmError(f"cannot run {argv[0]}: {why}")


def _run(
    argv: Sequence[str], env: Mapping[str, str] | None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    # imported here: `submit --dry-run` and the shell hook start no process (~7 ms of imports)
    import subprocess

    try:
        return subprocess.run(list(argv), env=env, text=True, check=False, **kw)
    except OSError as e:
        raise _cannot_run(argv, e) from e


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    input: str | None = None,
    pass_fds: Sequence[int] = (),
) -> str:
    """Run argv and return its stdout; CommandFailed on non-zero exit. `pass_fds`: descriptors
    of ours it keeps, at the same numbers (every other one is closed)."""
    p = _run(argv, env, cwd=cwd, input=input, capture_output=True, pass_fds=pass_fds)
    if p.returncode != 0:
        raise CommandFailed(argv, p.returncode, p.stderr)
    return p.stdout


def call(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, pass_fds: Sequence[int] = ()
) -> tuple[int, str]:
    """Run argv with its stderr on ours (the user reads its log lines): (exit code, stdout);
    `pass_fds` as for `run`."""
    import subprocess

    p = _run(argv, env, stdout=subprocess.PIPE, pass_fds=pass_fds)
    return p.returncode, p.stdout


def probe(
    argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
) -> Probe | None:
    """What argv answers, or None when it cannot start or takes longer than `timeout` seconds."""
    import subprocess

    try:
        p = _run(argv, env, capture_output=True, timeout=timeout)
    except (UvslurmError, subprocess.TimeoutExpired):
        return None
    return Probe(p.returncode, p.stdout, p.stderr)


class Stream:
    """A process whose stdout and stderr we read while it runs (`sbatch --wait`)."""

    def __init__(self, argv: Sequence[str]) -> None:
        import subprocess

        try:
            self._p = subprocess.Popen(
                list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        except OSError as e:
            raise _cannot_run(argv, e) from e

    def readline(self) -> str:
        """The next line of its stdout ("" once it is closed)."""
        return self._p.stdout.readline() if self._p.stdout else ""

    def running(self) -> bool:
        return self._p.poll() is None

    def finish(self) -> tuple[int, str]:
        """Wait for its end: (exit code, the stderr not read yet)."""
        rest = self._p.stderr.read() if self._p.stderr else ""
        return self._p.wait(), rest


def exec(argv: Sequence[str]) -> NoReturn:
    """Replace this process with argv (argv[0] a path): its exit code is ours."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(argv[0], list(argv))
    except OSError as e:
        raise _cannot_run(argv, e) from e
