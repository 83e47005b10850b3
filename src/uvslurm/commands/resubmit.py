"""`uvslurm resubmit JOB`: the same job again from its manifest: the script copy that ran
(same lock, options, arguments), from the same directory; what cannot be the same (the
commit moved, the project's lock changed) is said."""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path
from typing import Any

from uvslurm import __version__, manifest, output, slurm
from uvslurm.context import Context
from uvslurm.errors import UvslurmError


def differences(doc: dict[str, Any], git_now: dict[str, Any] | None, lock_now: str,
                pyproject_now: str) -> list[str]:  # fmt: skip
    """What the job will not see as the original did (pure)."""
    out = []
    then = doc.get("git")
    if then and git_now:
        if then["commit"] != git_now["commit"]:
            out.append(
                f"the commit moved: {then['commit'][:12]} then, {git_now['commit'][:12]} now"
            )
        if then.get("diff_sha256") != git_now.get("diff_sha256"):
            out.append("the uncommitted changes differ from those at submission")
    elif then and not git_now:
        out.append("the project is no longer a git work tree")
    lock = doc["lock"]
    if lock_now != lock["sha256"]:
        copy = lock.get("submitted_copy")
        how = "the job builds from the copy submitted" if copy else "the job uses the lock of now"
        out.append(f"the project's uv.lock changed ({how})")
    if pyproject_now != lock.get("pyproject_sha256"):
        out.append("the project's pyproject.toml changed")
    if doc.get("versions", {}).get("uvslurm") != __version__:
        out.append(f"uvslurm is {__version__} now, {doc.get('versions', {}).get('uvslurm')} then")
    return out


def _sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def run(ctx: Context, ns: argparse.Namespace) -> int:
    job, _task = manifest.parse_job_id(ns.job)
    doc = manifest.read(job)
    if doc is None:
        raise UvslurmError(f"no manifest of job {job} in {manifest.jobs_dir()}",
                           "only jobs submitted by uvslurm submit can be resubmitted")  # fmt: skip
    script = Path(doc["script"])
    copy_dir = doc["lock"].get("submitted_copy")
    for what, path in (("script copy", script), ("submitted lock", Path(copy_dir or "."))):
        if not path.exists():
            raise UvslurmError(f"job {job} cannot be reproduced: its {what} {path} is gone")
    if not Path(doc["cwd"]).is_dir():
        raise UvslurmError(f"job {job} cannot be reproduced: {doc['cwd']} is gone")
    project = Path(doc["project"])
    if project.is_file():  # a PEP 723 script: its lock beside it, its metadata in it
        lock, pyproject, tree = project.with_name(project.name + ".lock"), project, project.parent
    else:  # a workspace member's lock and pyproject.toml are its workspace root's
        root = Path(doc.get("workspace") or project)
        lock, pyproject, tree = root / "uv.lock", root / "pyproject.toml", project
    git_now = manifest.git_of(tree)
    notes = differences(doc, git_now, _sha(lock), _sha(pyproject))
    sbatch = slurm.find_sbatch()
    copy = manifest.save_script(script.read_text())
    try:
        new = slurm.submit(sbatch, copy, doc["target"]["script_args"], cwd=doc["cwd"])
    except BaseException:
        copy.unlink(missing_ok=True)
        raise
    final = copy.with_name(f"{new}.sh")
    copy.rename(final)
    again = {**doc, "job_id": new, "submitted_at": manifest.iso(time.time()),
             "script": str(final), "git": git_now, "resubmitted_from": job}  # fmt: skip
    where = manifest.write(again)
    if ns.json:
        output.json({"job_id": new, "resubmitted_from": job, "manifest": str(where),
                     "lock_sha256": doc["lock"]["sha256"], "not_reproduced": notes})  # fmt: skip
        return 0
    print(new, flush=True)
    if not ns.parsable:
        output.summary(f"resubmitted job {job} as {new}",
                       [("uv.lock", f"sha256 {doc['lock']['sha256']}"), ("manifest", str(where))])  # fmt: skip
        for n in notes:
            output.warn(f"not reproduced: {n}")
    return 0
