"""Errors a user can cause, each mapped to one line and a documented exit code. The library API
raises the same classes (exposed on the `uvslurm` module): `str(e)` is the line the CLI prints."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNEXPECTED = 3
# the job's environment could not be prepared (same code the prolog uses on the node)
EXIT_PREPARE = 75
EXIT_INTERRUPTED = 130


class UvslurmError(Exception):
    """A failure the user can fix: printed as one line, exit code 1."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message

    def __str__(self) -> str:
        return self.line()


class ConfigError(UvslurmError):
    """A setting, profile or Slurm option that is not valid (in a config file, on the command
    line or in an API call)."""


class ProjectError(UvslurmError):
    """The project cannot be used as asked: none where one was looked for, or it lacks what
    the caller needs (submitit in its lock)."""


class SubmitError(UvslurmError):
    """sbatch is missing or refused the job."""


class JobError(UvslurmError):
    """A job handle cannot answer: a dry run's job was never submitted, or Slurm cannot be
    asked about it."""


class WaitTimeout(JobError, TimeoutError):
    """`Job.wait(timeout=...)` ran out of time; the job goes on."""


class NoProject(ProjectError):
    """No pyproject.toml where one was looked for: commands that also work outside a project
    catch this one (and only this one: a broken or untrusted project is an error)."""


class TrustError(UvslurmError):
    """Configuration or a project that another user could have written (exit code 1)."""


class UsageError(ConfigError):
    """Bad command line or option value: exit code 2."""

    exit_code = EXIT_USAGE


class PrepareError(UvslurmError):
    """The venv could not be prepared: exit code 75."""

    exit_code = EXIT_PREPARE
