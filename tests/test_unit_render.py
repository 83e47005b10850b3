"""render.py in-process: splitting user scripts, and the exact text of rendered job scripts
(compared with the golden files that tests/test_render.py also checks, and line by line)."""

from __future__ import annotations

import itertools
import re
import subprocess
from importlib.resources import files

import pytest

from test_render import GOLDEN, fill, job
from uvslurm import __version__, prolog, render
from uvslurm.errors import UsageError
from uvslurm.nodeenv import NodeSettings

# the settings, golden files and prolog placeholder of tests/test_render.py
SETTINGS = job().settings
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
    return fill((GOLDEN / name).read_text())


def _section_files() -> list[str]:
    return sorted(p.name for p in files("uvslurm.resources").joinpath("prolog").iterdir())


def test_prolog_text_is_every_section_under_its_banner_in_order() -> None:
    text = render.prolog_text()
    warm, rest = prolog.warm_text(), prolog.rest_text()
    assert text == warm + rest
    assert sorted(name for name, _ in prolog.SECTIONS) == _section_files()
    n = len(prolog.SECTIONS)
    assert warm.startswith(f"# ==== uvslurm prolog 1/{n}: fast - ") and warm.endswith("esac\n")
    assert "#!" not in text.split("\n", 1)[0]
    at = rest_at = 0
    for i, (name, what) in enumerate(prolog.SECTIONS, 1):
        banner = (
            f"# ==== uvslurm prolog {i}/{n}: {name[:-3]} - {what} (resources/prolog/{name}) ===="
        )
        # the file's own shellcheck directives stay out; everything else is there, in order:
        # in the warm part, or (with a stub in its place) in the rest, commented out
        body = prolog.section_text(name)
        while body.startswith("# shellcheck "):
            body = body.split("\n", 1)[1]
        pieces = prolog.chunks(body.rstrip("\n"))
        assert "\n".join(c for _, c in pieces) == body.rstrip("\n"), "chunks lose nothing"
        at = warm.index(banner + "\n", at)
        later = [(f, c) for f, c in pieces if f and f not in prolog.WARM]
        if later:
            rest_at = rest.index("#" + banner + "\n#\n", rest_at)
        for fn, chunk in pieces:
            if fn and fn not in prolog.WARM:
                stub = f'{fn}() {{ _uvslurm_load; {fn} "$@"; }}'
                at = warm.index(stub, at)
                rest_at = rest.index("\n".join("#" + line for line in chunk.split("\n")), rest_at)
            elif prolog.UNSET_PLACEHOLDER not in chunk:
                at = warm.index(chunk, at)
            else:
                at = warm.index(chunk.split(prolog.UNSET_PLACEHOLDER)[0], at)
    assert warm.count("# ==== uvslurm prolog ") == n
    assert warm.count("\n\n# ==== uvslurm prolog ") == n - 1, "a blank line before each banner"
    assert "# shellcheck shell=bash" not in text
    # the rest: commented out, framed by the lines that _uvslurm_load looks for
    lines = rest.rstrip("\n").split("\n")
    n = len(lines) - 2
    assert lines[0] == prolog.REST_BEGIN.format(n=n) and lines[-1] == prolog.REST_END.format(n=n)
    assert all(line.startswith("#") for line in lines)
    # every function is defined once, for real, in the warm part or in the rest; the rest
    # defines what the warm part has stubs for, and nothing that runs by itself
    real = re.findall(r"^#(_uvslurm_[A-Za-z0-9_]+)\(\)", rest, re.M)
    stubs = re.findall(r"^(_uvslurm_[A-Za-z0-9_]+)\(\) \{ _uvslurm_load; ", warm, re.M)
    assert real == stubs and not set(real) & set(prolog.WARM)
    assert sorted(real + list(prolog.WARM)) == sorted(prolog.function_names())


def test_each_section_says_what_it_is_for_in_a_few_lines() -> None:
    for name, _ in prolog.SECTIONS:
        lines = prolog.section_text(name).split("\n")
        assert lines[0] == "# shellcheck shell=bash", name
        while lines[0].startswith("# shellcheck "):
            lines.pop(0)
        header = lines[: lines.index("")]
        assert 1 <= len(header) <= 3, (name, header)
        assert header[0].startswith(f"# uvslurm prolog, section {name[:-3]}: "), name


def test_prolog_lines_are_at_most_100_characters() -> None:
    for name, _ in prolog.SECTIONS:
        long = [line for line in prolog.section_text(name).split("\n") if len(line) > 100]
        assert long == [], name
    assert max(len(line) for line in prolog.warm_text().split("\n")) <= 100
    # the rest's lines carry one "#" more
    assert max(len(line) for line in prolog.rest_text().split("\n")) <= 101


def _unset_block(text: str) -> list[str]:
    """The lines of the generated `unset -f`, one command over continuation lines."""
    lines = text.split("\n")
    first = next(i for i, line in enumerate(lines) if line.startswith("    unset -f "))
    block = [lines[first]]
    while block[-1].endswith(" \\"):
        block.append(lines[first + len(block)])
    return block


def _body(text: str, name: str) -> str:
    """A function's definition: its one line, or its lines up to the closing brace."""
    lines = text.split("\n")
    i = next(i for i, line in enumerate(lines) if line.startswith(f"{name}() "))
    return lines[i] if lines[i].endswith("}") else "\n".join(lines[i : lines.index("}", i)])


def test_the_generated_unset_covers_every_function_but_the_exit_traps() -> None:
    text = render.prolog_text()
    defined = re.findall(r"^(_uvslurm_[A-Za-z0-9_]+)\(\)", text, re.M)
    assert defined == prolog.function_names() and len(set(defined)) == len(defined)
    block = _unset_block(text)
    unset = " ".join(line.removesuffix("\\") for line in block).split()[2:]
    assert unset == [f for f in defined if f not in prolog.KEPT]
    # its lines as full as 100 characters allow
    assert all(line.startswith("      _uvslurm_") for line in block[1:])
    for line, after in itertools.pairwise(block):
        assert len(line) <= 100 < len(line) + 1 + len(after.split()[0]), (line, after)
    assert set(prolog.KEPT) <= set(defined)
    assert prolog.UNSET_PLACEHOLDER.strip() not in text
    assert text.count("unset -f ") == 1
    # what stays is what activate mode's EXIT trap calls, and what those call in turn
    assert '[ -n "${_uvslurm_mnt:-}${UVSLURM_RECORD:-}" ] && trap _uvslurm_atexit EXIT' in text
    assert {"_uvslurm_umount", "_uvslurm_record"} <= set(
        re.findall(r"_uvslurm_[A-Za-z0-9_]+", _body(text, "_uvslurm_atexit"))
    )
    for name in prolog.KEPT:
        called = set(re.findall(r"_uvslurm_[A-Za-z0-9_]+", _body(text, name)))
        assert called & set(defined) <= set(prolog.KEPT), (name, called)
    assert "_uvslurm_fuse_off" in _body(text, "_uvslurm_umount")


def test_a_section_without_the_unset_line_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = prolog.section_text

    def without(name: str) -> str:
        return real(name).replace(prolog.UNSET_PLACEHOLDER, "    :")

    monkeypatch.setattr(prolog, "section_text", without)
    prolog.warm_text.cache_clear()
    prolog._parts.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="unset -f _uvslurm_FUNCTIONS"):
            prolog.text()
    finally:
        prolog.warm_text.cache_clear()
        prolog._parts.cache_clear()


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
    return text[: text.index(prolog.warm_text().rstrip("\n"))].split("\n")


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
    assert lines[3:13] == [
        "#",
        "# Generated by o\\tx\\x1b",
        "# What:  runs `uv run --no-sync 'a b' '$c'` in the project's venv",
        "# Where: the uv project /p/my proj; venvs in the depot /d",
        "#        node-local copy: never (the venv is used where it is in the depot);"
        " depot venvs also as squashfs images",
        "# With:  uv /uv (else uv on the node's PATH), Python as uv chooses,"
        " built from source: mpi4py, h5py",
        f"# The prolog below is uvslurm {__version__}'s, in {len(prolog.SECTIONS)} sections: it makes"
        " the venv ready"
        " on the node and",
        "# needs only bash and uv there. Keep this script, read it, resubmit it with sbatch.",
        "# --- start templated: settings for the uvslurm prolog below (shell-quoted)",
        "UVSLURM_PROJECT='/p/my proj'",
    ]
    templated = lines[12 : lines.index("# --- end templated")]
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
    # the body, then the rest of the prolog, which _uvslurm_load reads from the script's end
    assert text.endswith(
        "# --- end of the uvslurm prolog; the job script follows, with the venv active\nrun it\n"
        + prolog.rest_text()
    )


def test_batch_job_user_shebang_is_kept() -> None:
    script = render.split_script("#!/usr/bin/env bash\necho\n", "j")
    text = render.render(render.JobScript(SETTINGS, {}, "o", user_script=script))
    assert text.startswith("#!/usr/bin/env bash\n#\n# Generated by o\n")
    assert "\n# What:  runs the batch script below with the venv active\n" in text


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
        NodeSettings(**{**SETTINGS._asdict(), "project": "/p/ünï\n日本"}), {}, "uvslurm für\tdich"
    )
    lines = _lines(job)
    assert "# Generated by uvslurm für\\tdich" in lines
    assert (
        "# Where: the uv project /p/ünï\\n日本; venvs in the depot /scratch/alice/uvslurm" in lines
    )


@pytest.mark.parametrize("mode", ["run", "activate"])
def test_the_summary_stays_comments_whatever_the_values_hold(mode: str) -> None:
    """Newlines, `$(...)`, quotes and backticks in every value the summary shows: each line of
    it is still one comment, and bash runs nothing of it."""
    evil = "x\n touch /tmp/PWNED; $(touch /tmp/PWNED) `id` 'q' \"d\" \r\x0b\x0c\x1c\x85\u2028 end"
    settings = NodeSettings(
        **{
            **SETTINGS._asdict(),
            "project": f"/p/{evil}",
            "depot": f"/d/{evil}",
            "uv": f"/uv/{evil}",
            "node_local": f"/local/{evil}",
            "python": evil,
            "sync_args": ("--extra", evil),
            "rebuild": (evil,),
            "image": "squashfs",
        }
    )
    script = render.split_script(f"#!/bin/bash\n#SBATCH -J a\necho {evil!r}\n", "j")
    job = render.JobScript(
        settings,
        {"time": "5"},
        f"uvslurm {evil}",
        command=() if mode == "activate" else (evil, "--arg", evil),
        user_script=script if mode == "activate" else None,
    )
    lines = _lines(job)
    top = lines[
        : lines.index("# --- start templated: settings for the uvslurm prolog below (shell-quoted)")
    ]
    summary = top[top.index("#") :]
    assert 7 <= len(summary) <= 10, summary
    assert all(line.startswith("#") for line in top), top
    # each value is there, escaped: origin, project and depot, node-local, uv and the rest
    assert sum("x\\n touch /tmp/PWNED; $(touch /tmp/PWNED) `id`" in line for line in summary) >= 4
    text = "\n".join(top) + "\n"
    assert "\n touch" not in text and "\r" not in text and "\u2028" not in text
    ran = subprocess.run(["bash", "-xc", text], capture_output=True, text=True, check=True)
    assert ran.stdout == "" and ran.stderr == "", "bash ran something of the summary"


def test_batch_body_keeps_trailing_blanks_of_its_last_line() -> None:
    for body, kept in (("echo a  \n\n", "echo a  "), ("echo MAX\n", "echo MAX")):
        script = render.split_script("#!/bin/bash\n" + body, "j")
        text = render.render(render.JobScript(SETTINGS, {}, "o", user_script=script))
        assert text.endswith("with the venv active\n" + kept + "\n" + prolog.rest_text())
