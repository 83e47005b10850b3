"""The only place that runs sbatch, squeue, scontrol, sacct and scancel."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from uvslurm import proc, safety, sbatch_options
from uvslurm.errors import JobError, SubmitError, UvslurmError


def find_sbatch() -> str:
    found = shutil.which("sbatch")
    if not found:
        raise SubmitError(
            "sbatch not found on PATH",
            "run this on a login node of a Slurm cluster (or use --dry-run)",
        )
    return found


# bump when the cached form changes
_OPTIONS_CACHE_FORMAT = 1


def _probe_unlisted(sbatch: str, listed: dict[str, sbatch_options.Spec]) -> dict[str, Any]:
    """Options sbatch accepts without listing them in --help (22.05: --open-mode, --hint,
    --prefer, ...): each name of simple-slurm's list that --help lacks is shown to sbatch with
    an empty script, which it refuses after parsing its options: "unrecognized option" is
    the answer we want. A name that abbreviates a listed option (`--extra` for
    `--extra-node-info`) proves nothing (getopt accepts prefixes) and is left out."""
    found: dict[str, Any] = {}
    for name, spec in sbatch_options.simple_slurm_specs().items():
        if name in listed or any(n.startswith(name) for n in listed):
            continue
        arg = f"--{name}" if spec.arity == "flag" else f"--{name}=1"
        p = proc.probe([sbatch, arg, "--test-only", "/dev/null"], timeout=10)
        if p is not None and "unrecognized option" not in p.stderr:
            found[name] = {"short": spec.short, "arity": spec.arity, "help": ""}
    return found


def site_options(run: bool = True) -> dict[str, sbatch_options.Spec] | None:
    """The options this site's sbatch accepts (None without sbatch, or when its --help says
    nothing we can read): its --help and --usage parsed, and the options it accepts without
    listing them. Computed once per sbatch executable (path, size and time: a new version is
    a new file) and kept in the user cache dir."""
    sbatch = shutil.which("sbatch")
    if not sbatch:
        return None
    import hashlib
    import json
    import os

    from uvslurm import paths

    real = os.path.realpath(sbatch)
    try:
        st = os.stat(real)
    except OSError:
        return None
    ident = f"{_OPTIONS_CACHE_FORMAT}\0{real}\0{st.st_size}\0{st.st_mtime_ns}"
    key = hashlib.sha256(ident.encode()).hexdigest()[:20]
    cache = paths.user_dir("cache") / "sbatch-options" / f"{key}.json"
    raw = None
    # what another user could have put there is not read (it decides what is refused)
    if not safety.why_not_private(cache.parent) and not safety.why_not_private(cache):
        try:
            raw = json.loads(cache.read_text())
        except (OSError, ValueError):
            raw = None
    if not isinstance(raw, dict) or raw.get("sbatch") != real:
        if not run:
            return None
        helped = proc.probe([sbatch, "--help"], timeout=10)
        usage = proc.probe([sbatch, "--usage"], timeout=10)
        text = (
            (helped.stdout if helped else "") + "\n" + _usage_as_help(usage.stdout if usage else "")
        )
        parsed = sbatch_options.parse_help(text)
        if len(parsed) < 10:  # not a help text we understand: keep the fallback
            return None
        options = {
            n: {"short": s.short, "arity": s.arity, "help": s.help} for n, s in parsed.items()
        }
        options.update(_probe_unlisted(sbatch, parsed))
        version = proc.probe([sbatch, "--version"], timeout=10)
        raw = {
            "sbatch": real,
            "version": version.stdout.strip() if version else "",
            "options": options,
        }
        _write_private(cache, json.dumps(raw, indent=1, sort_keys=True))
    return {
        n: sbatch_options.Spec(o.get("short"), o.get("arity", "value"), o.get("help", ""))
        for n, o in raw.get("options", {}).items()
    }


def _usage_as_help(usage: str) -> str:
    """`sbatch --usage` (`[--mem-bind=...] [--hold]`) as lines parse_help reads: it names a
    few options --help leaves out (--mem-bind, --network in 22.05)."""
    import re

    lines = []
    for m in re.finditer(r"\[(-[A-Za-z] [^\]]*|--[A-Za-z][A-Za-z0-9-]*(\[?=)?[^\]]*)\]", usage):
        tok = m.group(1)
        if tok.startswith("--"):
            lines.append("      " + tok.split()[0])
    return "\n".join(lines)


def _write_private(path: Path, text: str) -> None:
    """Write `path` atomically (a reader sees the old file or the new one), in a directory
    made for this user alone. A cache: failing to write it costs only the next parse."""
    import contextlib
    import os
    import tempfile

    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if safety.why_not_private(path.parent):
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)


_installed = False


def use_site_options() -> None:
    """Make the site's sbatch vocabulary the one uvslurm validates against (once per process)."""
    global _installed
    if not _installed:
        _installed = True
        cached = site_options(run=False)
        if cached is not None:
            sbatch_options.use_site(cached)
        else:
            sbatch_options.use_site_later(site_options)


def _job_id(line: str) -> str:
    # --parsable prints "jobid" or "jobid;cluster"
    return line.strip().split(";", 1)[0]


def submit(sbatch: str, script: Path, script_args: Sequence[str], cwd: str | None = None) -> str:
    """Submit (from `cwd`, the job's working directory) and return the job id."""
    try:
        out = proc.run([sbatch, "--parsable", str(script), *script_args], cwd=cwd)
    except proc.CommandFailed as e:
        raise SubmitError(f"sbatch refused the job: {e.last_line}") from e
    job = _job_id(out)
    if not job:
        raise SubmitError("sbatch printed no job id")
    return job


def log_path(job: str) -> str | None:
    """StdOut= of the job, with Slurm's patterns already expanded by slurmctld."""
    try:
        out = proc.run(["scontrol", "show", "job", "-o", job])
    except (proc.CommandFailed, UvslurmError):
        return None
    for field in out.split():
        if field.startswith("StdOut="):
            return field[len("StdOut=") :]
    return None


def task_states(job: str) -> list[tuple[str, str, str]]:
    """(array task id, state, exit code) of every task of an array job, as scontrol reports
    them (ended tasks stay visible for MinJobAge seconds)."""
    try:
        out = proc.run(["scontrol", "show", "job", "-o", job])
    except (proc.CommandFailed, UvslurmError):
        return []
    tasks = []
    for line in out.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "ArrayTaskId" in fields:
            tasks.append(
                (fields["ArrayTaskId"], fields.get("JobState", "?"), fields.get("ExitCode", "?"))
            )
    return sorted(tasks, key=lambda t: (len(t[0]), t[0]))


def _pump(f: TextIO | None, path: str | None, sink: TextIO) -> TextIO | None:
    if f is None and path and Path(path).exists():
        f = open(path, errors="replace")  # noqa: SIM115 - kept open while the job runs
    if f is not None:
        chunk = f.read()
        if chunk:
            sink.write(chunk)
            sink.flush()
    return f


def submit_wait(
    sbatch: str,
    script: Path,
    script_args: Sequence[str],
    on_job_id: Callable[[str], None],
    stream: bool = True,
) -> tuple[str, int]:
    """`sbatch --wait`: returns (job id, the job's exit code), streaming the job's log to stderr
    while it runs. `on_job_id(job)` is called as soon as the id is known."""
    p = proc.Stream([sbatch, "--parsable", "--wait", str(script), *script_args])
    job = _job_id(p.readline())
    if not job:
        err = p.finish()[1].strip()
        raise SubmitError(f"sbatch refused the job: {err.splitlines()[-1] if err else 'no job id'}")
    on_job_id(job)
    path = log_path(job) if stream else None
    f: TextIO | None = None
    try:
        while p.running():
            f = _pump(f, path, sys.stderr)
            time.sleep(0.5)
        f = _pump(f, path, sys.stderr)
    finally:
        if f is not None:
            f.close()
    code, rest = p.finish()
    if code != 0 and "error" in rest.lower() and "exit" not in rest.lower():
        sys.stderr.write(rest)
    return job, code


# --- what Slurm says of jobs, and scancel ------------------------------------------------------

ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL",
                   "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"})  # fmt: skip
_FIELD = re.compile(r"(?:^| )([A-Za-z][A-Za-z0-9/:_]*)=")


class JobInfo(NamedTuple):
    """One job (or one array task, `<array job>_<task>`) as Slurm reports it."""

    job_id: str
    name: str = ""
    state: str = ""  # Slurm's word: PENDING, RUNNING, COMPLETED, CANCELLED, ...
    exit_code: int | None = None  # the program's code (None: not ended, or not known)
    signal: int = 0
    elapsed: str = ""
    nodes: str = ""
    stdout: str = ""
    stderr: str = ""
    array_job: str = ""  # the array's job id, for a task
    source: str = "scontrol"  # or "sacct"

    @property
    def ended(self) -> bool:
        return self.state in ENDED


def parse_scontrol(text: str) -> list[dict[str, str]]:
    """`scontrol show job -o` output -> one dict of fields per line. Values run to the next
    ` Key=` (a job name may hold blanks)."""
    out = []
    for line in text.splitlines():
        marks = list(_FIELD.finditer(line))
        fields = {}
        for m, nxt in zip(marks, [*marks[1:], None], strict=True):
            fields[m.group(1)] = line[m.end() : nxt.start() if nxt else len(line)].strip()
        if "JobId" in fields:
            out.append(fields)
    return out


def _exit(text: str) -> tuple[int | None, int]:
    code, _, sig = text.partition(":")
    if not code.isdigit():
        return None, 0
    return int(code), int(sig) if sig.isdigit() else 0


def info_from_scontrol(fields: dict[str, str]) -> JobInfo:
    task = fields.get("ArrayTaskId", "")
    array = fields.get("ArrayJobId", "")
    job_id = f"{array}_{task}" if task else fields["JobId"]
    state = fields.get("JobState", "")
    code, sig = _exit(fields.get("ExitCode", "")) if state in ENDED else (None, 0)
    nodes = fields.get("NodeList", "")
    return JobInfo(
        job_id=job_id,
        name=fields.get("JobName", ""),
        state=state,
        exit_code=code,
        signal=sig,
        elapsed=fields.get("RunTime", ""),
        nodes="" if nodes == "(null)" else nodes,
        stdout=fields.get("StdOut", ""),
        stderr=fields.get("StdErr", ""),
        array_job=array if task else "",
    )


def parse_sacct(text: str) -> list[JobInfo]:
    """`sacct -n -P -X -o JobID,JobName,State,ExitCode,Elapsed,NodeList` -> JobInfo each."""
    out = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) != 6:
            continue
        job_id, name, state, exit_code, elapsed, nodes = parts
        state = state.split()[0] if state else ""  # "CANCELLED by 0"
        ended = state in ENDED
        code, sig = _exit(exit_code) if ended else (None, 0)
        array = job_id.split("_", 1)[0] if "_" in job_id else ""
        out.append(
            JobInfo(
                job_id,
                name,
                state,
                code,
                sig,
                elapsed,
                "" if nodes == "None assigned" else nodes,
                array_job=array,
                source="sacct",
            )
        )
    return out


def wanted(info: JobInfo, ids: Sequence[str]) -> bool:
    """Is `info` one of `ids`, or a task of an array job among them?"""
    return info.job_id in ids or (bool(info.array_job) and info.array_job in ids)


def query(ids: Sequence[str]) -> dict[str, JobInfo]:
    """What Slurm knows of `ids` (job ids, or `<job>_<task>`): every task of an array job
    named by its id. scontrol first (the controller keeps ended jobs MinJobAge seconds), then
    sacct for the rest when accounting is there; ids neither knows are absent."""
    if not ids:
        return {}
    found: dict[str, JobInfo] = {}
    try:
        text = proc.run(["scontrol", "show", "job", "-o"])
    except (proc.CommandFailed, UvslurmError):
        text = ""
    for fields in parse_scontrol(text):
        info = info_from_scontrol(fields)
        if wanted(info, ids):
            found[info.job_id] = info
    missing = [
        i for i in ids if i not in found and not any(f.array_job == i for f in found.values())
    ]
    if missing:
        fmt = "JobID,JobName,State,ExitCode,Elapsed,NodeList"
        try:
            acct = proc.run(["sacct", "-n", "-P", "-X", "-o", fmt, "-j", ",".join(missing)])
        except (proc.CommandFailed, UvslurmError):
            acct = ""  # no accounting here ("Slurm accounting storage is disabled")
        for info in parse_sacct(acct):
            if wanted(info, missing):
                found.setdefault(info.job_id, info)
    return found


def cancel(ids: Sequence[str]) -> None:
    """scancel `ids` (job ids, or `<job>_<task>`)."""
    if not ids:
        return
    try:
        proc.run(["scancel", *ids])
    except proc.CommandFailed as e:
        raise JobError(f"scancel refused: {e.last_line}", "check the job ids") from e


def version() -> str:
    """`sbatch --version`'s words after the name ("22.05.8"), or "" when it cannot run."""
    try:
        return proc.run([find_sbatch(), "--version"]).split()[-1]
    except (proc.CommandFailed, UvslurmError, IndexError):
        return ""


def node_arches(partitions: Sequence[str]) -> set[str]:
    """The CPU architectures (`Arch=` of `scontrol show node`) of the nodes in `partitions`
    (none named: the default partition's), where a job may run. Empty when scontrol does not
    answer or the nodes do not say (a node not yet registered reports `Arch=(null)`)."""
    try:
        nodes = proc.run(["scontrol", "--oneliner", "show", "node"])
        wanted = set(partitions)
        if not wanted:
            parts = proc.run(["scontrol", "--oneliner", "show", "partition"])
            wanted = {
                m[1] for m in re.finditer(r"^PartitionName=(\S+).*\bDefault=YES\b", parts, re.M)
            }
    except (proc.CommandFailed, UvslurmError):
        return set()
    arches = set()
    for line in nodes.splitlines():
        arch = re.search(r"\bArch=(\S+)", line)
        part = re.search(r"\bPartitions=(\S*)", line)
        if arch and arch[1] != "(null)" and part and wanted & set(part[1].split(",")):
            arches.add(arch[1])
    return arches


def live_jobs() -> tuple[str, set[str]] | None:
    """(this cluster's name, the ids of this user's jobs that Slurm still has: queued, running,
    suspended or completing; an array job's own id and each task's), or None when Slurm cannot
    be asked (no squeue here, or the controller does not answer). For `uvslurm depot gc/rm`:
    a job holds its depot venv by naming itself beside it (lib.sh: _uvslurm_jobhold)."""
    try:
        text = proc.run(["squeue", "-h", "-u", str(os.getuid()), "-o", "%A %F"])
        config = proc.run(["scontrol", "show", "config"])
    except (proc.CommandFailed, UvslurmError):
        return None
    cluster = next(
        (line.split("=", 1)[1].strip() for line in config.splitlines()
         if line.split("=", 1)[0].strip() == "ClusterName" and "=" in line),
        "",
    )  # fmt: skip
    return cluster, {word for word in text.split() if word.isdigit()}
