"""`uvslurm show JOB`: what a job ran, from its manifest and what Slurm says now; `--script`:
the exact job script that sbatch got."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from uvslurm import manifest, output
from uvslurm.context import Context
from uvslurm.errors import UvslurmError


def _git(g: dict[str, Any] | None) -> str:
    if not g:
        return "not a git work tree"
    dirty = f"dirty, diff sha256 {str(g['diff_sha256'])[:16]}" if g["dirty"] else "clean"
    return f"{g['commit']} on {g['branch']} ({dirty})"


def _run_rows(run: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    code = "" if run.get("exit_code") is None else f", exit code {run['exit_code']}"
    rows = [(f"{prefix}state", f"{run['state']}{code}")]
    if run.get("nodes"):
        rows.append((f"{prefix}nodes", str(run["nodes"])))
    if run.get("started_at"):
        rows.append((f"{prefix}ran", f"{run['started_at']} to {run.get('ended_at') or '...'}"))
    if run.get("fingerprint"):
        # each component shortened: `--json` has them whole
        comps = " ".join(
            f"{k}={v if len(v) <= 24 else v[:23] + '…'}"
            for k, v in (run.get("components") or {}).items()
        )
        rows.append((f"{prefix}fingerprint", f"{run['fingerprint']} ({comps})"))
    if run.get("venv"):
        rows.append(
            (f"{prefix}venv", f"{run['venv']} ({run.get('ready')} in {run.get('ready_ms')} ms)")
        )
    if run.get("lock_moved"):
        rows.append((f"{prefix}note", "the project's uv.lock had changed when it started"))
    return rows


def run(ctx: Context, ns: argparse.Namespace) -> int:
    doc, task = manifest.load(ns.job)
    if ns.script:
        try:
            print(Path(doc["script"]).read_text(), end="")
        except OSError as e:
            raise UvslurmError(
                f"job {doc['job_id']}: its script copy is gone ({e.strerror})"
            ) from e
        return 0
    if ns.json:
        output.json(doc)
        return 0
    lock = doc["lock"]
    rows = [
        ("submitted", f"{doc['submitted_at']}: {shlex.join(doc['argv'])}"),
        ("in", str(doc["cwd"])),
        ("project", str(doc["project"])),
        ("git", _git(doc.get("git"))),
        ("uv.lock", f"sha256 {lock['sha256']}"),
        ("built from", lock.get("submitted_copy") or "the project's uv.lock when the job started"),
        (
            "options",
            " ".join(f"--{k}={v['value']} ({v['source']})" for k, v in doc["sbatch"].items()),
        ),
        ("versions", ", ".join(f"{k} {v}" for k, v in doc["versions"].items())),
        ("script", str(doc["script"])),
    ]
    if doc.get("resubmitted_from"):
        rows.append(("resubmits", str(doc["resubmitted_from"])))
    tasks = doc.get("tasks") or {}
    if task:
        rows += _run_rows(tasks.get(task) or manifest.run_of(None, None, None))
    elif tasks:
        for t, r in tasks.items():
            rows += _run_rows(r, prefix=f"task {t} ")
    elif doc.get("run"):
        rows += _run_rows(doc["run"])
    title = f"job {doc['job_id']}{'_' + task if task else ''}"
    output.summary(title, rows, stdout=True)
    return 0
