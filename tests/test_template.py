"""`uvslurm template` and the ready-made headers in examples/sbatch."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO, Cluster, uvslurm
from uvslurm.commands import template

EXAMPLES = REPO / "examples" / "sbatch"


@pytest.mark.parametrize("name", template.NAMES)
def test_examples_are_the_shipped_templates(name: str) -> None:
    assert (EXAMPLES / f"{name}.sh").read_text() == template.text_of(name)
    assert os.access(EXAMPLES / f"{name}.sh", os.X_OK)


def test_list_names_every_template(tmp_path: Path) -> None:
    r = uvslurm("template", cwd=tmp_path, check=True)
    assert [line.split()[0] for line in r.stdout.splitlines()] == list(template.NAMES)


def test_fill_takes_config_and_profile_values(project: Path) -> None:
    with (project / "pyproject.toml").open("a") as f:
        f.write(
            '\n[tool.uvslurm.sbatch]\ntime = "2:00:00"\n[tool.uvslurm.profiles.big]\nmem = "64G"\n'
        )
    r = uvslurm("template", "cpu", "--profile", "big", cwd=project, check=True)
    assert "#SBATCH --time=2:00:00  # from your config" in r.stdout
    assert "#SBATCH --mem=64G  # from your config" in r.stdout
    assert "#SBATCH --cpus-per-task=2\n" in r.stdout


def test_output_file_is_executable_and_never_overwritten(tmp_path: Path) -> None:
    r = uvslurm("template", "mpi", "-o", "job.sh", cwd=tmp_path, check=True)
    assert "uvslurm submit job.sh" in r.stdout
    assert os.access(tmp_path / "job.sh", os.X_OK)
    again = uvslurm("template", "mpi", "-o", "job.sh", cwd=tmp_path)
    assert again.returncode == 1 and "exists" in again.stderr


def test_unknown_template_is_one_line(tmp_path: Path) -> None:
    r = uvslurm("template", "nope", cwd=tmp_path)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "cpu" in r.stderr


@pytest.mark.slurm
@pytest.mark.parametrize("name", template.NAMES)
def test_each_example_runs_unchanged_on_the_cluster(
    cluster: Cluster, project: Path, tmp_path: Path, name: str
) -> None:
    script = EXAMPLES / f"{name}.sh"
    if name == "gpu":
        # no GPUs in the dev cluster: the rendered script must still be valid for sbatch
        r = uvslurm("submit", "--dry-run", str(script), cwd=project, check=True)
        rendered = tmp_path / "gpu-job.sh"
        rendered.write_text(r.stdout)
        assert shutil.which("bash")
        t = cluster.run("sbatch", "--test-only", "--gpus=0", str(rendered))
        assert "to start" in t.stderr, t.stderr
        return
    log = tmp_path / f"{name}-%a.log" if name == "array" else tmp_path / f"{name}.log"
    r = uvslurm("submit", "--wait", "-o", str(log), "-e", str(log), str(script), cwd=project)
    logs = sorted(tmp_path.glob(f"{name}*.log"))
    text = "".join(p.read_text() for p in logs)
    assert r.returncode == 0, r.stderr + text
    states = re.findall(r"uvslurm: ready \((\w+)\)", text)
    if name == "array":
        assert len(logs) == 4 and states.count("cold") == 1, text
    elif name == "mpi":
        assert sorted(re.findall(r"rank (\d) on (n\d)", text)) == [("0", "n1"), ("1", "n2")], text
    else:
        assert "venv:" in text or "node" in text
