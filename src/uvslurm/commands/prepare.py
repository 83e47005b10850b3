"""`uvslurm prepare`: run the prolog's venv lifecycle here and now."""

from __future__ import annotations

import argparse

from uvslurm import api, nodeenv
from uvslurm.context import Context


def run(ctx: Context, ns: argparse.Namespace) -> int:
    sync = nodeenv.sync_args(ns.extra, ns.all_extras, ns.group, ns.no_dev)
    # what uvslurm.prepare() does, with the prolog's lines on stderr
    node = api.node_settings(ctx.require_project(), ctx, sync, lock=False)
    print(nodeenv.run_prolog(node, "prepare").strip())
    return 0
