"""A manifest per job: what was submitted (written by `uvslurm submit`), what the job found on
its node and how it ended (records the job writes itself, see `_uvslurm_record` in
resources/prolog/main.sh), and what Slurm says now, merged when read. The schema is versioned
and documented in docs/reference/manifest.md.

Pure functions build, parse and merge; the few functions at the end read and write
`<state dir>/jobs/`: `<job>.json` (the submission), `<job>[_<task>].start` and `.end`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from uvslurm import paths, safety
from uvslurm.errors import UsageError, UvslurmError

SCHEMA = 1
# what users type: a job id, or an array task as <job>_<task>
JOB_ID = re.compile(r"^(?P<job>[0-9]+)(?:_(?P<task>[0-9]+))?$")


def parse_job_id(text: str) -> tuple[str, str]:
    """`123` or `123_4` -> (job, task or ""); UsageError for anything else."""
    m = JOB_ID.match(text.strip())
    if not m:
        raise UsageError(
            f"'{text}' is not a job id", "give a number such as 1234, or 1234_5 for an array task"
        )
    return m["job"], m["task"] or ""


# --- the submission's part (pure) ---------------------------------------------------------------


def submission(
    *,
    job_id: str,
    argv: Sequence[str],
    cwd: str,
    project: str,
    lock_root: str,
    options: Mapping[str, str | bool],
    sources: Mapping[str, str],
    target: Mapping[str, Any],
    versions: Mapping[str, str],
    git: Mapping[str, Any] | None,
    lock_sha256: str,
    pyproject_sha256: str,
    lock_dir: str,
    depot: str,
    snapshot: str = "",
    sync_args: Sequence[str],
    script: str,
    logs: Mapping[str, str],
    array: bool,
    submitted_at: float,
    resubmitted_from: str = "",
) -> dict[str, Any]:
    """The manifest as `uvslurm submit` writes it (schema SCHEMA)."""
    return {
        "schema": SCHEMA,
        "job_id": job_id,
        "array": array,
        "submitted_at": iso(submitted_at),
        "argv": list(argv),
        "cwd": cwd,
        "project": project,
        "workspace": lock_root,
        # a workspace member: the project's path in its workspace
        "member": os.path.relpath(project, lock_root) if project != lock_root else None,
        "target": dict(target),
        "sbatch": {
            k: {"value": v, "source": sources.get(k, "config")} for k, v in sorted(options.items())
        },
        "versions": dict(versions),
        "git": dict(git) if git else None,
        "lock": {
            "sha256": lock_sha256,
            "pyproject_sha256": pyproject_sha256,
            "submitted_copy": lock_dir,
        },
        "snapshot": snapshot or None,
        "depot": depot,
        "uv_sync_args": list(sync_args),
        "script": script,
        "logs": dict(logs),
        "resubmitted_from": resubmitted_from or None,
    }


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def git_facts(commit: str, branch: str, status: str, diff: bytes) -> dict[str, Any]:
    """What `git rev-parse HEAD`, `git rev-parse --abbrev-ref HEAD`, `git status --porcelain`
    and `git diff HEAD` said, as the manifest keeps it."""
    import hashlib

    dirty = bool(status.strip())
    return {
        "commit": commit.strip(),
        "branch": branch.strip(),
        "dirty": dirty,
        "diff_sha256": hashlib.sha256(diff).hexdigest() if dirty else None,
    }


def git_of(root: Path) -> dict[str, Any] | None:
    """The git facts of the work tree around `root` (None outside git, or without git)."""
    from uvslurm import proc

    def git(*args: str) -> str:
        return proc.run(["git", "-C", str(root), *args])

    try:
        commit = git("rev-parse", "HEAD")
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
        diff = git("diff", "HEAD").encode() if status.strip() else b""
    except UvslurmError:  # not a repository, no commit yet, no git
        return None
    return git_facts(commit, branch, status, diff)


# --- what the job records (pure) ----------------------------------------------------------------


def parse_record(text: str) -> dict[str, Any]:
    """A `.start` or `.end` record: key=value lines, then (start) the fingerprint's components
    after a `components:` line."""
    out: dict[str, Any] = {}
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line == "components:":
            comps = dict(c.split("=", 1) for c in lines[i + 1 :] if "=" in c)
            out["components"] = comps
            break
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    for key in ("ready_ms", "exit_code"):
        if str(out.get(key, "")).lstrip("-").isdigit():
            out[key] = int(out[key])
    if "time" in out:
        try:
            out["time"] = iso(float(out["time"]))
        except ValueError:
            del out["time"]
    if "lock_moved" in out:
        out["lock_moved"] = out["lock_moved"] == "1"
    return out


def run_of(
    start: Mapping[str, Any] | None, end: Mapping[str, Any] | None, slurm: Any | None
) -> dict[str, Any]:
    """One job's (or array task's) run: Slurm's word first (`slurm`: a slurm.JobInfo), then the
    job's own records. A job whose end is recorded but that Slurm has forgotten is COMPLETED or
    FAILED by its exit code; one that started and then went silent is UNKNOWN."""
    start, end = start or {}, end or {}
    state, exit_code = "", None
    if slurm is not None:
        state, exit_code = slurm.state, slurm.exit_code
    if exit_code is None and "exit_code" in end:
        exit_code = end["exit_code"]
    if not state:
        state = ("COMPLETED" if end.get("exit_code") == 0 else "FAILED") if end else "UNKNOWN"
    return {
        "state": state,
        "exit_code": exit_code,
        "elapsed": slurm.elapsed if slurm is not None else "",
        "nodes": (slurm.nodes if slurm is not None and slurm.nodes else start.get("nodes", "")),
        "started_at": start.get("time"),
        "ended_at": end.get("time"),
        "ready": start.get("ready"),
        "ready_ms": start.get("ready_ms"),
        "venv": start.get("venv"),
        "fingerprint": start.get("fingerprint"),
        "components": start.get("components"),
        "lock_sha256": start.get("lock_sha256"),
        "lock_moved": start.get("lock_moved"),
        "log": slurm.stdout if slurm is not None and slurm.stdout else None,
        "err_log": slurm.stderr if slurm is not None and slurm.stderr else None,
        "slurm_source": slurm.source if slurm is not None else None,
    }


def merged(
    doc: Mapping[str, Any],
    records: Mapping[str, tuple[dict[str, Any] | None, dict[str, Any] | None]],
    infos: Mapping[str, Any],
) -> dict[str, Any]:
    """The manifest with its runs: `run` for a job, `tasks` (by task id) for an array.
    `records`: id -> (start, end) as the job wrote them; `infos`: id -> slurm.JobInfo."""
    job = str(doc["job_id"])
    out = dict(doc)
    if not doc.get("array"):
        start, end = records.get(job, (None, None))
        out["run"] = run_of(start, end, infos.get(job))
        return out
    tasks: dict[str, dict[str, Any]] = {}
    ids = {i for i in [*records, *infos] if i.startswith(f"{job}_")}
    # numerically; tasks not started yet are one entry of their range ("2-5"), last
    for task_id in sorted(ids, key=lambda i: (len(i), i)):
        start, end = records.get(task_id, (None, None))
        tasks[task_id.split("_", 1)[1]] = {
            "job_id": task_id,
            **run_of(start, end, infos.get(task_id)),
        }
    out["tasks"] = tasks
    # the array as a whole while no task has started: Slurm lists it as one pending job
    whole = infos.get(job)
    out["run"] = run_of(None, None, whole) if whole is not None else None
    return out


def expand_log(pattern: str, job: str, task: str, name: str, user: str) -> str:
    """A log path pattern as sbatch expands it, for what the manifest knows (%j %A %a %x %u;
    %N, %n, %t, %s are the nodes' and are left as they are)."""
    # an array task's own job id (%j) is not known here
    subst = {"j": None if task else job, "A": job, "a": task, "x": name, "u": user, "%": "%"}

    def one(m: re.Match[str]) -> str:
        value = subst.get(m.group(2))
        return m.group(0) if value is None else value.rjust(int(m.group(1) or 0), "0")

    return re.sub(r"%(\d*)([jAaxu%])", one, pattern)


# --- files --------------------------------------------------------------------------------------


def jobs_dir() -> Path:
    return paths.state_dir() / "jobs"


def ensure_jobs_dir() -> Path:
    """`<state>/jobs`, made private if missing; refused when another user could write into it
    (a forged record there would be believed)."""
    d = jobs_dir()
    d.parent.mkdir(parents=True, exist_ok=True)
    if not d.exists():
        d.mkdir(mode=0o700, exist_ok=True)
    why = safety.why_not_private(d)
    if why:
        raise UvslurmError(f"not using {d} for job manifests: {why}", f"fix it or remove {d}")
    return d


def path_of(job: str) -> Path:
    return jobs_dir() / f"{job}.json"


def write(doc: Mapping[str, Any]) -> Path:
    """Write a submission's manifest, under a temporary name first."""
    d = ensure_jobs_dir()
    path = d / f"{doc['job_id']}.json"
    tmp = d / f".{doc['job_id']}.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.rename(path)
    return path


def read(job: str) -> dict[str, Any] | None:
    """The submission's manifest of `job` (None: none, or not readable as one)."""
    try:
        doc = json.loads(path_of(job).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == SCHEMA else None


def records(job: str) -> dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """id -> (start, end) of `job` and its array tasks, as their jobs wrote them."""
    d = jobs_dir()
    out: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    try:
        names = [n for n in os.listdir(d) if n.startswith(f"{job}.") or n.startswith(f"{job}_")]
    except OSError:
        return out
    for name in names:
        rid, _, kind = name.rpartition(".")
        if kind not in ("start", "end") or not JOB_ID.match(rid):
            continue
        try:
            rec = parse_record((d / name).read_text(errors="replace"))
        except OSError:
            continue
        start, end = out.get(rid, (None, None))
        out[rid] = (rec, end) if kind == "start" else (start, rec)
    return out


def all_docs(project: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The readable manifests (of the project at `project`, else all), the latest submission
    first, at most `limit`: read newest first and no further, months of jobs cost nothing."""
    try:
        names = os.listdir(jobs_dir())
    except OSError:
        return []
    ids = sorted(
        (int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit()), reverse=True
    )
    out: list[dict[str, Any]] = []
    for job in ids:
        if limit is not None and len(out) >= limit:
            break
        doc = read(str(job))
        if doc and (project is None or doc.get("project") == project):
            out.append(doc)
    return out


# --- manifests with what Slurm says now ---------------------------------------------------------


def load_many(docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`docs` merged with their jobs' records and one Slurm query for them all."""
    from uvslurm import slurm

    infos = slurm.query([str(d["job_id"]) for d in docs])
    return [merged(d, records(str(d["job_id"])), infos) for d in docs]


def load(text: str) -> tuple[dict[str, Any], str]:
    """The merged manifest of the job a user named (`123` or `123_4`), and the task named;
    UvslurmError when uvslurm has no manifest of it."""
    job, task = parse_job_id(text)
    doc = read(job)
    if doc is None:
        raise UvslurmError(
            f"no manifest of job {job} in {jobs_dir()}",
            "only jobs submitted by uvslurm submit have one; see `uvslurm jobs --all`",
        )
    full = load_many([doc])[0]
    if task and task not in full.get("tasks", {}) and not doc.get("array"):
        raise UsageError(f"job {job} is not an array job", f"use `{job}` without a task")
    return full, task


def entries(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A merged manifest as rows of `uvslurm jobs`: the job, or each task of an array (the
    array itself while no task is listed yet)."""
    name = doc.get("sbatch", {}).get("job-name", {}).get("value", "")
    base = {"project": doc.get("project"), "name": name, "submitted_at": doc.get("submitted_at")}
    runs: list[tuple[str, Mapping[str, Any]]] = []
    if doc.get("array") and doc.get("tasks"):
        runs = [(str(t["job_id"]), t) for t in doc["tasks"].values()]
    elif doc.get("run"):
        runs = [(str(doc["job_id"]), doc["run"])]
    else:  # an array that Slurm forgot and no task of which recorded anything
        runs = [(str(doc["job_id"]), run_of(None, None, None))]
    keep = ("state", "exit_code", "elapsed", "nodes", "ready", "venv", "fingerprint")
    return [{"job_id": i, **base, **{k: r.get(k) for k in keep}} for i, r in runs]


def save_script(text: str) -> Path:
    """A copy of a job script to submit, in `<state>/scripts` under a pending name (renamed
    `<job id>.sh` once sbatch gave the id), executable."""
    import time

    d = paths.state_dir() / "scripts"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"pending-{os.getpid()}-{time.time_ns()}.sh"
    path.write_text(text)
    path.chmod(0o755)
    return path
