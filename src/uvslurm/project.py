"""Find the uv project a command is about, and read what uvslurm needs from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uvslurm import safety, trust
from uvslurm.errors import NoProject, TrustError, UvslurmError
from uvslurm.sources import read_toml


@dataclass(frozen=True)
class Project:
    root: Path
    pyproject: dict[str, Any]

    @property
    def lock(self) -> Path:
        return self.root / "uv.lock"

    @property
    def tool_table(self) -> dict[str, Any]:
        table = self.pyproject.get("tool", {}).get("uvslurm", {})
        if not isinstance(table, dict):
            raise UvslurmError(f"{self.root / 'pyproject.toml'}: [tool.uvslurm] must be a table")
        return table

    def python_request(self) -> str:
        """What the project asks for: .python-version first (as uv does), else requires-python."""
        pv = self.root / ".python-version"
        if pv.is_file():
            for line in pv.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    return line
        req = self.pyproject.get("project", {}).get("requires-python", "")
        return req if isinstance(req, str) else ""


def find_project(start: Path, explicit: bool = False) -> Project:
    """The nearest directory upward from `start` holding a pyproject.toml (or `start` itself
    when the user named it with --project). The search never climbs above a directory that
    another user could change, and a project found is used only if it is the user's own
    (see `checked`)."""
    start = start.resolve()
    candidates = [start] if explicit else [start, *start.parents]
    for d in candidates:
        f = d / "pyproject.toml"
        if f.is_file():
            return checked(d)
        if not explicit and safety.why_not_private(d):
            # what is above a directory of someone else's was not put there by this user
            break
    where = f"in {start}" if explicit else f"in {start} or the parent directories that are yours"
    raise NoProject(
        f"no pyproject.toml {where}", "run from inside a uv project or pass --project DIR"
    )


def checked(root: Path) -> Project:
    """The project at `root`, if nobody but this user could have written its pyproject.toml,
    or the user trusted it with `uvslurm trust` (TrustError otherwise)."""
    f = root / "pyproject.toml"
    why = safety.why_not_private(root) or safety.why_not_trusted_file(f, parents=False)
    # the trust record is read only for a project that needs it (most are the user's own)
    if why and not trust.is_trusted(root):
        raise TrustError(
            f"not using the project in {root}: {why}",
            f"if you trust it, run `uvslurm trust {root}`",
        )
    return Project(root, read_toml(f))
