"""`uvslurm submit`: render a self-contained job script (uvslurm.pipeline) and hand it to
sbatch."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from uvslurm import nodeenv, output, paths, pipeline, sbatch_options, slurm
from uvslurm.context import Context
from uvslurm.errors import UsageError, UvslurmError


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
        sync_args=nodeenv.selection(ns),
        python=ns.python,
        snapshot=ns.snapshot,
        argv=getattr(ns, "argv", ()),
    )


def _log_of(job: str, pattern: str, name: str, is_array: bool) -> str:
    """A log's path with the job's id and name in it (an array's per-task %a stays)."""
    import getpass

    from uvslurm import manifest

    return manifest.expand_log(pattern, job, "%a" if is_array else "", name, getpass.getuser())


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
    # what only a submission needs (a dry run's budget is 100 ms, docs/performance.md)
    from uvslurm import api, manifest

    sbatch = slurm.find_sbatch()
    # the job records its start and end beside its manifest
    node = plan.node._replace(record=str(manifest.ensure_jobs_dir()))
    p = pipeline.realize(plan._replace(node=node), req)
    submitted = time.time()
    facts = api.submission_facts(p)
    out = p.options.effective.get("output")
    if isinstance(out, str) and out.startswith(str(paths.state_dir())):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    # for the summary: the venv this login node's modules and platform would use
    fp, venv, _ = nodeenv.parse_fingerprint(nodeenv.run_prolog(p.node, "fingerprint"))

    is_array = "array" in p.options.effective
    copy = manifest.save_script(p.text)
    job_copy: list[Path] = [copy]

    def announce(job: str) -> None:
        final = copy.with_name(f"{job}.sh")
        copy.rename(final)
        job_copy[0] = final
        doc = api.job_manifest(
            job, p, ns.profile, getattr(ns, "argv", []), ctx, final, submitted, facts
        )
        try:
            where = str(manifest.write(doc))
        except (OSError, UvslurmError) as e:  # submitted all the same: said, not fatal
            where = ""
            output.warn(f"job {job}: its manifest could not be written ({e})")
        if ns.json:
            output.json(
                {
                    "job_id": job,
                    "logs": {
                        k: _log_of(job, v, str(p.options.effective.get("job-name", "")), is_array)
                        for k, v in doc["logs"].items()
                    },
                    "manifest": where,
                    "script": str(final),
                    "project": str(p.project.root),
                    "venv": venv,
                    "fingerprint": fp,
                    "lock_sha256": p.node.lock_hash,
                }
            )
            sys.stdout.flush()
            return
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
                    ("project", p.project.ident),
                    ("depot venv", f"{venv} (for this login node's fingerprint)"),
                    ("fingerprint", fp),
                ],
            )

    try:
        if ns.wait:
            job, code = slurm.submit_wait(
                sbatch, copy, p.target.script_args, announce, stream=not is_array
            )
            if not ns.parsable and not ns.json:
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
