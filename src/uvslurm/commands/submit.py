"""`uvslurm submit`: render a self-contained job script (uvslurm.pipeline) and hand it to
sbatch."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from uvslurm import nodeenv, output, paths, pipeline, sbatch_options, slurm
from uvslurm.context import Context
from uvslurm.errors import UsageError


def request(ns: argparse.Namespace) -> pipeline.Request:
    """The pipeline's request from the parsed command line."""
    if ns.command is not None and not ns.command:
        raise UsageError("nothing to run after `--`", "write the command after it")
    sbatch = {}
    for key, value in vars(ns).items():
        if key.startswith("sb_") and value is not None:
            name = key[3:].replace("_", "-")
            sbatch[name] = sbatch_options.validate(name, value)
    return pipeline.Request(
        target=ns.target,
        args=list(ns.args),
        command=ns.command or [],
        sbatch=sbatch,
        sbatch_args=ns.sbatch_arg,
        profile=ns.profile,
        locked=ns.locked,
        frozen=ns.frozen,
        sync_args=nodeenv.sync_args(ns.extra, ns.all_extras, ns.group, ns.no_dev),
        argv=getattr(ns, "argv", ()),
    )


def _save_copy(text: str) -> Path:
    d = paths.state_dir() / "scripts"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"pending-{os.getpid()}-{time.time_ns()}.sh"
    path.write_text(text)
    return path


def _report_tasks(job: str) -> None:
    """After `--wait` on an array: one line per state, naming the tasks that did not complete."""
    from collections import defaultdict

    by_state: dict[str, list[str]] = defaultdict(list)
    for task, state, code in slurm.task_states(job):
        by_state[state].append(task if state == "COMPLETED" else f"{task} (exit {code})")
    for state, tasks in sorted(by_state.items()):
        shown = f"{len(tasks)} tasks" if state == "COMPLETED" else ", ".join(tasks)
        output.line(f"  {state}: {shown}")


def run(ctx: Context, ns: argparse.Namespace) -> int:
    req = request(ns)
    plan = pipeline.plan(ctx, req)
    if ns.dry_run:
        print(pipeline.realize(plan, req, dry_run=True).text, end="")
        return 0
    sbatch = slurm.find_sbatch()
    p = pipeline.realize(plan, req)
    out = p.options.effective.get("output")
    if isinstance(out, str) and out.startswith(str(paths.state_dir())):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    # for the summary: the venv this login node's modules and platform would use
    fp, venv, _ = nodeenv.parse_fingerprint(nodeenv.run_prolog(p.node, "fingerprint"))

    is_array = "array" in p.options.effective
    copy = _save_copy(p.text)
    copy.chmod(0o755)
    job_copy: list[Path] = [copy]

    def announce(job: str) -> None:
        final = copy.with_name(f"{job}.sh")
        copy.rename(final)
        job_copy[0] = final
        print(job, flush=True)
        if not ns.parsable:
            pattern = str(p.options.effective.get("output", ""))
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
        if ns.wait:
            job, code = slurm.submit_wait(
                sbatch, copy, p.target.script_args, announce, stream=not is_array
            )
            if not ns.parsable:
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
