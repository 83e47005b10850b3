"""Property-based: hostile project paths, script names, arguments and environment values reach
the program verbatim, through the real rendered job script (run by bash here) and real jobs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TRAIN_PY, uvslurm

# what shells, sbatch and Python's argument handling trip over, plus anything printable
NASTY = "'\"$()`;&|<>*?[]{}!#~\\ \t\n-=%^ éü日本"
# every example carries one of these whole, so that even the simplest ones are hostile
ATTACKS = ["$(touch pwned)", "`touch pwned`", "'; touch pwned; '", '"$HOME"', "-n", "--help",
           "a b", "ünï 日本", "\\", "*", "${IFS}"]  # fmt: skip


def _hostile(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda a, t, front: t + a if front else a + t,
                     st.sampled_from(ATTACKS), text, st.booleans())  # fmt: skip


name_chars = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="/\0"
) | st.sampled_from(NASTY.replace("\t", "").replace("\n", ""))
names = _hostile(st.text(name_chars, max_size=12)).filter(lambda s: "/" not in s)
values = _hostile(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0") |
                          st.sampled_from(NASTY), max_size=20))  # fmt: skip
args = st.lists(values, min_size=1, max_size=4)

PROGRAM = TRAIN_PY.replace(
    'data = {"argv": sys.argv[1:],',
    'data = {"argv": sys.argv[1:], "script": os.path.basename(sys.argv[0]),'
    ' "value": os.environ.get("UVSLURM_TEST_VALUE"),',
)


def _hostile_copy(project: Path, base: Path, dir_name: str, script: str) -> Path:
    d = base / f"p {dir_name}"
    shutil.copytree(project, d)
    (d / f"{script}.py").write_text(PROGRAM)
    return d


def _check(out: Path, script: str, argv: list[str], value: str, base: Path) -> None:
    data = json.loads(out.read_text())
    assert data["argv"] == argv
    assert data["script"] == f"{script}.py"
    assert data["value"] == value
    assert not list(base.rglob("pwned*"))


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(dir_name=names, script=names, argv=args, value=values)
def test_rendered_script_delivers_hostile_inputs_verbatim(
    project: Path, dir_name: str, script: str, argv: list[str], value: str
) -> None:
    with tempfile.TemporaryDirectory(prefix="uvslurm-hostile-") as tmp:
        base = Path(tmp)
        d = _hostile_copy(project, base, dir_name, script)
        out = base / "out.json"
        env = {"UVSLURM_TEST_VALUE": value, "UVSLURM_TEST_OUT": str(out),
               "UVSLURM_DEPOT": str(base / f"depot {dir_name}")}  # fmt: skip
        r = uvslurm("submit", "--dry-run", f"./{script}.py", *argv, cwd=d, env=env)
        assert r.returncode == 0, r.stderr
        job = base / "job.sh"
        job.write_text(r.stdout)
        run = subprocess.run(["bash", str(job)], cwd=d, capture_output=True, text=True,
                             env={**os.environ, **env})  # fmt: skip
        assert run.returncode == 0, run.stderr
        _check(out, script, argv, value, base)


@pytest.mark.slurm
@pytest.mark.slow
@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(dir_name=names, script=names, argv=args, value=values)
def test_real_jobs_deliver_hostile_inputs_verbatim(
    cluster: object, project: Path, dir_name: str, script: str, argv: list[str], value: str
) -> None:
    # on the shared filesystem, where the nodes see it (/tmp is shared on the dev cluster too)
    with tempfile.TemporaryDirectory(prefix="uvslurm-hostile-") as tmp:
        base = Path(tmp)
        d = _hostile_copy(project, base, dir_name, script)
        out, log = base / "out.json", base / "job.log"
        env = {"UVSLURM_TEST_VALUE": value, "UVSLURM_TEST_OUT": str(out)}
        r = uvslurm("submit", "--wait", "-o", str(log), f"./{script}.py", *argv, cwd=d, env=env)
        assert r.returncode == 0, r.stderr + (log.read_text() if log.exists() else "")
        _check(out, script, argv, value, base)
