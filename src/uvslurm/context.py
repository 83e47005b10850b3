"""What every command starts from: where it runs, the project it is about and the layered
configuration, found once (lazily: `submit --dry-run` and `shell-hook` pay only for what they
read). The CLI builds one `Context` per call and hands it to `commands.<name>.run(ctx, ns)`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from uvslurm import sources
from uvslurm.config import Config
from uvslurm.errors import NoProject
from uvslurm.project import Project, find_project, script_project


class _Where(NamedTuple):
    cwd: Path
    project_dir: str | None = None  # --project DIR: that directory and no search
    cli: Mapping[str, Any] = MappingProxyType({})  # the command-line configuration layer
    search: Sequence[Path] = ()  # where to look for the project, in order (default: cwd)
    # a PEP 723 script and its inline metadata: the project, wherever it is (as `uv run` does)
    script: tuple[Path, Mapping[str, Any]] | None = None


class Context(_Where):
    """Where a command runs and what it asked for (the fields, as given), and what is found
    from them on first use (the cached properties, kept on the instance)."""

    @classmethod
    def from_args(cls, ns: Any, cwd: Path) -> Context:
        """The context of a parsed command line: --project, and --no-node-local as the
        command-line configuration layer."""
        no_node_local = getattr(ns, "no_node_local", False)
        return cls(
            cwd=cwd,
            project_dir=getattr(ns, "project", None),
            cli={"node-local": "never"} if no_node_local else {},
        )

    def searching(self, *starts: Path) -> Context:
        """The same context looking for the project from `starts` (submit: a .py file belongs to
        the project around it). Only before anything was found."""
        return self._replace(search=starts)

    def with_script(self, script: Path, metadata: Mapping[str, Any]) -> Context:
        """The same context about a PEP 723 script. Only before anything was found."""
        return self._replace(script=(script, metadata))

    @cached_property
    def project(self) -> Project | None:
        """The project, or None where there is none (NoProject when --project names a
        directory without one: the user asked for that directory)."""
        if self.script is not None:
            return script_project(self.script[0], dict(self.script[1]))
        if self.project_dir:
            return find_project(self.cwd / self.project_dir, explicit=True)
        starts = list(dict.fromkeys(self.search or (self.cwd,)))
        for start in starts:
            try:
                return find_project(start)
            except NoProject:
                if start == starts[-1]:
                    return None
        return None

    def require_project(self) -> Project:
        if self.project is not None:
            return self.project
        # the error of the last place looked in, as find_project words it
        return find_project((self.search or (self.cwd,))[-1])

    @cached_property
    def config(self) -> Config:
        """Every layer, with provenance; without a project, the layers but the project's."""
        p = self.project
        if p is None:
            return sources.load(None, self.cli)
        return sources.load(p.tool_table, self.cli, pyproject=p.script or p.root / "pyproject.toml")

    @cached_property
    def depot(self) -> Path:
        from uvslurm import nodeenv

        return nodeenv.depot_root(self.config)
