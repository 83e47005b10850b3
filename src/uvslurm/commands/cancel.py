"""`uvslurm cancel JOB... | --all`: scancel jobs (and array tasks, `JOB_TASK`) of uvslurm's."""

from __future__ import annotations

import argparse

from uvslurm import manifest, output, slurm
from uvslurm.context import Context
from uvslurm.errors import UsageError


def run(ctx: Context, ns: argparse.Namespace) -> int:
    if bool(ns.jobs) == bool(ns.all):
        raise UsageError(
            "name the jobs to cancel, or give --all", "e.g. uvslurm cancel 1234 1235_2"
        )
    if ns.all:
        project = str(ctx.require_project().root)
        docs = manifest.load_many(manifest.all_docs(project))
        ids = sorted({str(d["job_id"]) for d in docs
                      for e in manifest.entries(d) if e["state"] in ("PENDING", "RUNNING",
                                                                      "CONFIGURING", "SUSPENDED")})  # fmt: skip
    else:
        ids = []
        for text in ns.jobs:
            job, task = manifest.parse_job_id(text)
            ids.append(f"{job}_{task}" if task else job)
    slurm.cancel(ids)
    if ns.json:
        output.json({"cancelled": ids})
    elif ids:
        output.line(f"cancelled {' '.join(ids)}")
    else:
        output.line("no unfinished jobs of this project")
    return 0
