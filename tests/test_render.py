from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import HOSTILE_NAMES
from uvslurm import prolog, render
from uvslurm.errors import UsageError
from uvslurm.nodeenv import NodeSettings

GOLDEN = Path(__file__).parent / "golden"
REGEN = "regenerate with: UVSLURM_REGEN_GOLDEN=1 pytest tests/test_render.py"


def job(**kw: object) -> render.JobScript:
    settings = NodeSettings(
        project=str(kw.pop("project", "/work/alice/proj")),
        uv="/usr/local/bin/uv",
        depot="/scratch/alice/uvslurm",
        node_local="auto",
        offline="auto",
        python="3.11",
        sync_args=("--extra", "gpu"),
        fingerprint_env=(),
    )
    base: dict[str, object] = dict(
        settings=settings,
        options={"time": "00:05:00", "partition": "debug", "job-name": "train"},
        origin="uvslurm 0.1.0 on 2026-01-01 00:00:00 UTC: uvslurm submit train.py",
        command=("/work/alice/proj/train.py", "--lr", "3"),
    )
    base.update(kw)
    return render.JobScript(**base)  # type: ignore[arg-type]


BATCH = """#!/bin/bash
#SBATCH -t 10
#SBATCH -N 1 -J mine
# a comment in the header
module load mpich/1.0
python -c 'import sys; print(sys.prefix)'
srun hostname
"""


# the prolog (src/uvslurm/resources/prolog/*.sh) as the golden files show it: its warm part, and
# the rest that ends every job script
PROLOG_PLACEHOLDER = "# <<< the prolog: its sections, joined by render.prolog_text() >>>"
REST_PLACEHOLDER = "# <<< the rest of the prolog, read when needed: prolog.rest_text() >>>"


def fill(golden: str) -> str:
    """A golden file's text with the prolog in place of its placeholders."""
    return golden.replace(PROLOG_PLACEHOLDER, prolog.warm_text().rstrip("\n")).replace(
        REST_PLACEHOLDER, prolog.rest_text().rstrip("\n")
    )


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME. The prolog itself is checked by running it
    (test_prolog.py); the golden files show everything around it."""
    warm, rest = prolog.warm_text().rstrip("\n"), prolog.rest_text().rstrip("\n")
    assert text.count(warm) == 1 and text.count(rest) == 1, "the prolog is pasted exactly once"
    assert text.endswith(rest + "\n"), "the rest of the prolog ends the script (_uvslurm_load)"
    text = text.replace(warm, PROLOG_PLACEHOLDER).replace(rest, REST_PLACEHOLDER)
    path = GOLDEN / name
    if os.environ.get("UVSLURM_REGEN_GOLDEN") and (not path.exists() or path.read_text() != text):
        path.write_text(text)
        # regeneration never passes silently: the new file is for a person to review
        pytest.fail(f"{name} regenerated: review `git diff tests/golden`, then run without it")
    assert path.read_text() == text, f"{name} changed; {REGEN}"


def test_py_job_matches_golden() -> None:
    check_golden("py-job.sh", render.render(job()))


def test_batch_script_job_matches_golden() -> None:
    script = render.split_script(BATCH, "job.sh")
    text = render.render(
        job(command=(), user_script=script, options={"time": "20", "partition": "debug"})
    )
    check_golden("batch-job.sh", text)
    # the CLI's --time overrides the script's line, which stays visible but disabled
    assert "##SBATCH -t 10  (overridden by uvslurm submit)" in text
    assert "#SBATCH --time=20" in text
    # sbatch stops reading #SBATCH at the first command: the prolog comes after the header
    assert text.index("#SBATCH -N 1 -J mine") < text.index("UVSLURM_MODE=activate")
    assert text.index("UVSLURM_MODE=activate") < text.index("module load mpich/1.0")


def test_other_options_on_an_overridden_line_still_hold() -> None:
    script = render.split_script("#!/bin/bash\n#SBATCH -t 10 -N 2\necho hi\n", "j.sh")
    text = render.render(job(command=(), user_script=script, options={"time": "20"}))
    assert "#SBATCH --nodes=2" in text


@pytest.mark.parametrize("name", ["py-job.sh", "batch-job.sh"])
def test_rendered_scripts_are_valid_bash_and_shellcheck_clean(name: str, tmp_path: Path) -> None:
    text = fill((GOLDEN / name).read_text())
    script = tmp_path / name
    script.write_text(text)
    subprocess.run(["bash", "-n", str(script)], check=True)
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    # checked with every function of the prolog in place, as bash has them once _uvslurm_load
    # ran (commented out at the end, their uses of the templated settings look like none)
    whole = prolog.warm_text(lazy=False)
    script.write_text(text.replace(prolog.rest_text(), "").replace(prolog.warm_text(), whole))
    subprocess.run(["shellcheck", "-S", "warning", str(script)], check=True)


def test_non_bash_scripts_are_refused_and_sh_becomes_bash() -> None:
    with pytest.raises(UsageError, match="bash"):
        render.split_script("#!/usr/bin/env python3\nprint(1)\n", "x")
    assert render.split_script("#!/bin/sh\necho\n", "x").shebang == "#!/bin/bash"


def _templated(text: str) -> str:
    start = text.index("# --- start templated")
    return text[start : text.index("# --- end templated")]


def _bash_values(text: str) -> list[str]:
    """Evaluate the templated block in a real bash and read the values back, NUL-separated."""
    prog = _templated(text) + '\nprintf "%s\\0" "$UVSLURM_PROJECT" "${UVSLURM_CMD[@]}"\n'
    out = subprocess.run(["bash", "-c", prog], capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_paths_and_args_survive_a_real_shell(name: str, tmp_path: Path) -> None:
    args = (name, "-n", "--help", "$HOME", "line1\nline2", "*", "it's")
    text = render.render(
        job(
            project=f"/work/{name}\n/x", command=("/p/train.py", *args), origin=name + "\n rm -rf /"
        )
    )
    assert _bash_values(text) == [f"/work/{name}\n/x", "/p/train.py", *args]
    # the origin line is a comment: a newline in it must not start a command
    assert "\n rm -rf /" not in text
    subprocess.run(["bash", "-n"], input=text.encode(), check=True)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12
        ),
        max_size=5,
    )
)
def test_any_argument_list_round_trips(args: list[str]) -> None:
    text = render.render(job(command=("/p/train.py", *args)))
    assert _bash_values(text)[2:] == args
