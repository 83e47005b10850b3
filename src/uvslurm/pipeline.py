"""`uvslurm submit` and `uvslurm srun` as one pipeline, each stage taking the previous stage's
value and returning a new one, nothing computed twice:

    Request -> target -> Context (the project around it)
      -> #SBATCH option layering (pure; `template` shares its lower layers)
      -> NodeSettings -> login-node effects (uv.lock, shared cache, rebuild sources)
      -> NodeSettings, complete -> rendered job script

`--dry-run` skips the effects: it renders what the lock on disk gives, and writes nothing."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import shlex
import shutil
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

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
from uvslurm.errors import ConfigError, UsageError, UvslurmError
from uvslurm.project import Project, script_metadata

# the default of a mapping field: one shared empty mapping that no one can fill
_EMPTY: Mapping[str, str | bool] = MappingProxyType({})


class Request(NamedTuple):
    """What the user asked for, as the CLI (or a caller of the API) parsed it."""

    target: str | None = None
    args: Sequence[str] = ()
    command: Sequence[str] = ()  # after `--`
    sbatch: Mapping[str, str | bool] = _EMPTY  # CLI options, canonical
    sbatch_args: Sequence[str] = ()  # --sbatch-arg values
    profile: str | None = None
    locked: bool = False
    frozen: bool = False
    sync_args: tuple[str, ...] = ()  # uv's selection flags (nodeenv.sync_args)
    snapshot: bool = False  # run from a content-addressed copy of the git-tracked files
    argv: Sequence[str] = ()  # the command line as given, for the script's header
    python: str | None = None  # --python: the interpreter uv is asked for, over the project's


class Target(NamedTuple):
    """What the job runs: a command through `uv run`, or a user's batch script."""

    command: tuple[str, ...] = ()
    script: render.UserScript | None = None
    script_args: tuple[str, ...] = ()
    name: str = "job"
    search_from: Path = Path()
    # the #SBATCH lines at the top of a .py file (a batch script's are in `script`)
    header: Mapping[str, str | bool] = _EMPTY
    # a PEP 723 script's inline metadata: the script is its own project, as for `uv run`
    inline: Mapping[str, object] | None = None


class Options(NamedTuple):
    script: dict[str, str | bool]  # what the rendered script sets in #SBATCH lines
    effective: dict[str, str | bool]  # what the job will run with
    defaulted: frozenset[str] = frozenset()  # names uvslurm chose (job name, log)
    sources: Mapping[str, str] = MappingProxyType({})  # name -> the layer that set it


class Plan(NamedTuple):
    """The pure stages' result: what will run, where, with which options."""

    project: Project
    node: nodeenv.NodeSettings  # without the rebuild sources (those come from the effects)
    options: Options
    target: Target
    origin: str  # what produced the script, for its header


class Job(NamedTuple):
    """The pipeline's result: everything `submit` and `srun` act on."""

    project: Project
    node: nodeenv.NodeSettings
    options: Options
    target: Target
    text: str


# what a long login-node step shows while it runs: the CLI's spinner; the library shows nothing
Status = Callable[[str], AbstractContextManager[object]]


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
    try:
        # a .py file need not be UTF-8 as a whole for its metadata block to be read
        text = path.read_bytes().decode(errors="replace" if path.suffix == ".py" else "strict")
    except (OSError, UnicodeDecodeError) as e:
        raise UvslurmError(f"{req.target}: cannot read it ({e})") from e
    if path.suffix == ".py":
        return Target(
            command=(str(path.resolve()), *req.args),
            name=path.stem,
            search_from=path.resolve().parent,
            header=_py_header(path, req.target),
            inline=script_metadata(text, path),
        )
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
    if target.inline is not None:
        return ctx.with_script(Path(target.command[0]), target.inline)
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
    node: nodeenv.NodeSettings,
    project: Project,
    req: Request,
    *,
    dry_run: bool = False,
    status: Status = output.Status,
    partitions: Sequence[str] = (),
) -> nodeenv.NodeSettings:
    """Make the login node ready for the job (a lock that matches pyproject.toml, the shared uv
    cache filled for offline nodes, the sources of `rebuild` packages in the depot) and return
    the node settings completed with where those sources are. With `dry_run`, nothing is
    written: the sources are named as the lock on disk gives them. `partitions`: where the job
    may run (none: the default partition), for the platforms of its nodes."""
    depot = Path(node.depot)
    if not dry_run:
        prepare_depot(depot)
    # a dry run writes nothing, but --locked refuses there what the submission would refuse
    lock = checked_lock(node, project, req, check=not dry_run or req.locked, status=status)
    if lock is None:  # only with dry_run: a real submission has locked by now
        return node
    if not dry_run:
        with status("fetching wheels and Python into the uv cache for offline nodes"):
            uvtool.prefetch(
                node.uv, project, node.sync_args, depot, node.rebuild, lock, python=node.python
            )
        node = prefetch_platforms(node, project, lock, partitions, status)
        node = keep_submitted(node, project, lock)
        if req.snapshot:
            with status("copying the project's git-tracked files for --snapshot"):
                node = take_snapshot(node, project)
    return with_sources(with_lock(node, lock), project, lock, download=not dry_run, status=status)


# what the submitted copy of a project leaves out: uv's own files and the user's venv
_NOT_LINKED = frozenset({"uv.lock", "pyproject.toml", ".venv"})


def submitted_name(lock: bytes, pyproject: bytes) -> str:
    """The content address of a lock and its pyproject.toml (names.SUBMITTED)."""
    h = hashlib.sha256(hashlib.sha256(lock).digest() + hashlib.sha256(pyproject).digest())
    return f".submitted-{h.hexdigest()[:16]}"


def leaves_project(lock_text: str) -> bool:
    """Does the lock name a local source by a relative path out of the project (`../lib`)?
    Relative to the submitted copy, such a path would name something else."""
    return bool(re.search(r'\b(?:path|editable|directory|virtual) = "\.\.(?:/|")', lock_text))


def tracked_files(root: Path) -> list[str]:
    """The git-tracked files under `root` (relative to it), as the work tree has them;
    UvslurmError outside a git work tree."""
    from uvslurm import proc

    try:
        out = proc.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--", "."])
    except UvslurmError as e:
        raise UvslurmError(
            f"--snapshot: {root} is not in a git work tree",
            "commit the project to git, or submit without --snapshot",
        ) from e
    return sorted(f for f in out.split("\0") if f)


def snapshot_name(entries: Sequence[tuple[str, str, bytes]]) -> str:
    """The content address of a snapshot: (path, kind, content) of every entry, in order."""
    h = hashlib.sha256()
    for path, kind, content in entries:
        h.update(f"{len(path)}:{path}:{kind}:{len(content)}:".encode("utf-8", "surrogateescape"))
        h.update(content)
    return f".snapshot-{h.hexdigest()[:16]}"


def take_snapshot(node: nodeenv.NodeSettings, project: Project) -> nodeenv.NodeSettings:
    """`node` running its command from a copy of the project's git-tracked files as they are
    now, content-addressed in the depot (`<project id>/.snapshot-<16 hex>`): editing the code
    after submission does not change what a queued job runs (submitit's snapshot, for uv)."""
    root = project.root
    entries: list[tuple[str, str, bytes]] = []
    for rel in tracked_files(root):
        path = root / rel
        if path.is_symlink():
            entries.append((rel, "link", os.readlink(path).encode("utf-8", "surrogateescape")))
        elif path.is_file():  # a tracked file deleted in the work tree is left out
            kind = "exec" if os.access(path, os.X_OK) else "file"
            entries.append((rel, kind, path.read_bytes()))
    pdir = Path(node.depot) / node.project_id
    dest = pdir / snapshot_name(entries)
    if not dest.is_dir():
        pdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = pdir / f"{dest.name}.tmp-{os.getpid()}"
        try:
            tmp.mkdir(mode=0o700)
            for rel, kind, content in entries:
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if kind == "link":
                    target.symlink_to(os.fsdecode(content))
                else:
                    target.write_bytes(content)
                    target.chmod(0o700 if kind == "exec" else 0o600)
            tmp.rename(dest)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if not dest.is_dir():  # another submission of the same files made it meanwhile
                raise UvslurmError(f"--snapshot: cannot copy the project to {dest} ({e})") from e
    if dest.is_symlink() or dest.stat().st_uid != os.getuid():
        raise UvslurmError(f"--snapshot: {dest} is not a directory of yours", f"remove {dest}")
    return node._replace(snapshot=str(dest))


def in_snapshot(command: Sequence[str], project: str, snapshot: str) -> tuple[str, ...]:
    """`command` with a program path inside the project (a .py target, made absolute) pointing
    into the snapshot instead."""
    if not snapshot or not command or not command[0].startswith(project.rstrip("/") + "/"):
        return tuple(command)
    return (snapshot + command[0][len(project.rstrip("/")) :], *command[1:])


def keep_submitted(
    node: nodeenv.NodeSettings, project: Project, lock: bytes
) -> nodeenv.NodeSettings:
    """`node` building from a content-addressed copy of the project's pyproject.toml and `lock`
    (the uv.lock read once, in effects) in the depot: a job queued for hours still runs the lock
    it was submitted with. The copy's other entries are links to the project's, for a packaged
    project's own build. Left as it was (the project's lock, checked on the node) where the
    lock points out of the project, or the copy cannot be written, and for a PEP 723 script
    (no pyproject.toml: the node keys on <script>.lock beside it)."""
    if project.script is not None:
        return node
    if project.lock.parent != project.root or leaves_project(lock.decode("utf-8", "replace")):
        return node
    try:
        pyproject = (project.root / "pyproject.toml").read_bytes()
        pdir = Path(node.depot) / node.project_id
        dest = pdir / submitted_name(lock, pyproject)
        if not dest.is_dir():
            pdir.mkdir(mode=0o700, exist_ok=True)
            tmp = pdir / f"{dest.name}.tmp-{os.getpid()}"
            tmp.mkdir(mode=0o700)
            (tmp / "uv.lock").write_bytes(lock)
            (tmp / "pyproject.toml").write_bytes(pyproject)
            try:
                tmp.rename(dest)
            except OSError:  # another submission made it meanwhile: the same bytes
                shutil.rmtree(tmp, ignore_errors=True)
        if dest.is_symlink() or dest.stat().st_uid != os.getuid():
            return node
        for entry in os.scandir(project.root):
            link = dest / entry.name
            if entry.name not in _NOT_LINKED and not os.path.lexists(link):
                with contextlib.suppress(FileExistsError):  # a submission at the same moment
                    link.symlink_to(project.root / entry.name)
    except OSError as e:
        output.warn(f"the job will build from the project's uv.lock as it is then ({e})")
        return node
    return node._replace(lock_dir=str(dest))


def prefetch_platforms(
    node: nodeenv.NodeSettings,
    project: Project,
    lock: bytes,
    partitions: Sequence[str],
    status: Status = output.Status,
) -> nodeenv.NodeSettings:
    """Fill uv's cache for the platforms of the job's nodes unlike this one (the `platforms`
    setting, else what the partition's nodes report), so that they too can sync offline; the
    node settings then name those fetched (a node's log says them when its offline sync
    fails). A platform uv cannot serve is a warning: the node can still fetch it online."""
    import platform

    from uvslurm import slurm

    arches = () if node.platforms else slurm.node_arches(partitions)
    fetched = []
    for plat in uvtool.foreign_platforms(arches, platform.machine(), node.platforms):
        with status(f"fetching wheels into the uv cache for {plat} nodes"):
            try:
                uvtool.prefetch_platform(
                    node.uv, project, node.sync_args, Path(node.depot), node.rebuild, lock, plat,
                    python=node.python,
                )  # fmt: skip
                fetched.append(plat)
            except UvslurmError as e:
                output.warn(f"{e.line()}; offline nodes of that platform may not build the venv")
    return node._replace(platforms=tuple(fetched))


def check_request(req: Request) -> None:
    if req.locked and req.frozen:
        raise UsageError(
            "--locked and --frozen cannot be used together (as in uv)",
            "--locked checks uv.lock, --frozen uses it unchecked: pass one",
        )


def checked_lock(
    node: nodeenv.NodeSettings,
    project: Project,
    req: Request,
    *,
    check: bool = True,
    status: Status = output.Status,
) -> bytes | None:
    """The lock's content once it is what `uv run` would run with: relocked when missing or
    stale, refused then with --locked, taken as it is with --frozen (`check`: else as it is
    on disk, None when there is none)."""
    if check:
        with status(f"checking {project.lock.name}"):
            uvtool.ensure_lock(node.uv, project, locked=req.locked, frozen=req.frozen)
    return project.lock.read_bytes() if project.lock.is_file() else None


def with_lock(node: nodeenv.NodeSettings, lock: bytes | None) -> nodeenv.NodeSettings:
    """`node` with the sha256 of `lock` (the content of uv.lock, as read once here): the node
    keys the venv on the lock it sees, and warns when that is not the one submitted."""
    if lock is None:
        return node
    return node._replace(lock_hash=hashlib.sha256(lock).hexdigest())


def with_sources(
    node: nodeenv.NodeSettings,
    project: Project,
    lock: bytes | None,
    *,
    download: bool,
    status: Status = output.Status,
) -> nodeenv.NodeSettings:
    """`node` with where the nodes find the sources of its `rebuild` packages (`lock`: the
    content of uv.lock); `download` puts those of an index into the depot first."""
    if not node.rebuild:
        return node
    if lock is None:
        raise UvslurmError(f"rebuild: no uv.lock in {project.root}", "run `uv lock` first")
    located = rebuild.locate(sources.parse_toml(lock, project.lock), node.rebuild, project.root)
    if download:
        with status("fetching the sources of rebuild packages"):
            rebuild.download(located, Path(node.depot))
    encoded = rebuild.encode(rebuild.local_sources(located, Path(node.depot)))
    return node._replace(rebuild_sources=encoded)


# --- stage 4: #SBATCH options, layered (pure) --------------------------------------------------


def sbatch_defaults(config: Config, profile: str | None) -> dict[str, str | bool]:
    """The configured `sbatch` table (site < user < project < environment), then the profile's
    options: the lower layers of a job's options, and what `uvslurm template` fills in."""
    out = _configured(config, "sbatch")
    if profile:
        if profile not in config.profile_names():
            known = ", ".join(config.profile_names()) or "none defined"
            raise ConfigError(
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
    sources = {
        **{k: "config" for k in lower},
        **{k: "script" for k in script},
        **{k: "command line" for k in cli},
        **{k: "default" for k in defaults},
    }
    return Options({**options, **defaults}, {**effective, **defaults}, frozenset(defaults), sources)


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
    """`--extra X` / `--group Y` (`--only-group`, `--no-group`) that the project does not
    define: uv would stop on the node ("Group `Y` is not defined"),
    after the job waited in the queue. Workspaces are left to uv (their members add more)."""
    data = project.pyproject
    if "workspace" in data.get("tool", {}).get("uv", {}):
        return
    table = data.get("project", {})
    extras = {_norm(n) for n in table.get("optional-dependencies", {})}
    groups = {_norm(n) for n in data.get("dependency-groups", {})}
    if data.get("tool", {}).get("uv", {}).get("dev-dependencies") is not None:
        groups.add("dev")
    defined = {"--extra": extras, "--group": groups, "--only-group": groups, "--no-group": groups}
    for flag, name in itertools.pairwise(sync_args):
        if flag in defined and _norm(name) not in defined[flag]:
            kind = "optional-dependencies" if flag == "--extra" else "dependency-groups"
            known = ", ".join(sorted(defined[flag])) or "none"
            raise UsageError(
                f"{flag} {name}: {project.root / 'pyproject.toml'} defines no such "
                f"{'extra' if flag == '--extra' else 'group'} "
                f"(its {kind}: {known})",
                f"add it to [{'project.' if flag == '--extra' else ''}{kind}], or drop "
                f"{flag} {name}",
            )


def _check_packages(project: Project, sync_args: Sequence[str]) -> None:
    """`--package X` that is not the project's or a workspace member's: uv would stop on the
    login node's prefetch with a line about the lock; said here, as uv's usage error."""
    names = [name for flag, name in itertools.pairwise(sync_args) if flag == "--package"]
    if not names:
        return
    known = {_norm(n) for n in project.packages()}
    for name in names:
        if _norm(name) not in known:
            raise UsageError(
                f"--package {name}: no such package in {project.root} "
                f"(its packages: {', '.join(sorted(known)) or 'none'})",
                "name a workspace member, or drop --package",
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
    check_request(req)
    target = target or resolve_target(req, ctx.cwd)
    ctx = ctx if ctx.project_dir and target.inline is None else locate(ctx, target)
    project = ctx.require_project()
    if project.script is not None and req.sync_args:
        raise UsageError(
            f"{req.sync_args[0]}: a PEP 723 script has no extras, groups or workspace packages",
            "drop the uv selection flags, or put the dependencies in the script's metadata",
        )
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
    _check_packages(project, req.sync_args)
    _warn_export(opts)
    node = nodeenv.settings_for(project, ctx.config, req.sync_args, req.python)
    argv = req.argv or [
        "uvslurm",
        "submit",
        *([req.target] if req.target else ["--", *req.command]),
    ]
    origin = f"uvslurm {__version__} on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: {shlex.join(argv)}"
    return Plan(project, node, opts, target, origin)


def realize(p: Plan, req: Request, *, dry_run: bool = False, status: Status = output.Status) -> Job:
    """The login-node effects (none with `dry_run`), then the job script."""
    partition = p.options.effective.get("partition")
    partitions = partition.split(",") if isinstance(partition, str) else []
    node = effects(p.node, p.project, req, dry_run=dry_run, partitions=partitions, status=status)
    text = render.render(
        render.JobScript(
            settings=node,
            options=p.options.script,
            origin=p.origin,
            command=in_snapshot(p.target.command, node.project, node.snapshot),
            user_script=p.target.script,
        )
    )
    return Job(p.project, node, p.options, p.target, text)
