"""The library API: what `uvslurm submit`, `prepare` and `fingerprint` do, for Python callers.
The same pipeline as the CLI (pipeline.plan -> realize), the same errors (uvslurm.errors,
raised instead of printed), and nothing printed: the library never imports rich. Everything
Slurm is asked goes through `slurm`."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uvslurm import nodeenv, paths, pipeline, sbatch_options, slurm
from uvslurm.context import Context
from uvslurm.errors import ConfigError, JobError, UsageError, WaitTimeout
from uvslurm.project import Project

PathLike = str | os.PathLike[str]


def _quiet(text: str) -> contextlib.AbstractContextManager[object]:
    return contextlib.nullcontext()


def context_for(project: PathLike | None, cwd: PathLike | None, node_local: bool) -> Context:
    """The context a CLI call with `--project` and `--no-node-local` would have."""
    return Context(
        cwd=Path(cwd) if cwd is not None else Path.cwd(),
        project_dir=os.fspath(project) if project is not None else None,
        cli={} if node_local else {"node-local": "never"},
    )


def _names(value: str | Iterable[str], what: str) -> list[str]:
    # a lone string would otherwise be taken letter by letter
    names = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{what}: names must be strings, not {names!r}")
    return names


def selection(
    extras: str | Iterable[str], all_extras: bool, groups: str | Iterable[str], no_dev: bool
) -> tuple[str, ...]:
    """uv's selection flags, as `--extra`, `--all-extras`, `--group`, `--no-dev` give them."""
    return nodeenv.sync_args(_names(extras, "extras"), all_extras, _names(groups, "groups"), no_dev)


def _argv(value: str | Sequence[str], what: str) -> list[str]:
    if isinstance(value, str):
        raise ConfigError(
            f"{what} must be a list of arguments, not the string {value!r}",
            f"write {what}={[value]!r}, or split it (shlex.split)",
        )
    out = [os.fspath(a) if isinstance(a, os.PathLike) else a for a in value]
    if not all(isinstance(a, str) for a in out):
        raise ConfigError(f"{what}: every argument must be a string, not {list(value)!r}")
    return out


def _log_pattern(pattern: str, job: str, name: str, task: str = "") -> str:
    """A log path with the Slurm patterns uvslurm writes filled in (%j %A %a %x %u %%), for
    when Slurm no longer answers."""
    import getpass

    out, i = [], 0
    values = {"j": job, "A": job, "a": task, "x": name, "u": getpass.getuser(), "%": "%"}
    while i < len(pattern):
        c = pattern[i]
        if c == "%" and i + 1 < len(pattern) and pattern[i + 1] in values:
            out.append(values[pattern[i + 1]])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


@dataclass
class Job:
    """A submitted job (or, from `submit(dry_run=True)`, the job that would be: `id` None).

    `id` is Slurm's job id (`"123"`; an array task's handle: `"123_4"`); `script` the job
    script's text; `script_path` where uvslurm saved it; `options` the sbatch options the job
    runs with."""

    id: str | None
    script: str
    script_path: Path | None = None
    project: Path | None = None
    options: Mapping[str, str | bool] = field(default_factory=dict)
    _log: str | None = field(default=None, repr=False)

    def _id(self) -> str:
        if self.id is None:
            raise JobError("this job was a dry run: it was never submitted", "submit it first")
        return self.id

    @property
    def is_array(self) -> bool:
        return "array" in self.options and "_" not in (self.id or "")

    @property
    def log_path(self) -> Path | None:
        """The job's log (stdout) as Slurm expanded it; for an array, that of its first task
        (each task's handle has its own)."""
        if self._log is None and self.id is not None:
            try:
                log = next((r["StdOut"] for r in slurm.records(self.id) if r.get("StdOut")), None)
            except JobError:
                log = None
            if log is None:
                pattern = str(self.options.get("output", ""))
                job, _, task = self.id.partition("_")
                log = _log_pattern(pattern, job, str(self.options.get("job-name", "")), task)
            self._log = log
        return Path(self._log) if self._log else None

    def state(self) -> str:
        """Slurm's state: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ... (an array:
        its least advanced task's)."""
        return slurm.state(self._id())

    def tasks(self) -> list[Job]:
        """One handle per array task (`[]` for a job that is not an array)."""
        if not self.is_array:
            return []
        spec = str(self.options["array"]).split("%", 1)[0]
        return [
            Job(f"{self._id()}_{t}", self.script, self.script_path, self.project, self.options)
            for t in _array_ids(spec)
        ]

    def wait(self, timeout: float | None = None, poll: float = 1.0) -> int:
        """Wait for the job's end and return its exit code (an array: the highest of its
        tasks'; a job that ended without running, such as one cancelled while pending: 1).
        WaitTimeout after `timeout` seconds; the job goes on."""
        job = self._id()
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            found = slurm.records(job)
            state = slurm.job_state(found)
            if state in slurm.ENDED:
                code = slurm.job_exit_code(found)
                return code if code or state == "COMPLETED" else 1
            if end is not None and time.monotonic() >= end:
                raise WaitTimeout(
                    f"job {job} is still {state} after {timeout} s", "wait again, or cancel it"
                )
            time.sleep(poll if end is None else max(0.0, min(poll, end - time.monotonic())))

    def cancel(self) -> None:
        slurm.cancel([self._id()])

    def manifest(self) -> dict[str, Any]:
        """What uvslurm knows of the job: its id, project, options, script and log."""
        return {
            "job": self.id,
            "project": str(self.project) if self.project else None,
            "options": dict(self.options),
            "script": str(self.script_path) if self.script_path else None,
            "log": str(self.log_path) if self.log_path else None,
        }


def _array_ids(spec: str) -> list[str]:
    """The task ids of an --array value such as `0-7`, `1,3,5-9:2` (validated before)."""
    ids: list[str] = []
    for part in spec.split(","):
        rng, _, step = part.partition(":")
        lo, _, hi = rng.partition("-")
        if hi:
            ids += [str(i) for i in range(int(lo), int(hi) + 1, int(step or 1))]
        else:
            ids.append(lo)
    return ids


def _save(text: str, job: str | None = None) -> Path:
    """The job script as submitted, kept in uvslurm's state directory (named after the job
    once it has an id)."""
    d = paths.state_dir() / "scripts"
    d.mkdir(parents=True, exist_ok=True)
    path = d / (f"{job}.sh" if job else f"pending-{os.getpid()}-{time.time_ns()}.sh")
    path.write_text(text)
    path.chmod(0o755)
    return path


def submitted(p: pipeline.Job, sbatch: str) -> Job:
    """Hand a realized job script to sbatch: its copy saved first (removed if sbatch refuses
    it), renamed after the job id. The CLI's `submit` does the same, printing as it goes."""
    out = p.options.effective.get("output")
    if isinstance(out, str) and out.startswith(str(paths.state_dir())):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    copy = _save(p.text)
    try:
        job = slurm.submit(sbatch, copy, p.target.script_args)
    except BaseException:
        copy.unlink(missing_ok=True)  # never submitted: keep nothing half-written
        raise
    final = copy.with_name(f"{job}.sh")
    copy.rename(final)
    return Job(job, p.text, final, p.project.root, dict(p.options.effective))


def submit(
    target: PathLike | None = None,
    *,
    command: Sequence[str] | None = None,
    args: Sequence[str] = (),
    project: PathLike | None = None,
    sbatch: Mapping[str, object] | None = None,
    sbatch_args: Sequence[str] = (),
    profile: str | None = None,
    extras: str | Iterable[str] = (),
    all_extras: bool = False,
    groups: str | Iterable[str] = (),
    no_dev: bool = False,
    node_local: bool = True,
    locked: bool = False,
    frozen: bool = False,
    wait: bool = False,
    dry_run: bool = False,
    cwd: PathLike | None = None,
) -> Job:
    """Submit `target` (a .py file or a batch script, with `args`) or `command` (an argv run
    with `uv run`) as `uvslurm submit` does, and return its handle.

    `sbatch`: sbatch options by long name (`{"time": "10:00", "cpus-per-task": 4,
    "exclusive": True}`; `_` may stand for `-`), validated as on the command line;
    `sbatch_args`: what `--sbatch-arg` takes. `project`: the project directory (default: the
    one around `target`, else around `cwd`). `extras`, `all_extras`, `groups`, `no_dev`: uv's
    selection. `wait`: return once the job has ended. `dry_run`: write and submit nothing; the
    handle holds the script (`id` None). Raises the errors of `uvslurm.errors`
    (ConfigError, ProjectError, SubmitError, ...), with the CLI's messages."""
    if command is not None and target is not None:
        raise UsageError("give a target or a command, not both")
    if command is not None and not command:
        raise UsageError("command is empty", "give the program and its arguments")
    req = pipeline.Request(
        target=os.fspath(target) if target is not None else None,
        args=_argv(args, "args"),
        command=_argv(command, "command") if command is not None else (),
        sbatch=sbatch_options.normalize(dict(sbatch or {})),
        sbatch_args=_argv(sbatch_args, "sbatch_args"),
        profile=profile,
        locked=locked,
        frozen=frozen,
        sync_args=selection(extras, all_extras, groups, no_dev),
    )
    ctx = context_for(project, cwd, node_local)
    plan = pipeline.plan(ctx, req)
    if dry_run:
        p = pipeline.realize(plan, req, dry_run=True, status=_quiet)
        return Job(None, p.text, None, p.project.root, dict(p.options.effective))
    sbatch_path = slurm.find_sbatch()
    job = submitted(pipeline.realize(plan, req, status=_quiet), sbatch_path)
    if wait:
        job.wait()
    return job


@dataclass(frozen=True)
class Fingerprint:
    """This machine's fingerprint: `hash`, the depot `venv` the project would use here (None
    outside a project), and the `components` hashed."""

    hash: str
    venv: Path | None
    components: dict[str, str]


def fingerprint(project: PathLike | None = None, *, cwd: PathLike | None = None) -> Fingerprint:
    """What `uvslurm fingerprint --json` says, for this process's environment (its loaded
    modules, this machine's platform)."""
    ctx = context_for(project, cwd, True)
    settings = nodeenv.settings_for(ctx.project, ctx.config)
    fp, venv, comps = nodeenv.parse_fingerprint(
        nodeenv.run_prolog(settings, "fingerprint", quiet=True)
    )
    return Fingerprint(fp, Path(venv) if venv else None, comps)


def node_settings(
    project: Project, ctx: Context, sync: tuple[str, ...], *, lock: bool
) -> nodeenv.NodeSettings:
    """The prolog's inputs for `project`, with its uv.lock (checked and locked first when
    `lock`, as submit does)."""
    node = nodeenv.settings_for(project, ctx.config, sync)
    if lock:
        req = pipeline.Request(sync_args=sync)
        return pipeline.effects(node, project, req, status=_quiet)
    data = project.lock.read_bytes() if project.lock.is_file() else None
    return pipeline.with_sources(
        pipeline.with_lock(node, data), project, data, download=False, status=_quiet
    )


def prepare(
    project: PathLike | None = None,
    *,
    extras: str | Iterable[str] = (),
    all_extras: bool = False,
    groups: str | Iterable[str] = (),
    no_dev: bool = False,
    node_local: bool = True,
    cwd: PathLike | None = None,
) -> Path:
    """Make the project's venv ready here and now, as `uvslurm prepare` does (this process's
    modules and platform decide which), and return its path. PrepareError when it cannot be
    built, with the prolog's last line."""
    ctx = context_for(project, cwd, node_local)
    node = node_settings(
        ctx.require_project(), ctx, selection(extras, all_extras, groups, no_dev), lock=False
    )
    return Path(nodeenv.run_prolog(node, "prepare", quiet=True).strip().splitlines()[-1])
