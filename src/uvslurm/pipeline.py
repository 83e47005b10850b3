"""`uvslurm submit` and `uvslurm srun` as one pipeline, each stage taking the previous stage's
value and returning a new one, nothing computed twice:

    Request -> target -> Context (the project around it)
      -> #SBATCH option layering (pure; `template` shares its lower layers)
      -> NodeSettings -> login-node effects (uv.lock, shared cache, rebuild sources)
      -> NodeSettings, complete -> rendered job script

`--dry-run` skips the effects: it renders what the lock on disk gives, and writes nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import re
import shlex
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from uvslurm import (
    __version__,
    nodeenv,
    output,
    paths,
    rebuild,
    render,
    sbatch_options,
    sources,
    uvtool,
)
from uvslurm.config import Config
from uvslurm.context import Context
from uvslurm.errors import UsageError, UvslurmError
from uvslurm.project import Project


@dataclass(frozen=True)
class Request:
    """What the user asked for, as the CLI (or a caller of the API) parsed it."""

    target: str | None = None
    args: Sequence[str] = ()
    command: Sequence[str] = ()  # after `--`
    sbatch: Mapping[str, str | bool] = field(default_factory=dict)  # CLI options, canonical
    sbatch_args: Sequence[str] = ()  # --sbatch-arg values
    profile: str | None = None
    locked: bool = False
    frozen: bool = False
    sync_args: tuple[str, ...] = ()  # uv's selection flags (nodeenv.sync_args)
    argv: Sequence[str] = ()  # the command line as given, for the script's header


@dataclass(frozen=True)
class Target:
    """What the job runs: a command through `uv run`, or a user's batch script."""

    command: tuple[str, ...] = ()
    script: render.UserScript | None = None
    script_args: tuple[str, ...] = ()
    name: str = "job"
    search_from: Path = Path()
    # the #SBATCH lines at the top of a .py file (a batch script's are in `script`)
    header: Mapping[str, str | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Options:
    script: dict[str, str | bool]  # what the rendered script sets in #SBATCH lines
    effective: dict[str, str | bool]  # what the job will run with
    defaulted: frozenset[str] = frozenset()  # names uvslurm chose (job name, log)


@dataclass(frozen=True)
class Plan:
    """The pure stages' result: what will run, where, with which options."""

    project: Project
    node: nodeenv.NodeSettings  # without the rebuild sources (those come from the effects)
    options: Options
    target: Target
    origin: str  # what produced the script, for its header


@dataclass(frozen=True)
class Job:
    """The pipeline's result: everything `submit` and `srun` act on."""

    project: Project
    node: nodeenv.NodeSettings
    options: Options
    target: Target
    text: str


# --- stage 1: the target ---------------------------------------------------------------------


def resolve_target(req: Request, cwd: Path) -> Target:
    if req.command:
        return Target(command=tuple(req.command), name=Path(req.command[0]).name, search_from=cwd)
    if not req.target:
        raise UsageError(
            "nothing to run",
            "give a .py file, a batch script, or `-- CMD ARGS...` after the options",
        )
    path = cwd / req.target
    if not path.is_file():
        raise UvslurmError(
            f"{req.target}: no such file", "check the path, or use `-- CMD` for a command"
        )
    if path.suffix == ".py":
        return Target(
            command=(str(path.resolve()), *req.args),
            name=path.stem,
            search_from=path.resolve().parent,
            header=_py_header(path, req.target),
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UvslurmError(f"{req.target}: cannot read it ({e})") from e
    if not text.startswith("#!") and "#SBATCH" not in text:
        raise UsageError(
            f"{req.target}: not a .py file or a batch script (no #! line or #SBATCH header)",
            "use `uvslurm submit -- CMD ARGS...` to run a command",
        )
    return Target(
        script=render.split_script(text, req.target),
        script_args=tuple(req.args),
        name=path.stem,
        search_from=path.resolve().parent,
    )


def _py_header(path: Path, name: str) -> dict[str, str | bool]:
    """The #SBATCH options of a .py file's header (its other bytes are the interpreter's)."""
    try:
        with path.open("rb") as f:
            head = f.read(1 << 16)
    except OSError as e:
        raise UvslurmError(f"{name}: cannot read it ({e.strerror})") from e
    return render.header_options(head.decode("utf-8", "replace"), name)


# --- stage 2: the context around the target ----------------------------------------------------


def locate(ctx: Context, target: Target) -> Context:
    """A .py file belongs to the project around it (`submit ~/proj/train.py` from anywhere); a
    batch script or command runs in the current directory's project, wherever the script lives.
    Each falls back to the other place."""
    here = target.search_from
    if target.command and here != ctx.cwd:
        return ctx.searching(here, ctx.cwd)
    return ctx.searching(ctx.cwd, here)


# --- stage 3: login-node effects -------------------------------------------------------------


def prepare_depot(depot: Path) -> None:
    try:
        paths.ensure_depot(depot)
        probe = depot / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise UvslurmError(
            f"depot {depot} is not writable ({e.strerror})",
            "set UVSLURM_DEPOT or `depot` in the config to a writable directory",
        ) from e


def effects(
    node: nodeenv.NodeSettings, project: Project, req: Request, *, dry_run: bool = False
) -> nodeenv.NodeSettings:
    """Make the login node ready for the job (a lock that matches pyproject.toml, the shared uv
    cache filled for offline nodes, the sources of `rebuild` packages in the depot) and return
    the node settings completed with where those sources are. With `dry_run`, nothing is
    written: the sources are named as the lock on disk gives them."""
    depot = Path(node.depot)
    if not dry_run:
        prepare_depot(depot)
        with output.Status("checking uv.lock"):
            if not req.frozen:
                uvtool.ensure_lock(node.uv, project, req.locked)
            elif not project.lock.is_file():
                raise UvslurmError(
                    f"no uv.lock in {project.root}", "run `uv lock`, or drop --frozen"
                )
    lock = project.lock.read_bytes() if project.lock.is_file() else None
    if lock is None:  # only with dry_run: a real submission has locked by now
        return node
    if not dry_run:
        with output.Status("fetching wheels and Python into the uv cache for offline nodes"):
            uvtool.prefetch(node.uv, project, node.sync_args, depot, node.rebuild, lock)
    return with_sources(with_lock(node, lock), project, lock, download=not dry_run)


def with_lock(node: nodeenv.NodeSettings, lock: bytes | None) -> nodeenv.NodeSettings:
    """`node` with the sha256 of `lock` (the content of uv.lock, as read once here): the node
    keys the venv on the lock it sees, and warns when that is not the one submitted."""
    if lock is None:
        return node
    return dataclasses.replace(node, lock_hash=hashlib.sha256(lock).hexdigest())


def with_sources(
    node: nodeenv.NodeSettings, project: Project, lock: bytes | None, *, download: bool
) -> nodeenv.NodeSettings:
    """`node` with where the nodes find the sources of its `rebuild` packages (`lock`: the
    content of uv.lock); `download` puts those of an index into the depot first."""
    if not node.rebuild:
        return node
    if lock is None:
        raise UvslurmError(f"rebuild: no uv.lock in {project.root}", "run `uv lock` first")
    located = rebuild.locate(sources.parse_toml(lock, project.lock), node.rebuild, project.root)
    if download:
        with output.Status("fetching the sources of rebuild packages"):
            rebuild.download(located, Path(node.depot))
    encoded = rebuild.encode(rebuild.local_sources(located, Path(node.depot)))
    return dataclasses.replace(node, rebuild_sources=encoded)


# --- stage 4: #SBATCH options, layered (pure) --------------------------------------------------


def sbatch_defaults(config: Config, profile: str | None) -> dict[str, str | bool]:
    """The configured `sbatch` table (site < user < project < environment), then the profile's
    options: the lower layers of a job's options, and what `uvslurm template` fills in."""
    out = _configured(config, "sbatch")
    if profile:
        if profile not in config.profile_names():
            known = ", ".join(config.profile_names()) or "none defined"
            raise UvslurmError(
                f"unknown profile '{profile}' (available: {known})",
                "define it under [tool.uvslurm.profiles] in pyproject.toml",
            )
        out.update(_configured(config, f"profiles.{profile}"))
    return out


def _configured(config: Config, table: str) -> dict[str, str | bool]:
    """The Slurm options of a config table; a mistake names the file and the key."""
    out: dict[str, str | bool] = {}
    for key, value in config.table(table).items():
        try:
            out.update(sbatch_options.normalize({key: value}))
        except UsageError as e:
            source = config.settings[f"{table}.{key}"].source
            raise UvslurmError(f"{source}: {table}.{key}: {e.message}", e.hint) from e
    return out


def default_job_name(name: str) -> str:
    """A job name from a file or command name: control characters (a newline in a file name)
    become '_', so that the name is one #SBATCH value; quoting does the rest."""
    safe = "".join("_" if unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") else c for c in name)
    return safe or "job"


def layer_options(
    lower: Mapping[str, str | bool],
    script: Mapping[str, str | bool],
    cli: Mapping[str, str | bool],
    job_name: str,
    default_log: str,
) -> Options:
    """config/profile < the script's own #SBATCH lines < the command line; the rendered script
    repeats only what its own lines do not say, and names the job and its log when nobody did."""
    options = {k: v for k, v in lower.items() if k not in script}
    options.update(cli)
    effective = {**lower, **script, **cli}
    defaults: dict[str, str | bool] = {}
    if "job-name" not in effective:
        defaults["job-name"] = default_job_name(job_name)
    if "output" not in effective:
        try:
            defaults["output"] = sbatch_options.validate("output", default_log)
        except UsageError as e:
            raise UvslurmError(
                f"the default log path {default_log!r} cannot be an #SBATCH value", "pass -o FILE"
            ) from e
    return Options({**options, **defaults}, {**effective, **defaults}, frozenset(defaults))


def _check_log_dirs(opts: Options, cwd: Path) -> None:
    """Relative -o/-e are relative to the job's working directory: --chdir when given."""
    chdir = opts.effective.get("chdir")
    if isinstance(chdir, str):
        if "%" in chdir:
            return
        cwd = cwd / chdir
        if not cwd.is_dir():
            raise UvslurmError(
                f"--chdir: directory {cwd} does not exist (the job would fail to start)",
                "create it first",
            )
    for name in ("output", "error"):
        value = opts.effective.get(name)
        if name in opts.defaulted or not isinstance(value, str) or "%" in os.path.dirname(value):
            continue
        d = cwd / os.path.dirname(value) if os.path.dirname(value) else cwd
        if not d.is_dir():
            raise UvslurmError(
                f"--{name}: directory {d} does not exist (Slurm would drop the log)",
                "create it first",
            )


def _norm(name: str) -> str:
    """An extra's or group's name as uv compares them (PEP 685)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _check_selection(project: Project, sync_args: Sequence[str]) -> None:
    """`--extra X` / `--group Y` that the project does not define: uv would stop on the node,
    after the job waited in the queue. Workspaces are left to uv (their members add more)."""
    data = project.pyproject
    if "workspace" in data.get("tool", {}).get("uv", {}):
        return
    table = data.get("project", {})
    extras = {_norm(n) for n in table.get("optional-dependencies", {})}
    groups = {_norm(n) for n in data.get("dependency-groups", {})}
    if data.get("tool", {}).get("uv", {}).get("dev-dependencies") is not None:
        groups.add("dev")
    defined = {"--extra": extras, "--group": groups}
    for flag, name in itertools.pairwise(sync_args):
        if flag in defined and _norm(name) not in defined[flag]:
            kind = "optional-dependencies" if flag == "--extra" else "dependency-groups"
            known = ", ".join(sorted(defined[flag])) or "none"
            raise UsageError(
                f"{flag} {name}: {project.root / 'pyproject.toml'} defines no such {flag[2:]} "
                f"(its {kind}: {known})",
                f"add it to [{'project.' if flag == '--extra' else ''}{kind}], or drop {flag} {name}",
            )


def _warn_export(opts: Options) -> None:
    """--export without ALL: the job does not inherit this shell's loaded modules and
    UV_CACHE_DIR, which the venv's fingerprint and an offline node's install rely on."""
    export = opts.effective.get("export")
    if isinstance(export, str) and "ALL" not in export.upper().split(","):
        output.warn(
            f"--export={export}: the job starts without this shell's environment (loaded "
            "modules, UV_CACHE_DIR): its venv is keyed on what the node loads by itself, and "
            "offline nodes may not find uv's cache; use --export=ALL,... to add variables"
        )


# --- the whole pipeline ------------------------------------------------------------------------


def plan(ctx: Context, req: Request, target: Target | None = None) -> Plan:
    """The stages that write nothing. `target` overrides what `req` names (srun's command or
    shell). A mistake in the options stops here, before anything is written."""
    target = target or resolve_target(req, ctx.cwd)
    ctx = ctx if ctx.project_dir else locate(ctx, target)
    project = ctx.require_project()
    opts = layer_options(
        # a .py file's #SBATCH lines are not copied into the job script: rendered with the rest
        {**sbatch_defaults(ctx.config, req.profile), **target.header},
        target.script.options() if target.script else {},
        {**req.sbatch, **sbatch_options.parse_directive_args(req.sbatch_args)},
        target.name,
        str(paths.state_dir() / "logs" / "%x-%j.out"),
    )
    _check_log_dirs(opts, ctx.cwd)
    _check_selection(project, req.sync_args)
    _warn_export(opts)
    node = nodeenv.settings_for(project, ctx.config, req.sync_args)
    argv = req.argv or [
        "uvslurm",
        "submit",
        *([req.target] if req.target else ["--", *req.command]),
    ]
    origin = f"uvslurm {__version__} on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: {shlex.join(argv)}"
    return Plan(project, node, opts, target, origin)


def realize(p: Plan, req: Request, *, dry_run: bool = False) -> Job:
    """The login-node effects (none with `dry_run`), then the job script."""
    node = effects(p.node, p.project, req, dry_run=dry_run)
    text = render.render(
        render.JobScript(
            settings=node,
            options=p.options.script,
            origin=p.origin,
            command=p.target.command,
            user_script=p.target.script,
        )
    )
    return Job(p.project, node, p.options, p.target, text)
