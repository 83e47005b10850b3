"""What every benchmark part shares: timing, one real uv project, the prolog's environment."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from uvslurm import prolog
from uvslurm.nodeenv import project_id

REPO = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(f"benchmarks: {msg}", file=sys.stderr, flush=True)


def ms(f: Callable[[], object]) -> float:
    t = time.perf_counter()
    f()
    return (time.perf_counter() - t) * 1000


def run(argv: list[str], **kw: object) -> str:
    """Run quietly and return its stderr (the prolog's log lines); a failure shows it."""
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise RuntimeError(f"{argv} exited {p.returncode}:\n{p.stderr}")
    return str(p.stderr)


def output(argv: list[str], **kw: object) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise RuntimeError(f"{argv} exited {p.returncode}:\n{p.stderr}")
    return str(p.stdout)


@dataclass
class Sample:
    """Repeated measurements of one thing (milliseconds, or a count)."""

    values: list[float] = field(default_factory=list)
    # why there are none: what was to be measured did not happen (a squashfs image that was
    # not mounted); the figure is then not reported, rather than one of something else
    why: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> str:
        return f"{min(self.values):.1f}\N{EN DASH}{max(self.values):.1f}"


def files_in(path: Path) -> int:
    return sum(len(f) for _, _, f in os.walk(path))


@dataclass
class Bench:
    """One locked uv project in a private work directory, with uvslurm's config, state and
    depot kept there too (nothing of the user's is read or written), plus a directory on
    node-local disk to place venvs onto."""

    work: Path
    proj: Path
    local: Path
    deps: str
    env: dict[str, str]
    # a copy taken at the start, so that edits to the checkout during a run do not mix versions
    prolog_sh: Path

    @property
    def project_id(self) -> str:
        return project_id(str(self.proj))

    def prolog_env(
        self, depot: Path, node_local: str = "never", image: str = "none"
    ) -> dict[str, str]:
        """The prolog's inputs as `uvslurm prepare` passes them (it prints the venv path)."""
        return {**self.env, "UVSLURM_PROJECT": str(self.proj), "UVSLURM_PROJECT_ID": self.project_id,
                "UVSLURM_DEPOT": str(depot), "UVSLURM_MODE": "prepare", "UVSLURM_NODE_LOCAL": node_local,
                "UVSLURM_PYTHON": "3.11", "UVSLURM_IMAGE": image}  # fmt: skip

    def prolog(self, depot: Path, node_local: str = "never", image: str = "none") -> Path:
        env = self.prolog_env(depot, node_local, image)
        return Path(output(["bash", str(self.prolog_sh)], env=env).strip())

    def uvslurm(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return output([sys.executable, "-m", "uvslurm", *args], cwd=self.proj, env=env or self.env)

    def uv_sync_copy(self, venv: Path) -> None:
        """uv's own way to make the venv: `uv sync --frozen` in copy mode, from the warm cache."""
        env = {**self.env, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_LINK_MODE": "copy"}
        run(["uv", "sync", "-q", "--frozen"], cwd=self.proj, env=env)

    def cleanup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.local, ignore_errors=True)


def make_bench(
    deps: str, node_local: str, name: str = "bench", root: str = "/var/tmp", cache: str = ""
) -> Bench:
    """A fresh `uv init --app` project with `deps`, locked (its packages land in uv's cache),
    in a work directory under `root` (the shared filesystem: project, depots), with uv's cache
    in `cache` when given."""
    work = Path(tempfile.mkdtemp(prefix="uvslurm-bench-", dir=root))
    local = Path(tempfile.mkdtemp(prefix="uvslurm-bench-", dir=node_local))
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update({
        "SCRATCH": str(work / "scratch"),
        "UVSLURM_DEPOT": str(work / "depot"),
        "XDG_CONFIG_HOME": str(work / "config"),
        "XDG_STATE_HOME": str(work / "state"),
        "XDG_CACHE_HOME": str(work / "cache"),
        "UVSLURM_SITE_CONFIG": "/dev/null",  # no site file (one that is missing is an error)
        # uvslurm (for the shell hook) on PATH, as an installed CLI would be
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })  # fmt: skip
    for var in ("UVSLURM_UV", "UVSLURM_NODE_LOCAL", "UVSLURM_IMAGE", "UV_PROJECT_ENVIRONMENT"):
        env.pop(var, None)
    if cache:
        env["UV_CACHE_DIR"] = cache
    proj = work / "proj"
    proj.mkdir()
    run(["uv", "init", "-q", "--app", "--no-package", "--name", name, "--python", "3.11",
         "--no-workspace", "."], cwd=proj, env=env)  # fmt: skip
    run(["uv", "add", "-q", "--no-sync", *deps.split()], cwd=proj, env=env)
    run(["uv", "lock", "-q"], cwd=proj, env=env)
    # the prolog as job scripts hold it: its sections joined
    prolog_sh = work / "prolog.sh"
    prolog_sh.write_text("#!/bin/bash\n" + prolog.text())
    return Bench(work=work, proj=proj, local=local, deps=deps, env=env, prolog_sh=prolog_sh)
