"""`uvslurm template` and the ready-made headers in examples/sbatch."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conftest import REPO, Cluster, ready, ready_lines, uvslurm
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
    r = uvslurm("template", "cpu", "--uvslurm-profile", "big", cwd=project, check=True)
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


def _train_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(x[len("TRAIN ") :]) for x in text.splitlines() if x.startswith("TRAIN ")]


@pytest.mark.slurm
@pytest.mark.parametrize("name", template.NAMES)
def test_each_example_runs_unchanged_on_the_cluster(
    cluster: Cluster, project: Path, tmp_path: Path, name: str
) -> None:
    """Each example runs as shipped (the gpu one with `--gpus=0` from the command line: the dev
    cluster has no GPU) and its body runs the project's train.py from the prepared venv."""
    script = EXAMPLES / f"{name}.sh"
    log = tmp_path / f"{name}-%a.log" if name == "array" else tmp_path / f"{name}.log"
    extra = ["--gpus=0"] if name == "gpu" else []
    r = uvslurm("submit", "--wait", *extra, "-o", str(log), "-e", str(log), str(script),
                cwd=project)  # fmt: skip
    logs = sorted(tmp_path.glob(f"{name}*.log"))
    texts = [p.read_text() for p in logs]
    text = "".join(texts)
    assert r.returncode == 0, r.stderr + text
    for one in texts:
        runs = _train_lines(one)
        assert runs, one
        # every rank or task ran python from the venv the prolog prepared
        assert {str(run["prefix"]) for run in runs} == {str(ready(one).venv)}, one
    states = [x.state for x in ready_lines(text)]
    if name == "array":
        assert len(logs) == 4 and states.count("cold") == 1, text
        tasks = sorted(str(run["argv"]) for t in texts for run in _train_lines(t))
        assert tasks == [str(["--task", str(i)]) for i in range(4)], tasks
    elif name == "mpi":
        assert sorted(re.findall(r"rank (\d) on (n\d)", text)) == [("0", "n1"), ("1", "n2")], text
    elif name == "cpu":
        assert re.search(r"^node n\d, 2 cores, Python 3\.11\.\d+$", text, re.M), text
    else:
        assert "no GPU visible" in text, text
