"""`uvslurm fingerprint`: the fingerprint of this shell/node and its components."""

from __future__ import annotations

import argparse
from pathlib import Path

from uvslurm import fpdiff, nodeenv, output, schema
from uvslurm.context import Context


def run(ctx: Context, ns: argparse.Namespace) -> int:
    settings = nodeenv.settings_for(ctx.project, ctx.config)
    fp, venv, comps = nodeenv.parse_fingerprint(nodeenv.run_prolog(settings, "fingerprint"))
    if ns.diff:
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
            _what_forced_a_new_key(venv, comps)
    return 0


def _what_forced_a_new_key(venv: str, comps: dict[str, str]) -> None:
    """A key whose venv is not built yet: the components that differ from the venv this
    project's jobs used last, the one they would otherwise have reused."""
    if Path(venv).is_dir():
        return
    last = fpdiff.latest_sibling(venv)
    if last is None:
        return
    path, other = last
    output.line(f"new key (not built yet); against the last used venv {path}:")
    for line in fpdiff.explain(other, comps) or ["no component differs (another uv.lock)"]:
        output.line(f"  {line}")
