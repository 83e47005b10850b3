"""render.py in-process: splitting user scripts, and the exact text of rendered job scripts
(compared with the golden files that tests/test_render.py also checks, and line by line)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from uvslurm import render
from uvslurm.errors import UsageError
from uvslurm.nodeenv import NodeSettings

GOLDEN = Path(__file__).parent / "golden"
PROLOG_PLACEHOLDER = "# <<< the prolog: src/uvslurm/resources/prolog.sh, verbatim >>>"

SETTINGS = NodeSettings(
    project="/work/alice/proj",
    uv="/usr/local/bin/uv",
    depot="/scratch/alice/uvslurm",
    node_local="auto",
    offline="auto",
    python="3.11",
    sync_args=("--extra", "gpu"),
    fingerprint_env=(),
)
ORIGIN = "uvslurm 0.1.0 on 2026-01-01 00:00:00 UTC: uvslurm submit train.py"
BATCH = """#!/bin/bash
#SBATCH -t 10
#SBATCH -N 1 -J mine
# a comment in the header
module load mpich/1.0
python -c 'import sys; print(sys.prefix)'
srun hostname
"""


def _golden(name: str) -> str:
    text = (GOLDEN / name).read_text()
    return text.replace(PROLOG_PLACEHOLDER, render.prolog_text().rstrip("\n"))


def test_prolog_text_drops_only_the_shebang() -> None:
    raw = files("uvslurm.resources").joinpath("prolog.sh").read_text()
    assert raw.startswith("#!")
    first, rest = raw.split("\n", 1)
    assert render.prolog_text() == rest
    assert first not in render.prolog_text()


def test_py_job_is_the_golden_file() -> None:
    job = render.JobScript(
        SETTINGS,
        {"time": "00:05:00", "partition": "debug", "job-name": "train"},
        ORIGIN,
        command=("/work/alice/proj/train.py", "--lr", "3"),
    )
    assert render.render(job) == _golden("py-job.sh")


def test_batch_job_is_the_golden_file() -> None:
    script = render.split_script(BATCH, "job.sh")
    job = render.JobScript(
        SETTINGS, {"time": "20", "partition": "debug"}, ORIGIN, user_script=script
    )
    assert render.render(job) == _golden("batch-job.sh")


def test_split_script_without_shebang() -> None:
    s = render.split_script("#SBATCH -t 5\n\n# note\necho hi\n#SBATCH -N 2\n", "j")
    assert s.shebang == "#!/bin/bash"
    assert s.header == ["#SBATCH -t 5", "", "# note"]
    assert s.body == "echo hi\n#SBATCH -N 2\n"
    assert s.directives() == [(0, {"time": "5"})]
    assert s.options() == {"time": "5"}


@pytest.mark.parametrize(
    ("first", "shebang"),
    [("#!/bin/bash", "#!/bin/bash"), ("#!/usr/bin/env bash", "#!/usr/bin/env bash"),
     ("#! /bin/bash -l", "#! /bin/bash -l"), ("#!/bin/sh", "#!/bin/bash"),
     ("#!/usr/bin/env sh", "#!/bin/bash"), ("#!bash", "#!bash")],
)  # fmt: skip
def test_split_script_shebangs(first: str, shebang: str) -> None:
    s = render.split_script(f"{first}\n#SBATCH -t 5\necho\n", "j")
    assert s.shebang == shebang
    assert s.header == ["#SBATCH -t 5"]
    assert s.body == "echo\n"


@pytest.mark.parametrize(
    ("first", "prog"),
    [("#!/usr/bin/python3", "python3"), ("#!/usr/bin/env python3", "python3"),
     ("#!/usr/bin/env", "env"), ("#!", ""), ("#!/bin/zsh", "zsh"), ("#!/bin/bash2", "bash2")],
)  # fmt: skip
def test_split_script_refuses_other_interpreters(first: str, prog: str) -> None:
    with pytest.raises(UsageError) as e:
        render.split_script(f"{first}\necho\n", "job.sh")
    assert e.value.message == f"job.sh: uvslurm runs batch scripts with bash, not '{prog}'"
    assert e.value.hint == "start the script with #!/bin/bash"


def test_split_script_header_edge_cases() -> None:
    s = render.split_script("#!/bin/bash", "j")
    assert (s.header, s.body) == ([], "")
    s = render.split_script("", "j")
    assert (s.shebang, s.header, s.body) == ("#!/bin/bash", [""], "")
    s = render.split_script("#!/bin/bash\n  #SBATCH -t 5\n \necho\n", "j")
    assert s.header == ["  #SBATCH -t 5", " "]
    # an indented #SBATCH line is no directive
    assert s.directives() == []
    s = render.split_script("#!/bin/bash\n#SBATCH -t 5\n#SBATCH -t 7 -N 2\n##SBATCH -p x\n", "j")
    assert s.directives() == [(0, {"time": "5"}), (1, {"time": "7", "nodes": "2"})]
    assert s.options() == {"time": "7", "nodes": "2"}


def _lines(job: render.JobScript) -> list[str]:
    text = render.render(job)
    assert text.endswith("\n") and not text.endswith("\n\n")
    return text[: text.index(render.prolog_text().rstrip("\n"))].split("\n")


def test_command_job_lines() -> None:
    settings = NodeSettings(
        project="/p/my proj",
        uv="/uv",
        depot="/d",
        node_local="never",
        offline="true",
        python="",
        sync_args=(),
        fingerprint_env=("A", "B"),
        fingerprint_commands=("hostname", "nvidia-smi -L"),
        fingerprint_modules=False,
        rebuild=("mpi4py", "h5py"),
        rebuild_sources="x\x1fy\x1e",
        image="squashfs",
    )
    job = render.JobScript(
        settings, {"exclusive": True, "time": "5"}, "o\tx\x1b", command=("a b", "$c")
    )
    lines = _lines(job)
    assert lines[:3] == ["#!/bin/bash", "#SBATCH --exclusive", "#SBATCH --time=5"]
    assert lines[3:9] == [
        "#",
        "# Generated by o\\tx\\x1b",
        "# for the uv project /p/my proj.",
        "# On the node it needs only bash and uv: keep it, read it, resubmit it with sbatch.",
        "# --- start templated: settings for the uvslurm prolog below (shell-quoted)",
        "UVSLURM_PROJECT='/p/my proj'",
    ]
    templated = lines[8 : lines.index("# --- end templated")]
    assert templated[-1] == "UVSLURM_CMD=('a b' '$c')"
    assert "UVSLURM_MODE=run" in templated
    assert "UVSLURM_FP_COMMANDS='hostname\x1envidia-smi -L\x1e'" in templated
    assert "UVSLURM_FP_MODULES=0" in templated
    assert "UVSLURM_FP_ENV='A B'" in templated
    assert "UVSLURM_REBUILD=mpi4py,h5py" in templated
    assert "UVSLURM_IMAGE=squashfs" in templated
    assert "UVSLURM_PYTHON=''" in templated
    assert "UVSLURM_OFFLINE=true" in templated
    assert "UVSLURM_NODE_LOCAL=never" in templated
    text = render.render(job)
    assert "end of the uvslurm prolog" not in text


def test_batch_job_overrides_and_body() -> None:
    script = render.split_script(
        "#!/bin/bash\n#SBATCH -t 10 -N 2\n#SBATCH -J keep\n# c\nrun it\n\n\n", "j"
    )
    job = render.JobScript(SETTINGS, {"time": "20", "partition": "x"}, "o", user_script=script)
    text = render.render(job)
    lines = text.split("\n")
    # the overridden line's other options still hold, the line stays for the reader, disabled
    assert lines[:7] == [
        "#!/bin/bash",
        "#SBATCH --nodes=2",
        "#SBATCH --partition=x",
        "#SBATCH --time=20",
        "##SBATCH -t 10 -N 2  (overridden by uvslurm submit)",
        "#SBATCH -J keep",
        "# c",
    ]
    assert "UVSLURM_MODE=activate" in lines
    assert not any(line.startswith("UVSLURM_CMD=") for line in lines)
    assert text.endswith(
        "# --- end of the uvslurm prolog; the job script follows, with the venv active\nrun it\n"
    )


def test_batch_job_user_shebang_is_kept() -> None:
    script = render.split_script("#!/usr/bin/env bash\necho\n", "j")
    text = render.render(render.JobScript(SETTINGS, {}, "o", user_script=script))
    assert text.startswith("#!/usr/bin/env bash\n#\n# Generated by o\n")


def test_batch_job_line_with_no_overridden_option_is_kept() -> None:
    script = render.split_script("#!/bin/bash\n#SBATCH -N 2\necho\n", "j")
    text = render.render(render.JobScript(SETTINGS, {"time": "1"}, "o", user_script=script))
    assert "#!/bin/bash\n#SBATCH --time=1\n#SBATCH -N 2\n#\n" in text
    assert "overridden" not in text
    assert "#SBATCH --nodes=2" not in text


def test_empty_command() -> None:
    lines = _lines(render.JobScript(SETTINGS, {}, "o"))
    assert "UVSLURM_CMD=()" in lines


def test_comment_lines_escape_only_what_is_not_printable() -> None:
    job = render.JobScript(
        NodeSettings(**{**SETTINGS.__dict__, "project": "/p/ünï\n日本"}), {}, "uvslurm für\tdich"
    )
    lines = _lines(job)
    assert "# Generated by uvslurm für\\tdich" in lines
    assert "# for the uv project /p/ünï\\n日本." in lines


def test_batch_body_keeps_trailing_blanks_of_its_last_line() -> None:
    for body, kept in (("echo a  \n\n", "echo a  "), ("echo MAX\n", "echo MAX")):
        script = render.split_script("#!/bin/bash\n" + body, "j")
        text = render.render(render.JobScript(SETTINGS, {}, "o", user_script=script))
        assert text.endswith("with the venv active\n" + kept + "\n")
