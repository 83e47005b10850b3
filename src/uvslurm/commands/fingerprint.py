"""`uvslurm fingerprint`: the fingerprint of this shell/node and its components."""

from __future__ import annotations

import json
from pathlib import Path

from uvslurm import nodeenv, schema, sources
from uvslurm.commands.prepare import node_settings
from uvslurm.errors import NoProject


def _settings_outside_project() -> nodeenv.NodeSettings:
    return nodeenv.settings_for(None, sources.load(None, {}))


def run(
    as_json: bool, explain: bool, project_dir: str | None, cwd: Path, diff: str | None = None
) -> int:
    try:
        settings = node_settings(project_dir, cwd)
    except NoProject:
        if project_dir:
            raise
        settings = _settings_outside_project()
    fp, venv, comps = nodeenv.parse_fingerprint(nodeenv.run_prolog(settings, "fingerprint"))
    if diff:
        from uvslurm import fpdiff

        lines = fpdiff.explain(fpdiff.load_other(diff), comps)
        print("\n".join(lines) if lines else "same fingerprint")
        return 0
    if as_json:
        print(json.dumps({"fingerprint": fp, "venv": venv or None, "components": comps}, indent=2))
        return 0
    print(fp)
    if explain:
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
