"""`uvslurm fingerprint`: the fingerprint of this shell/node and its components."""

from __future__ import annotations

from pathlib import Path

from uvslurm import nodeenv, output, sources
from uvslurm.commands.prepare import node_settings
from uvslurm.errors import NoProject

# what each component means, for --explain
EXPLAIN = {
    "modules": "loaded environment modules (resolved names, sorted)",
    "modulefiles": "the modulefiles they came from (sorted)",
    "modulepath": "MODULEPATH",
    "arch": "CPU architecture",
    "cpu": "CPU vendor, family, model and feature flags",
    "glibc": "C library version",
    "os": "operating system id and version",
    "python": "Python the project requests",
    "uv": "uv version",
    "gpu": "NVIDIA driver (or none)",
    "sync": "uv selection flags (extras, groups)",
    "rebuild": "packages built from source per fingerprint",
}


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
        output.json({"fingerprint": fp, "venv": venv or None, "components": comps})
        return 0
    print(fp)
    if explain:
        rows = []
        for key, value in comps.items():
            shown = value if len(value) <= 120 or key != "cpu" else value[:117] + "..."
            rows.append([key, shown or "-", EXPLAIN.get(key, "extra variable")])
        cols = [output.Col("component"), output.Col("value", fold=True),
                output.Col("what it is", style="dim")]  # fmt: skip
        output.table(f"fingerprint {fp}", cols, rows, stdout=False)
        if venv:
            output.line(f"depot venv for this project: {venv}")
    return 0
