"""`uvslurm submit`: render a self-contained job script and hand it to sbatch."""

from __future__ import annotations

import os
import shlex
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from uvslurm import (
    __version__,
    nodeenv,
    paths,
    rebuild,
    render,
    sbatch_options,
    slurm,
    sources,
    uvtool,
)
from uvslurm.config import Config
from uvslurm.errors import UsageError, UvslurmError
from uvslurm.project import Project, find_project


@dataclass
class SubmitRequest:
    target: str | None = None
    args: Sequence[str] = ()
    command: Sequence[str] = ()  # after `--`
    sbatch: Mapping[str, str | bool] = field(default_factory=dict)  # CLI options, canonical
    sbatch_args: Sequence[str] = ()  # --sbatch-arg values
    profile: str | None = None
    project: str | None = None
    dry_run: bool = False
    wait: bool = False
    parsable: bool = False
    no_node_local: bool = False
    locked: bool = False
    frozen: bool = False
    extras: Sequence[str] = ()
    all_extras: bool = False
    groups: Sequence[str] = ()
    no_dev: bool = False
    cwd: Path = field(default_factory=Path.cwd)


@dataclass(frozen=True)
class Target:
    """What the job runs: a command through `uv run`, or a user's batch script."""

    command: tuple[str, ...] = ()
    script: render.UserScript | None = None
    script_args: tuple[str, ...] = ()
    name: str = "job"
    search_from: Path = Path()


def resolve_target(req: SubmitRequest) -> Target:
    if req.command:
        return Target(
            command=tuple(req.command), name=Path(req.command[0]).name, search_from=req.cwd
        )
    if not req.target:
        raise UsageError(
            "nothing to run",
            "give a .py file, a batch script, or `-- CMD ARGS...` after the options",
        )
    path = req.cwd / req.target
    if not path.is_file():
        raise UvslurmError(
            f"{req.target}: no such file", "check the path, or use `-- CMD` for a command"
        )
    if path.suffix == ".py":
        return Target(
            command=(str(path.resolve()), *req.args),
            name=path.stem,
            search_from=path.resolve().parent,
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


def default_job_name(name: str) -> str:
    """A job name from a file or command name: control characters (a newline in a file name)
    become '_', so that the name is one #SBATCH value; quoting does the rest."""
    safe = "".join("_" if unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") else c for c in name)
    return safe or "job"


def _profile(config: Config, name: str | None) -> dict[str, str | bool]:
    if not name:
        return {}
    if name not in config.profile_names():
        known = ", ".join(config.profile_names()) or "none defined"
        raise UvslurmError(
            f"unknown profile '{name}' (available: {known})",
            "define it under [tool.uvslurm.profiles] in pyproject.toml",
        )
    return sbatch_options.normalize(config.table(f"profiles.{name}"))


def _check_output_dir(name: str, value: str | bool, cwd: Path) -> None:
    if not isinstance(value, str) or "%" in os.path.dirname(value):
        return
    d = cwd / os.path.dirname(value) if os.path.dirname(value) else cwd
    if not d.is_dir():
        raise UvslurmError(
            f"--{name}: directory {d} does not exist (Slurm would drop the log)", "create it first"
        )


def _discover(target: Target, cwd: Path) -> Project:
    """A .py file belongs to the project around it (`submit ~/proj/train.py` from anywhere); a
    batch script or command runs in the current directory's project, wherever the script lives.
    Each falls back to the other place."""
    here = target.search_from
    order = [here, cwd] if target.command and here != cwd else [cwd, here]
    try:
        return find_project(order[0])
    except UvslurmError:
        if order[1] == order[0]:
            raise
        return find_project(order[1])


@dataclass(frozen=True)
class Plan:
    project: Project
    config: Config
    node: nodeenv.NodeSettings
    options: dict[str, str | bool]  # what the rendered script sets in #SBATCH lines
    effective: dict[str, str | bool]  # what the job will run with
    target: Target
    text: str


def plan(req: SubmitRequest, target: Target | None = None) -> Plan:
    """Everything up to the rendered text: pure apart from reading files and finding uv.
    `target` overrides what `req` names (uvslurm srun's command or interactive shell)."""
    target = target or resolve_target(req)
    if req.project:
        project = find_project(req.cwd / req.project, explicit=True)
    else:
        project = _discover(target, req.cwd)
    cli_layer = {"node-local": "never"} if req.no_node_local else {}
    config = sources.load(project.tool_table, cli_layer, pyproject=project.root / "pyproject.toml")

    lower = {**sbatch_options.normalize(config.table("sbatch")), **_profile(config, req.profile)}
    cli = {**req.sbatch, **sbatch_options.parse_directive_args(req.sbatch_args)}
    script_opts = target.script.options() if target.script else {}
    options = {k: v for k, v in lower.items() if k not in script_opts}
    options.update(cli)
    effective = {**lower, **script_opts, **cli}
    defaults: dict[str, str | bool] = {}
    if "job-name" not in effective:
        defaults["job-name"] = default_job_name(target.name)
    if "output" not in effective:
        log = str(paths.state_dir() / "logs" / "%x-%j.out")
        try:
            defaults["output"] = sbatch_options.validate("output", log)
        except UsageError as e:
            raise UvslurmError(
                f"the default log path {log!r} cannot be an #SBATCH value", "pass -o FILE"
            ) from e
    options.update(defaults)
    effective.update(defaults)
    for name in ("output", "error"):
        if name in effective and name not in defaults:
            _check_output_dir(name, effective[name], req.cwd)

    sync = nodeenv.sync_args(req.extras, req.all_extras, req.groups, req.no_dev)
    node = nodeenv.settings_for(project, config, sync, with_sources=project.lock.is_file())
    argv = ["uvslurm", "submit", *([req.target] if req.target else ["--", *req.command])]
    origin = f"uvslurm {__version__} on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: {shlex.join(argv)}"
    text = render.render(
        render.JobScript(
            settings=node,
            options=options,
            origin=origin,
            command=target.command,
            user_script=target.script,
        )
    )
    return Plan(project, config, node, options, effective, target, text)


def _prepare_depot(depot: Path) -> None:
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


def _save_copy(text: str) -> Path:
    d = paths.state_dir() / "scripts"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"pending-{os.getpid()}-{time.time_ns()}.sh"
    path.write_text(text)
    return path


def _report_tasks(job: str) -> None:
    """After `--wait` on an array: one line per state, naming the tasks that did not complete."""
    from collections import defaultdict

    from uvslurm import output

    by_state: dict[str, list[str]] = defaultdict(list)
    for task, state, code in slurm.task_states(job):
        by_state[state].append(task if state == "COMPLETED" else f"{task} (exit {code})")
    for state, tasks in sorted(by_state.items()):
        shown = f"{len(tasks)} tasks" if state == "COMPLETED" else ", ".join(tasks)
        output.line(f"  {state}: {shown}")


def run(req: SubmitRequest) -> int:
    from uvslurm import output

    p = plan(req)
    if req.dry_run:
        print(p.text, end="")
        return 0
    sbatch = slurm.find_sbatch()
    depot = Path(p.node.depot)
    _prepare_depot(depot)
    out = p.effective.get("output")
    if isinstance(out, str) and out.startswith(str(paths.state_dir())):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    with output.Status("checking uv.lock"):
        if not req.frozen:
            uvtool.ensure_lock(p.node.uv, p.project, req.locked)
        elif not p.project.lock.is_file():
            raise UvslurmError(f"no uv.lock in {p.project.root}", "run `uv lock`, or drop --frozen")
    with output.Status("fetching wheels and Python into the uv cache for offline nodes"):
        uvtool.prefetch(p.node.uv, p.project, p.node.sync_args, depot, p.node.rebuild)
    if p.node.rebuild:
        # the lock may have been (re)written just now: render with its sources
        p = plan(req)
        with output.Status("fetching the sources of rebuild packages"):
            rebuild.download(
                rebuild.locate(sources.read_toml(p.project.lock), p.node.rebuild, p.project.root),
                depot,
            )
    fp, venv, _ = nodeenv.parse_fingerprint(nodeenv.run_prolog(p.node, "fingerprint"))

    is_array = "array" in p.effective
    copy = _save_copy(p.text)
    copy.chmod(0o755)
    job_copy: list[Path] = [copy]

    def announce(job: str) -> None:
        final = copy.with_name(f"{job}.sh")
        copy.rename(final)
        job_copy[0] = final
        print(job, flush=True)
        if not req.parsable:
            pattern = str(p.effective.get("output", ""))
            if is_array:  # one log per task: show the pattern, with the job id filled in
                log = pattern.replace("%A", job).replace("%j", job) + "  (%a: task id)"
            else:
                log = slurm.log_path(job) or pattern
            output.summary(
                f"submitted job {job}",
                [
                    ("log", log),
                    ("script", str(final)),
                    ("project", str(p.project.root)),
                    ("depot venv", f"{venv} (for this login node's fingerprint)"),
                    ("fingerprint", fp),
                ],
            )

    try:
        if req.wait:
            job, code = slurm.submit_wait(
                sbatch, copy, p.target.script_args, announce, stream=not is_array
            )
            if not req.parsable:
                word = "succeeded" if code == 0 else f"failed with exit code {code}"
                (output.console().print if code == 0 else output.warn)(f"job {job} {word}")
                if is_array:
                    _report_tasks(job)
            return code
        job = slurm.submit(sbatch, copy, p.target.script_args)
    except BaseException:
        if job_copy[0] == copy and copy.exists():
            copy.unlink()  # never submitted: keep nothing half-written
        raise
    announce(job)
    return 0
