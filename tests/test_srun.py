"""`uvslurm srun` through real srun on the dev cluster, with and without a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

import pytest

from conftest import Cluster, files_under, ready, ready_lines, uvslurm

pytestmark = pytest.mark.slurm


def test_command_runs_in_the_venv_and_its_exit_code_comes_back(
    cluster: Cluster, project: Path
) -> None:
    before = files_under(project)
    r = uvslurm(
        "srun",
        "-w",
        "n1",
        "--",
        "python",
        "-c",
        "import six, sys; print('PFX', sys.prefix)",
        cwd=project,
    )
    assert r.returncode == 0, r.stderr
    assert f"PFX {ready(r.stderr).venv}" in r.stdout
    assert uvslurm("srun", "--", "bash", "-c", "exit 3", cwd=project).returncode == 3
    assert files_under(project) == before


def test_a_step_of_two_nodes_prepares_each_node_in_its_own_tasks(
    cluster: Cluster, project: Path
) -> None:
    code = "import os, sys; print('STEP', os.environ['SLURMD_NODENAME'], sys.prefix)"
    r = uvslurm("srun", "-N", "2", "--", "python", "-c", code, cwd=project)
    assert r.returncode == 0, r.stderr
    venvs = [str(x.venv) for x in ready_lines(r.stderr)]
    assert len(venvs) == 2, "the prolog ran once in each task"
    assert "prepared 2 nodes" not in r.stderr, "no extra placement step inside a step"
    steps = dict(re.findall(r"^STEP (\S+) (.*)$", r.stdout, re.M))
    assert steps == {"n1": venvs[0], "n2": venvs[0]}, r.stdout


def test_interactive_shell_on_a_pseudo_terminal(cluster: Cluster, project: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: a user at a terminal
        os.chdir(project)
        os.execv(sys.executable, [sys.executable, "-m", "uvslurm", "srun", "-w", "n2"])
    out = b""
    deadline = time.time() + 120

    def read_until(pattern: bytes) -> None:
        nonlocal out
        while pattern not in out and time.time() < deadline:
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return

    read_until(b"uvslurm: ready")
    os.write(fd, b"python -c 'import sys; print(\"PFX\" + sys.prefix)'\n")
    read_until(b"PFX/")
    os.write(fd, b"exit 7\n")
    read_until(b"\x00never")
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace").replace("\r\n", "\n")  # a terminal's line ends
    assert f"PFX{ready(text).venv}" in text, text
    assert os.waitstatus_to_exitcode(status) == 7


def test_a_full_cycle_creates_nothing_under_the_project(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    """Zero inodes on $WORK: hook + uv sync on the login node, a batch job, an interactive job."""
    import shutil
    import subprocess

    before = files_under(project)
    hook = uvslurm("shell-hook", "bash", cwd=project, check=True).stdout
    uv = shutil.which("uv")
    r = subprocess.run(["bash", "--norc", "-c", f'{hook}\neval "$PROMPT_COMMAND"\n\'{uv}\' sync -q && \'{uv}\' run python -c pass'],
                       cwd=project, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    log = tmp_path / "cycle.log"
    assert uvslurm("submit", "--wait", "-o", str(log), "train.py", cwd=project).returncode == 0
    assert uvslurm("srun", "--", "python", "train.py", cwd=project).returncode == 0
    assert files_under(project) == before
