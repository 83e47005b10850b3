"""`uvslurm fingerprint`: the fingerprint of this shell/node and its components."""

from __future__ import annotations

import argparse
import json

from uvslurm import nodeenv, schema
from uvslurm.context import Context


def run(ctx: Context, ns: argparse.Namespace) -> int:
    settings = nodeenv.settings_for(ctx.project, ctx.config)
    fp, venv, comps = nodeenv.parse_fingerprint(nodeenv.run_prolog(settings, "fingerprint"))
    if ns.diff:
        from uvslurm import fpdiff

        lines = fpdiff.explain(fpdiff.load_other(ns.diff), comps)
        print("\n".join(lines) if lines else "same fingerprint")
        return 0
    if ns.json:
        print(json.dumps({"fingerprint": fp, "venv": venv or None, "components": comps}, indent=2))
        return 0
    print(fp)
    if ns.explain:
        from rich.markup import escape
        from rich.table import Table

        from uvslurm.output import console

        table = Table(title=f"fingerprint {fp}", title_justify="left")
        table.add_column("component")
        table.add_column("value", overflow="fold")
        table.add_column("what it is", style="dim")
        for key, value in comps.items():
            shown = value if len(value) <= 120 or key != "cpu" else value[:117] + "..."
            meaning = schema.COMPONENTS.get(key, ("", "extra variable"))[1]
            table.add_row(escape(key), escape(shown or "-"), meaning)
        console().print(table)
        if venv:
            console().print(f"depot venv for this project: {escape(venv)}")
    return 0
