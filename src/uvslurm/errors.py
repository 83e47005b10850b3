"""Errors a user can cause, each mapped to one line and a documented exit code."""

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


class NoProject(UvslurmError):
    """No pyproject.toml where one was looked for: commands that also work outside a project
    catch this one (and only this one: a broken or untrusted project is an error)."""


class TrustError(UvslurmError):
    """Configuration or a project that another user could have written (exit code 1)."""


class UsageError(UvslurmError):
    """Bad command line or option value: exit code 2."""

    exit_code = EXIT_USAGE


class PrepareError(UvslurmError):
    """The venv could not be prepared: exit code 75."""

    exit_code = EXIT_PREPARE
