"""Every bad input: one clear line, a documented non-zero exit, nothing submitted or written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import files_under, uvslurm


def _submit(cwd: Path, fake: Path, *args: str, **env: str) -> tuple[int, list[str]]:
    r = uvslurm("submit", *args, cwd=cwd, env={"PATH": f"{fake}:{os.environ['PATH']}", **env})
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, lines


BAD = [
    # (description, args, env, expected exit code, text in the message)
    ("unknown option", ["--partitoin", "debug", "train.py"], {}, 2, "--partition"),
    ("malformed time", ["-t", "5minutes", "train.py"], {}, 2, "time"),
    ("malformed array", ["-a", "1-x", "train.py"], {}, 2, "array"),
    ("malformed mem", ["--mem", "12XB", "train.py"], {}, 2, "mem"),
    ("missing target", ["nope.py"], {}, 1, "nope.py"),
    ("no target", [], {}, 2, "nothing to run"),
    ("nothing after --", ["--"], {}, 2, "nothing to run"),
    ("unknown profile", ["--uvslurm-profile", "nosuch", "train.py"], {}, 1, "nosuch"),
    ("uv missing", ["train.py"], {"UVSLURM_UV": "/nonexistent/uv"}, 1, "uv not found"),
    ("depot unwritable", ["train.py"], {"UVSLURM_DEPOT": "/proc/nope"}, 1, "not writable"),
    ("bad node-local", ["train.py"], {"UVSLURM_NODE_LOCAL": "sometimes"}, 1, "node-local"),
    ("bad --extra name", ["--extra", "a b", "train.py"], {}, 2, "--extra"),
    ("not a script", ["README.md"], {}, 2, "not a .py file"),
    ("output dir missing", ["-o", "/nonexistent/dir/x.log", "train.py"], {}, 1, "does not exist"),
    ("bad sbatch-arg", ["--sbatch-arg=--frobnicate", "train.py"], {}, 2, "frobnicate"),
]


@pytest.mark.parametrize(("desc", "args", "env", "code", "text"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_submits_nothing(
    desc: str, args: list[str], env: dict[str, str], code: int, text: str,
    project: Path, fake_sbatch: Path, tmp_path: Path,
) -> None:  # fmt: skip
    before = files_under(project)
    rc, lines = _submit(project, fake_sbatch, *args, **env)
    assert rc == code, lines
    assert len(lines) == 1, lines
    assert text in lines[0]
    assert not (tmp_path / "sbatch-calls").exists(), "sbatch was called"
    assert files_under(project) == before


def test_no_pyproject(tmp_path: Path, fake_sbatch: Path) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    (d / "t.py").write_text("print(1)\n")
    rc, lines = _submit(d, fake_sbatch, "t.py")
    assert rc == 1 and len(lines) == 1 and "pyproject.toml" in lines[0]
    assert not (tmp_path / "sbatch-calls").exists(), "sbatch was called"
    assert sorted(p.name for p in d.iterdir()) == ["t.py"], "something was written"


def test_broken_pyproject(tmp_path: Path, fake_sbatch: Path) -> None:
    d = tmp_path / "broken"
    d.mkdir()
    (d / "pyproject.toml").write_text("[project\nname=")
    (d / "t.py").write_text("print(1)\n")
    rc, lines = _submit(d, fake_sbatch, "t.py")
    assert rc == 1 and len(lines) == 1 and "invalid TOML" in lines[0]
    assert not (tmp_path / "sbatch-calls").exists(), "sbatch was called"
    assert sorted(p.name for p in d.iterdir()) == ["pyproject.toml", "t.py"]


def test_a_python_version_file_that_is_not_text(
    project: Path, fake_sbatch: Path, tmp_path: Path
) -> None:
    (project / ".python-version").write_bytes(b"\xff\xfe3\x00.\x001\x001\x00\n")
    rc, lines = _submit(project, fake_sbatch, "train.py")
    assert rc == 1 and len(lines) == 1, lines
    assert ".python-version (not UTF-8 text); write the Python version in it" in lines[0]
    assert not (tmp_path / "sbatch-calls").exists(), "sbatch was called"


def test_stale_lock_with_locked(project: Path, fake_sbatch: Path, tmp_path: Path) -> None:
    pp = project / "pyproject.toml"
    pp.write_text(pp.read_text().replace('"six', '"idna", "six'))
    rc, lines = _submit(project, fake_sbatch, "--locked", "train.py")
    assert rc == 1 and len(lines) == 1 and "out of date" in lines[0]
    assert not (tmp_path / "sbatch-calls").exists()


def test_sbatch_missing(project: Path, tmp_path: Path) -> None:
    # a PATH with uv but without sbatch
    bindir = tmp_path / "bin"
    bindir.mkdir()
    import shutil

    uv = shutil.which("uv")
    assert uv
    (bindir / "uv").symlink_to(uv)
    r = uvslurm("submit", "train.py", cwd=project, env={"PATH": f"{bindir}:/nonexistent"})
    assert r.returncode == 1
    assert "sbatch not found" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback(project: Path, fake_sbatch: Path) -> None:
    r = uvslurm("submit", "--debug", "nope.py", cwd=project)
    assert r.returncode == 1 and "Traceback" in r.stderr
    assert r.stderr.rstrip().splitlines()[-1].startswith("uvslurm.errors.UvslurmError: nope.py")


def test_fake_sbatch_submission_prints_job_id_and_keeps_a_copy(
    project: Path, fake_sbatch: Path, isolated_user: Path, tmp_path: Path
) -> None:
    r = uvslurm(
        "submit", "train.py", "x", cwd=project, env={"PATH": f"{fake_sbatch}:{os.environ['PATH']}"}
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "4242\n"
    copy = isolated_user / "state" / "uvslurm" / "scripts" / "4242.sh"
    assert copy.is_file()
    submitted = Path((tmp_path / "sbatch-calls").read_text().split()[-1])
    assert submitted.parent == copy.parent and not submitted.exists(), "renamed after submission"
    assert copy.read_text().startswith("#!/bin/bash\n#SBATCH")
    assert "4242" in r.stderr and "fingerprint" in r.stderr


def test_option_precedence_config_profile_script_cli(project: Path) -> None:
    """config defaults < --profile < #SBATCH lines of the script < command line."""
    with (project / "pyproject.toml").open("a") as f:
        f.write(
            '\n[tool.uvslurm.sbatch]\ntime = "1"\npartition = "cfg"\nqos = "cfgq"\nmem = "1G"\n'
            '[tool.uvslurm.profiles.p]\ntime = "2"\npartition = "prof"\nmem = "2G"\n'
        )  # fmt: skip
    (project / "job.sh").write_text("#!/bin/bash\n#SBATCH --time=3\n#SBATCH --mem=3G\necho hi\n")
    r = uvslurm("submit", "--dry-run", "--uvslurm-profile", "p", "-t", "4", "job.sh", cwd=project)
    assert r.returncode == 0, r.stderr
    active = [line for line in r.stdout.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --time=4" in active  # CLI over the script
    assert "#SBATCH --mem=3G" in active  # script over the profile
    assert "#SBATCH --partition=prof" in active  # profile over the config
    assert "#SBATCH --qos=cfgq" in active  # config where nothing else says
    assert not any(
        line.startswith(("#SBATCH --time=3", "#SBATCH --mem=2G", "#SBATCH --time=2"))
        for line in active
    )
