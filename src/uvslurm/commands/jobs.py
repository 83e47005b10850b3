"""`uvslurm jobs`: this project's recent uvslurm jobs (`--all`: every project's), from their
manifests and what Slurm says of them now (sacct where accounting is, else scontrol)."""

from __future__ import annotations

import argparse

from uvslurm import manifest, output
from uvslurm.context import Context

_STYLE = {"COMPLETED": "green", "RUNNING": "cyan", "PENDING": "yellow"}


def run(ctx: Context, ns: argparse.Namespace) -> int:
    project = None if ns.all or ctx.project is None else str(ctx.project.root)
    docs = manifest.all_docs(project, max(ns.last, 0))
    rows = [e for doc in manifest.load_many(docs) for e in manifest.entries(doc)]
    if ns.json:
        output.json({"schema": manifest.SCHEMA, "project": project, "jobs": rows})
        return 0
    title = f"uvslurm jobs of {project}" if project else "uvslurm jobs (every project)"
    cols = [output.Col(n) for n in ("job", "name", "state", "elapsed", "exit", "ready", "nodes")]
    table = []
    for r in rows:
        state = str(r["state"])
        style = _STYLE.get(state, "red" if state != "UNKNOWN" else "")
        exit_code = "" if r["exit_code"] is None else str(r["exit_code"])
        table.append([r["job_id"], r["name"] or "", (state, style) if style else state,
                      r["elapsed"] or "", exit_code, r["ready"] or "", r["nodes"] or ""])  # fmt: skip
    output.table(title, cols, table)
    if not rows:
        output.line("no jobs" + ("; `uvslurm jobs --all` lists every project's" if project else ""))
    return 0
