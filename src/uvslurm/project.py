"""Find the uv project a command is about, and read what uvslurm needs from it."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any, NamedTuple

from uvslurm import safety, trust
from uvslurm.errors import NoProject, ProjectError, TrustError, UvslurmError
from uvslurm.sources import parse_toml, read_toml

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# PEP 723's block, as uv reads it: `# /// script`, lines of `#` or `# ...`, `# ///`
_SCRIPT_BLOCK = re.compile(r"(?m)^# /// script$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


class Project(NamedTuple):
    """What uv locks and syncs: a project directory (for a workspace: its root, where the one
    uv.lock is, with `member` the package of the member directory the search started in), or
    a PEP 723 script (`script`, its lock `<script>.lock` beside it; `root` its directory)."""

    root: Path
    pyproject: dict[str, Any]
    member: str = ""
    member_dir: Path | None = None
    script: Path | None = None

    @property
    def lock(self) -> Path:
        if self.script is not None:
            return self.script.with_name(self.script.name + ".lock")
        return self.root / "uv.lock"

    @property
    def ident(self) -> str:
        """What the prolog takes for the project (UVSLURM_PROJECT): its directory, or the
        script, so that each script has its own directory in the depot."""
        return str(self.script or self.root)

    def uv_args(self) -> list[str]:
        """How uv's lock, sync and export commands are pointed at it."""
        if self.script is not None:
            return ["--script", str(self.script)]
        return ["--project", str(self.root)]

    def selection(self, sync_args: tuple[str, ...]) -> tuple[str, ...]:
        """uv's selection flags for a job run from here: `uv run` in a member directory
        selects that member, unless the user chose with --package or --all-packages."""
        if self.member and not {"--package", "--all-packages"} & set(sync_args):
            # a name the prolog can word-split, as the command line's are (nodeenv.sync_args)
            if not _NAME.fullmatch(self.member):
                raise UvslurmError(
                    f"{self.member_dir}/pyproject.toml: '{self.member}' is not a package name",
                    "fix [project] name",
                )
            return ("--package", self.member, *sync_args)
        return sync_args

    @property
    def tool_table(self) -> dict[str, Any]:
        table = self.pyproject.get("tool", {}).get("uvslurm", {})
        if not isinstance(table, dict):
            raise UvslurmError(f"{self.root / 'pyproject.toml'}: [tool.uvslurm] must be a table")
        return table

    def packages(self) -> list[str]:
        """The packages `--package` can name: the project's own (a workspace root's, if it has
        [project]) and its workspace members'."""
        names = [self.pyproject.get("project", {}).get("name")]
        globs = _members(self.pyproject) if self.script is None else None
        if globs:
            members, exclude = globs
            for pattern in members:
                for d in sorted(self.root.glob(pattern)):
                    rel = d.relative_to(self.root).parts
                    f = d / "pyproject.toml"
                    if f.is_file() and not any(_glob(rel, g) for g in exclude):
                        names.append(read_toml(f).get("project", {}).get("name"))
        return [n for n in names if isinstance(n, str)]

    def python_request(self) -> str:
        """What the project asks for: .python-version first (as uv does, from a member's
        directory up to the workspace root), else requires-python (a script's own)."""
        if self.script is not None:
            req = self.pyproject.get("requires-python", "")
            return req if isinstance(req, str) else ""
        dirs = [self.root]
        if self.member_dir is not None:
            d = self.member_dir
            dirs = [d, *[p for p in d.parents if p.is_relative_to(self.root)]]
        for pv in (d / ".python-version" for d in dirs):
            if pv.is_file():
                try:
                    text = pv.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as e:
                    why = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else e.strerror
                    raise ProjectError(
                        f"cannot read {pv} ({why})",
                        "write the Python version in it as plain text (e.g. 3.11), or remove it",
                    ) from None
                for line in text.splitlines():
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
            return in_workspace(checked(d))
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
    _check_owner(root, f, "the project in")
    return Project(root, read_toml(f))


def _check_owner(root: Path, f: Path, what: str) -> None:
    why = safety.why_not_private(root) or safety.why_not_trusted_file(f, parents=False)
    # the trust record is read only for a project that needs it (most are the user's own)
    if why and not trust.is_trusted(root):
        raise TrustError(
            f"not using {what} {root}: {why}", f"if you trust it, run `uvslurm trust {root}`"
        )


def _members(pyproject: dict[str, Any]) -> tuple[list[str], list[str]] | None:
    """A workspace root's member and exclude globs (None: not a workspace root)."""
    ws = pyproject.get("tool", {}).get("uv", {}).get("workspace")
    if not isinstance(ws, dict):
        return None
    globs = ws.get("members", []), ws.get("exclude", [])
    if all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in globs):
        return globs
    return [], []


def _glob(rel: tuple[str, ...], pattern: str) -> bool:
    """Does a member glob match a relative path? Its `*` stays inside one directory."""
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    return len(parts) == len(rel) and all(map(fnmatch.fnmatchcase, rel, parts))


def in_workspace(project: Project) -> Project:
    """`project` as uv sees it: a member of a workspace is locked, keyed and synced at the
    workspace root (the one uv.lock), selecting the member as `uv run` there would. uv's rule:
    the nearest directory above that declares [tool.uv.workspace] and whose `members` globs,
    not its `exclude` ones, match the project's directory. A project that declares a workspace
    of its own is its root."""
    if _members(project.pyproject) is not None:
        return project
    for d in project.root.parents:
        f = d / "pyproject.toml"
        if safety.why_not_private(d):
            break
        if not f.is_file():
            continue
        globs = _members(read_toml(f))
        if globs is None:
            continue
        rel = project.root.relative_to(d).parts
        members, exclude = globs
        if any(_glob(rel, g) for g in members) and not any(_glob(rel, g) for g in exclude):
            root = checked(d)
            name = project.pyproject.get("project", {}).get("name", "")
            return Project(
                root.root,
                root.pyproject,
                member=name if isinstance(name, str) else "",
                member_dir=project.root,
            )
        return project  # uv stops at the first workspace root above
    return project


def script_metadata(text: str, path: Path) -> dict[str, Any] | None:
    """A PEP 723 script's inline metadata (None: `text` has no `# /// script` block)."""
    m = _SCRIPT_BLOCK.search(text)
    if m is None:
        return None
    body = "".join(line[2:] if line.startswith("# ") else line[1:]
                   for line in m.group("content").splitlines(keepends=True))  # fmt: skip
    return parse_toml(body.encode(), path)


def script_project(script: Path, metadata: dict[str, Any]) -> Project:
    """The project of a PEP 723 script: its inline metadata for a pyproject (a [tool.uvslurm]
    table there is its configuration). Taken on the terms of a project's pyproject.toml: the
    script and its directory (where its lock is) the user's own, or trusted."""
    _check_owner(script.parent, script, "the script in")
    return Project(script.parent, metadata, script=script)
