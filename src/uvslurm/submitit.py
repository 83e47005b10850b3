"""submitit's executor, with each job's environment prepared by uvslurm (the extra
`uvslurm[submitit]`).

Stock submitit runs its worker with the login node's `sys.executable`. Here every job script
runs uvslurm's prolog first, in its activate mode (the project's venv for the node's modules
and platform, built once per key in the depot, copied to node-local disk), through submitit's
own `setup` lines; its worker then runs with that venv's python (submitit's `python`
parameter). Futures, arrays, `batch()`, checkpointing and requeueing are submitit's: a
requeued job runs the prolog again (warm) before the worker resumes from its checkpoint.
Arrays keep the setup: submitit copies the executor's parameters into the array's own."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import submitit

from uvslurm import __version__, api, render, sources
from uvslurm.errors import ConfigError, ProjectError, SubmitError
from uvslurm.nodeenv import NodeSettings
from uvslurm.project import Project

# the worker's interpreter, expanded by the job script after the prolog exported VIRTUAL_ENV
PYTHON = '"$VIRTUAL_ENV/bin/python"'
# SlurmExecutor's constructor arguments (the rest are update_parameters')
_CONSTRUCTOR = frozenset({"slurm_max_num_timeout", "slurm_max_pickle_size_gb"})


def activation(node: NodeSettings) -> str:
    """The part of a uvslurm job script that makes the venv ready and active (the templated
    settings and the prolog in activate mode), without a shebang or #SBATCH lines: submitit's
    setup lines."""
    origin = f"uvslurm {__version__} for submitit on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    script = render.render(
        render.JobScript(
            settings=node,
            options={},
            origin=origin,
            user_script=render.UserScript(render.BASH_SHEBANG, [], ""),
            embedded=True,
        )
    )
    return script.split("\n", 1)[1].rstrip("\n")


def require_submitit(project: Project) -> None:
    """The venv the jobs run in is the project's: without submitit in its lock, the worker
    cannot start on the node."""
    lock = project.lock.read_bytes() if project.lock.is_file() else b""
    packages = sources.parse_toml(lock, project.lock).get("package", [])
    if not any(isinstance(p, dict) and p.get("name") == "submitit" for p in packages):
        raise ProjectError(
            f"submitit is not in {project.lock}: the jobs' venv is the project's, and submitit's"
            " worker runs in it",
            f"add it to the project: `uv add submitit` in {project.root}",
        )


class Executor(submitit.AutoExecutor):
    """`submitit.AutoExecutor` for Slurm whose jobs run in the project's uvslurm venv.

    `project`: the uv project directory (default: the one around `cwd`); its uv.lock must hold
    submitit. `extras`, `all_extras`, `groups`, `no_dev`: uv's selection for the venv;
    `node_local=False` runs from the depot. Other keyword arguments are submitit's (`timeout_min`,
    `slurm_partition`, `slurm_setup`, ...). The project's lock is checked (locked if stale) and
    what the nodes need is fetched into the uv cache once, here."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        project: str | os.PathLike[str] | None = None,
        *,
        extras: str | Iterable[str] = (),
        all_extras: bool = False,
        groups: str | Iterable[str] = (),
        no_dev: bool = False,
        node_local: bool = True,
        cwd: str | os.PathLike[str] | None = None,
        **parameters: Any,
    ) -> None:
        for own in ("slurm_python", "python", "cluster"):
            if own in parameters:
                raise ConfigError(
                    f"Executor: {own} is uvslurm's to set (the jobs run in the project's venv)",
                    f"drop {own}=",
                )
        ctx = api.context_for(project, cwd, node_local)
        found = ctx.require_project()
        sync = api.selection(extras, all_extras, groups, no_dev)
        node = api.node_settings(found, ctx, sync, lock=True)
        require_submitit(found)
        if shutil.which("srun") is None:  # submitit's own error would be a RuntimeError
            raise SubmitError(
                "srun not found on PATH", "run this on a login node of a Slurm cluster"
            )
        self.project = found.root
        self.uvslurm_setup = activation(node)
        ctor = {k: parameters.pop(k) for k in list(parameters) if k in _CONSTRUCTOR}
        super().__init__(Path(folder), cluster="slurm", slurm_python=PYTHON, **ctor)
        parameters.setdefault("slurm_setup", [])
        self.update_parameters(**parameters)

    def _internal_update_parameters(self, **kwargs: Any) -> None:
        # the prolog comes first, before any setup line of the caller's
        if "slurm_setup" in kwargs:
            kwargs["slurm_setup"] = [self.uvslurm_setup, *kwargs["slurm_setup"]]
        super()._internal_update_parameters(**kwargs)
