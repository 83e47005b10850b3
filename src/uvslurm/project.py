"""Find the uv project a command is about, and read what uvslurm needs from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uvslurm.errors import UvslurmError
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
    when the user named it with --project)."""
    start = start.resolve()
    candidates = [start] if explicit else [start, *start.parents]
    for d in candidates:
        f = d / "pyproject.toml"
        if f.is_file():
            return Project(d, read_toml(f))
    where = f"in {start}" if explicit else f"in {start} or any parent directory"
    raise UvslurmError(
        f"no pyproject.toml {where}", "run from inside a uv project or pass --project DIR"
    )
