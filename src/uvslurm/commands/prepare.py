"""`uvslurm prepare`: run the prolog's venv lifecycle here and now."""

from __future__ import annotations

import argparse

from uvslurm import nodeenv, pipeline
from uvslurm.context import Context


def run(ctx: Context, ns: argparse.Namespace) -> int:
    req = pipeline.Request(
        locked=ns.locked, frozen=ns.frozen, sync_args=nodeenv.selection(ns), python=ns.python
    )
    pipeline.check_request(req)
    project = ctx.require_project()
    node = nodeenv.settings_for(project, ctx.config, req.sync_args, req.python)
    # the lock `uv run` would run with: a stale one is relocked (refused with --locked)
    lock = pipeline.checked_lock(node, project, req)
    node = pipeline.with_sources(pipeline.with_lock(node, lock), project, lock, download=False)
    print(nodeenv.run_prolog(node, "prepare").strip())
    return 0
