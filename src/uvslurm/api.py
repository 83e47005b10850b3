"""The library API: what `uvslurm submit`, `prepare` and `fingerprint` do, for Python callers.
The same pipeline as the CLI (pipeline.plan -> realize), the same errors (uvslurm.errors,
raised instead of printed), and nothing printed: the library never imports rich. Everything
Slurm is asked goes through `slurm`."""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uvslurm import (
    __version__,
    manifest,
    nodeenv,
    paths,
    pipeline,
    proc,
    sbatch_options,
    slurm,
)
from uvslurm.context import Context
from uvslurm.errors import ConfigError, JobError, UsageError, UvslurmError, WaitTimeout
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

    def _infos(self) -> list[slurm.JobInfo]:
        job = self._id()
        found = slurm.query([job])
        if not found and "_" in job:
            # a task of an array that has not started is in its array's one pending line
            array, task = job.split("_", 1)
            pending = slurm.query([array]).values()
            found = {i.job_id: i for i in pending if task in _task_ids(i.job_id)}
        if not found:
            raise JobError(
                f"job {job}: unknown to Slurm",
                "it ended more than MinJobAge seconds ago (scontrol forgets it), or never existed",
            )
        return list(found.values())

    @property
    def log_path(self) -> Path | None:
        """The job's log (stdout) as Slurm expanded it; for an array, that of its first task
        (each task's handle has its own)."""
        if self._log is None and self.id is not None:
            try:
                log = next((i.stdout for i in self._infos() if i.stdout), None)
            except JobError:
                log = None
            if log is None:
                job, _, task = self.id.partition("_")
                name = str(self.options.get("job-name", ""))
                pattern = str(self.options.get("output", ""))
                log = manifest.expand_log(pattern, job, task, name, getpass.getuser())
            self._log = log
        return Path(self._log) if self._log else None

    def state(self) -> str:
        """Slurm's state: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ... (an array:
        its least advanced task's)."""
        return overall_state([i.state for i in self._infos()])

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
        tasks'; killed by a signal: 128 + the signal; ended without running, such as cancelled
        while pending: 1). WaitTimeout after `timeout` seconds; the job goes on."""
        job = self._id()
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            infos = self._infos()
            state = overall_state([i.state for i in infos])
            if all(i.ended for i in infos):
                return exit_code(infos)
            if end is not None and time.monotonic() >= end:
                raise WaitTimeout(
                    f"job {job} is still {state} after {timeout} s", "wait again, or cancel it"
                )
            time.sleep(poll if end is None else max(0.0, min(poll, end - time.monotonic())))

    def cancel(self) -> None:
        slurm.cancel([self._id()])

    def manifest(self) -> dict[str, Any]:
        """The job's manifest (docs/reference/manifest.md), merged with what its runs recorded
        and what Slurm says now."""
        try:
            return manifest.load(self._id())[0]
        except UvslurmError as e:
            raise JobError(e.message, e.hint) from e


def overall_state(states: Sequence[str]) -> str:
    """One state for a job's tasks: the least advanced (RUNNING before PENDING before ended),
    else the first that did not complete."""
    for s in ("RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "SUSPENDED", "PENDING"):
        if s in states:
            return s
    return next((s for s in states if s != "COMPLETED"), states[0] if states else "UNKNOWN")


def exit_code(infos: Sequence[slurm.JobInfo]) -> int:
    """The exit code of ended jobs or tasks: the highest; 128 + the signal of one killed by a
    signal; 1 for one that ended otherwise than COMPLETED with code 0 (never ran)."""
    codes = []
    for i in infos:
        code = 128 + i.signal if i.signal else (i.exit_code or 0)
        codes.append(code if code or i.state == "COMPLETED" else 1)
    return max(codes, default=1)


def _task_ids(job_id: str) -> list[str]:
    """The tasks a Slurm id names: `12_3` one, `12_[0-7%2]` (pending) each of its range."""
    spec = job_id.partition("_")[2].strip("[]").split("%", 1)[0]
    if not spec:
        return []
    try:
        return _array_ids(spec)
    except ValueError:
        return []


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


def _uv_version(uv: str) -> str:
    try:
        return proc.run([uv, "--version"]).split()[1]
    except (UvslurmError, IndexError):
        return ""


def submission_facts(p: pipeline.Job) -> dict[str, Any]:
    """What the manifest says of the moment of submission, measured just before it: versions,
    the git state, the pyproject.toml's hash."""
    # a PEP 723 script is its own pyproject.toml
    pyproject = p.project.script or p.project.root / "pyproject.toml"
    return {
        "versions": {
            "uvslurm": __version__,
            "uv": _uv_version(p.node.uv),
            "slurm": slurm.version(),
        },
        "git": manifest.git_of(p.project.root),
        "pyproject_sha256": hashlib.sha256(pyproject.read_bytes()).hexdigest(),
    }


def job_manifest(
    job: str,
    p: pipeline.Job,
    profile: str | None,
    argv: Sequence[str],
    ctx: Context,
    script: Path,
    submitted: float,
    facts: dict[str, Any],
) -> dict[str, Any]:
    """The submission's manifest of `job` (manifest.py; docs/reference/manifest.md); `facts`:
    what `submission_facts` measured before sbatch."""
    node, opts = p.node, p.options
    sources = dict(opts.sources)
    if profile:  # the config layer, finer: what the profile set
        for k in sbatch_options.normalize(ctx.config.table(f"profiles.{profile}")):
            if sources.get(k) == "config":
                sources[k] = f"profile {profile}"
    logs: dict[str, str] = {
        name: str(opts.effective[name]) for name in ("output", "error") if name in opts.effective
    }
    target = {
        "command": list(p.target.command),
        "script_args": list(p.target.script_args),
        "batch_script": bool(p.target.script),
    }
    return manifest.submission(
        job_id=job,
        argv=list(argv),
        cwd=str(ctx.cwd),
        # a workspace member's directory (its lock is the root's), a script, or the project
        project=str(p.project.member_dir or p.project.ident),
        lock_root=str(p.project.lock.parent),
        options=opts.effective,
        sources=sources,
        target=target,
        versions=facts["versions"],
        git=facts["git"],
        lock_sha256=node.lock_hash,
        pyproject_sha256=facts["pyproject_sha256"],
        lock_dir=node.lock_dir,
        snapshot=node.snapshot,
        depot=node.depot,
        sync_args=node.sync_args,
        script=str(script),
        logs=logs,
        array="array" in opts.effective,
        submitted_at=submitted,
    )


def _submitted(plan: pipeline.Plan, req: pipeline.Request, ctx: Context, sbatch: str) -> Job:
    """The login-node effects, the job script saved and handed to sbatch (removed if sbatch
    refuses it, renamed after the job id), and its manifest: as `uvslurm submit` does, without
    printing. A manifest that cannot be written does not undo the submission."""
    # the job records its start and end beside its manifest
    node = plan.node._replace(record=str(manifest.ensure_jobs_dir()))
    p = pipeline.realize(plan._replace(node=node), req, status=_quiet)
    submitted = time.time()
    facts = submission_facts(p)
    out = p.options.effective.get("output")
    if isinstance(out, str) and out.startswith(str(paths.state_dir())):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    copy = manifest.save_script(p.text)
    try:
        job = slurm.submit(sbatch, copy, p.target.script_args)
    except BaseException:
        copy.unlink(missing_ok=True)  # never submitted: keep nothing half-written
        raise
    final = copy.with_name(f"{job}.sh")
    copy.rename(final)
    with contextlib.suppress(OSError, UvslurmError):
        manifest.write(job_manifest(job, p, req.profile, req.argv, ctx, final, submitted, facts))
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
    snapshot: bool = False,
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
    selection. `snapshot`: run from a copy of the git-tracked files as they are now. `wait`:
    return once the job has ended. `dry_run`: write and submit nothing; the
    handle holds the script (`id` None). Raises the errors of `uvslurm.errors`
    (ConfigError, ProjectError, SubmitError, ...), with the CLI's messages."""
    if command is not None and target is not None:
        raise UsageError("give a target or a command, not both")
    if command is not None and not command:
        raise UsageError("command is empty", "give the program and its arguments")
    argv = _argv(args, "args")
    cmd = _argv(command, "command") if command is not None else []
    what = [os.fspath(target), *argv] if target is not None else ["--", *cmd]
    req = pipeline.Request(
        target=os.fspath(target) if target is not None else None,
        args=argv,
        command=cmd,
        sbatch=sbatch_options.normalize(dict(sbatch or {})),
        sbatch_args=_argv(sbatch_args, "sbatch_args"),
        profile=profile,
        locked=locked,
        frozen=frozen,
        sync_args=selection(extras, all_extras, groups, no_dev),
        snapshot=snapshot,
        # for the script's header and the manifest: what was called
        argv=("uvslurm.submit()", *what),
    )
    ctx = context_for(project, cwd, node_local)
    plan = pipeline.plan(ctx, req)
    if dry_run:
        p = pipeline.realize(plan, req, dry_run=True, status=_quiet)
        return Job(None, p.text, None, p.project.root, dict(p.options.effective))
    job = _submitted(plan, req, ctx, slurm.find_sbatch())
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
