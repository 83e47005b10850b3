"""`uvslurm fingerprint`: the fingerprint of this shell/node and its components."""

from __future__ import annotations

import argparse

from uvslurm import nodeenv, output, schema
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
        output.json({"fingerprint": fp, "venv": venv or None, "components": comps})
        return 0
    print(fp)
    if ns.explain:
        rows = []
        for key, value in comps.items():
            shown = value if len(value) <= 120 or key != "cpu" else value[:117] + "..."
            meaning = schema.COMPONENTS.get(key, ("", "extra variable"))[1]
            rows.append([key, shown or "-", meaning])
        cols = [output.Col("component"), output.Col("value", fold=True),
                output.Col("what it is", style="dim")]  # fmt: skip
        output.table(f"fingerprint {fp}", cols, rows, stdout=False)
        if venv:
            output.line(f"depot venv for this project: {venv}")
    return 0
