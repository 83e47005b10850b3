"""`uvslurm prepare`: run the prolog's venv lifecycle here and now."""

from __future__ import annotations

import argparse

from uvslurm import nodeenv, pipeline
from uvslurm.context import Context


def run(ctx: Context, ns: argparse.Namespace) -> int:
    project = ctx.require_project()
    sync = nodeenv.sync_args(ns.extra, ns.all_extras, ns.group, ns.no_dev)
    node = nodeenv.settings_for(project, ctx.config, sync)
    lock = project.lock.read_bytes() if project.lock.is_file() else None
    node = pipeline.with_sources(pipeline.with_lock(node, lock), project, lock, download=False)
    print(nodeenv.run_prolog(node, "prepare").strip())
    return 0
