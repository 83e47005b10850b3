"""Job start, cold build, cold node start and submit latency, against plain uv in the same run.

No Slurm needed: the job script is run by bash as a compute node would run it (the prolog is the
same there). Each part alternates uvslurm and uv run by run, so that drift hits both alike.

  warm start       the rendered job script (prolog + `uv run --no-sync`) on a ready depot venv,
                   in a job, vs the plain job script a user writes without uvslurm (export
                   UV_PROJECT_ENVIRONMENT, cd, `uv run --no-sync`), `uv run --no-sync` and
                   `uv run --frozen` on the same venv
  cold build       the prolog building the depot venv (without and with the image) vs
                   `uv sync --frozen` (copy mode) into a fresh directory on the depot's filesystem
  cold node start  the prolog placing a ready depot venv onto node-local disk, by copying the
                   directory or unpacking the image, vs `uv sync --frozen` (copy mode) from the
                   warm cache into the same disk
  dry-run          `uvslurm submit --dry-run` end to end
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from functools import partial

from benchmarks.common import Bench, Sample, log, ms, run


def warm_start(b: Bench, runs: int) -> dict[str, Sample]:
    """In a job (SLURM_JOB_ID as Slurm sets it: a job's warm start is answered by the memo that
    its first start wrote), against the plain job script of uv#7642 run the same way."""
    depot = b.work / "depot"
    venv = b.prolog(depot)
    script = b.work / "job.sh"
    script.write_text(
        b.uvslurm("submit", "--dry-run", "--no-node-local", "--", "python", "-c", "pass")
    )
    plain = b.work / "plain.sh"
    plain.write_text(
        f"#!/bin/bash\nexport UV_PROJECT_ENVIRONMENT={shlex.quote(str(venv))}\n"
        f"cd {shlex.quote(str(b.proj))}\nuv run --no-sync python -c pass\n"
    )
    job = {**b.env, "SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "1"}
    uenv = {**b.env, "UV_PROJECT_ENVIRONMENT": str(venv)}
    # uv reads the certificates these name at every `uv run`, and the job script spares it
    # that (docs/design.md, "uv run without the job's certificates"): both scripts again
    # without them show the prolog's own cost
    certs = [k for k in TLS if b.env.get(k)]
    bare = {k: v for k, v in job.items() if k not in TLS}
    res = {"job script": Sample(), "plain job script": Sample(), "uv run --no-sync": Sample(),
           "uv run --frozen": Sample(), "job script, no certificates": Sample(),
           "plain job script, no certificates": Sample()}  # fmt: skip
    for i in range(runs + 1):  # the first round warms the page cache and is dropped
        t = [
            ms(lambda: run(["bash", str(script)], cwd=b.proj, env=job)),
            ms(lambda: run(["bash", str(plain)], cwd=b.proj, env=job)),
            ms(
                lambda: run(
                    ["uv", "run", "--no-sync", "python", "-c", "pass"], cwd=b.proj, env=uenv
                )
            ),
            ms(
                lambda: run(["uv", "run", "--frozen", "python", "-c", "pass"], cwd=b.proj, env=uenv)
            ),
        ]
        if certs:
            t.append(ms(lambda: run(["bash", str(script)], cwd=b.proj, env=bare)))
            t.append(ms(lambda: run(["bash", str(plain)], cwd=b.proj, env=bare)))
        if i:
            for s, v in zip(res.values(), t, strict=False):
                s.values.append(v)
    if not certs:
        for k in ("job script, no certificates", "plain job script, no certificates"):
            res[k].why = f"the rows above ran without {' or '.join(TLS)} already"
    return res


TLS = ("SSL_CERT_DIR", "SSL_CERT_FILE")


IMAGES = {"directory": "none", "image": "tar.zst", "squashfs": "squashfs"}


def cold_build(b: Bench, runs: int) -> dict[str, Sample]:
    """A first job of this lock and module set: nothing in the depot for it yet (the machine
    facts are, as after any earlier job on the node)."""
    res = {"depot": Sample(), "depot, image": Sample(), "uv sync": Sample()}
    depots = {"depot": b.work / "depot-cold", "depot, image": b.work / "depot-cold-img"}
    for i in range(runs):
        for what, depot in depots.items():
            shutil.rmtree(depot / b.project_id, ignore_errors=True)
            image = "tar.zst" if "image" in what else "none"
            res[what].values.append(ms(partial(b.prolog, depot, image=image)))
        d = b.work / f"uvsync-{i}"
        res["uv sync"].values.append(ms(partial(b.uv_sync_copy, d)))
        shutil.rmtree(d)
    return res


def cold_node(b: Bench, runs: int) -> dict[str, Sample]:
    """A node that has not run this venv yet: the depot holds it, node-local disk does not.
    Three depots: built with `image = "none"`, `"tar.zst"` and `"squashfs"`. The squashfs image
    is mounted (where FUSE works) by a job script's prolog, then unmounted as the script ends."""
    depots = {"directory": b.work / "depot-node", "image": b.work / "depot-node-img",
              "squashfs": b.work / "depot-node-sq"}  # fmt: skip
    for what, depot in depots.items():
        b.prolog(depot, image=IMAGES[what])
    res = {"directory": Sample(), "image": Sample(), "squashfs": Sample(), "uv sync": Sample()}
    for i in range(runs):
        for what, depot in depots.items():
            base = b.local / what
            base.mkdir(exist_ok=True)
            shutil.rmtree(base / f"uvslurm-{os.getuid()}", ignore_errors=True)
            env = b.prolog_env(depot, str(base), IMAGES[what])
            if what == "squashfs":
                if res[what].why:
                    continue
                env["UVSLURM_MODE"] = "activate"  # as in a job: a mount lasts for the script
                argv = ["bash", "-c", '. "$0"', str(b.prolog_sh)]
            else:
                argv = ["bash", str(b.prolog_sh)]
            t = time.perf_counter()
            log_lines = run(argv, env=env)
            took = (time.perf_counter() - t) * 1000
            if what == "squashfs" and "uvslurm: mounted the image" not in log_lines:
                # the prolog fell back to unpacking (no squashfuse, no usable /dev/fuse): that
                # is not the figure this row promises
                last = log_lines.strip().splitlines()[-1] if log_lines.strip() else "no log"
                res[what] = Sample(why=f"the image was not mounted ({last})")
                continue
            res[what].values.append(took)
        d = b.local / f"uvsync-{i}"
        res["uv sync"].values.append(ms(partial(b.uv_sync_copy, d)))
        shutil.rmtree(d)
    return res


def dry_run(b: Bench, runs: int) -> Sample:
    """As an installed uvslurm starts: from its compiled bytecode (pip compiles it when it
    installs; else the first run writes it). Under `PYTHONDONTWRITEBYTECODE` (the dev shell
    sets it) every run would compile each module it imports, ~60 ms here, which no user's
    `uvslurm` pays: the bytecode goes to a prefix in the work directory (not the checkout),
    written by the first, untimed run."""
    argv = [sys.executable, "-m", "uvslurm", "submit", "--dry-run", "--", "python"]
    env = {k: v for k, v in b.env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(b.work / "pycache")
    run(argv, cwd=b.proj, env=env)
    return Sample([ms(lambda: run(argv, cwd=b.proj, env=env)) for _ in range(runs)])


def measure(b: Bench, runs: int) -> dict[str, dict[str, Sample]]:
    log(f"warm job start ({runs} runs)")
    warm = warm_start(b, runs)
    n = max(3, runs // 4)
    log(f"cold build ({n} runs)")
    cold = cold_build(b, n)
    log(f"cold node start ({n} runs)")
    node = cold_node(b, n)
    log(f"submit --dry-run ({runs} runs)")
    return {"warm": warm, "cold": cold, "node": node, "dry-run": {"": dry_run(b, runs)}}
