"""The trust model (docs/reliability.md, "Threat model") without the cluster: a project or a
config file that another user could have written never makes uvslurm run a program, through
any command; the user's own `uvslurm trust` is the one way to allow one.

"Another user" is `nobody` here (chown as root); tests/test_multiuser.py repeats the attacks
with real users and real jobs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import uvslurm

NOBODY = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else None
needs_root = pytest.mark.skipif(
    NOBODY is None and os.environ.get("CI") != "true",
    reason="needs root to hand files to another user (CI runs as root)",
)


def _with_commands(project: Path, marker: Path, uv: str | None = None) -> None:
    """A [tool.uvslurm] that would leave `marker` behind if its command ever ran."""
    extra = f'uv = "{uv}"\n' if uv else ""
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(
        text + f'\n[tool.uvslurm]\n{extra}fingerprint.commands = ["touch {marker}"]\n'
    )


def _give_away(path: Path, mode: int = 0o777) -> None:
    """`path` and everything under it now belong to nobody, writable by all."""
    assert NOBODY is not None
    for p in [path, *path.rglob("*")]:
        os.chown(p, NOBODY, -1, follow_symlinks=False)
        if not p.is_symlink():
            p.chmod(mode)


@needs_root
@pytest.mark.parametrize(
    "argv",
    [
        ("env",),
        ("env", "--shell", "fish"),
        ("fingerprint", "--json"),
        ("prepare", "--no-node-local"),
        ("submit", "--dry-run", "--", "python", "-V"),
        ("config",),
        ("template", "cpu"),
    ],
)
def test_a_planted_project_above_you_never_runs_a_command(
    project: Path, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    """Another user's pyproject.toml above your directory (a shared /tmp, a group directory):
    its fingerprint.commands and its `uv` never run, and the command says why in one line."""
    planted = tmp_path / "shared"
    shutil.move(project, planted)
    pwned = tmp_path / "PWNED"
    _with_commands(planted, pwned, uv=str(tmp_path / "evil-uv"))
    (tmp_path / "evil-uv").write_text(f"#!/bin/sh\ntouch {pwned}\n")
    (tmp_path / "evil-uv").chmod(0o755)
    _give_away(planted)
    mine = planted / "mine"
    mine.mkdir(mode=0o755)  # yours, below theirs
    r = uvslurm(*argv, cwd=mine)
    assert not pwned.exists(), f"uvslurm {argv} ran the planted command"
    assert r.returncode != 0, r.stdout
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("uvslurm: error: "), r.stderr
    assert f"not using the project in {planted}: {planted} belongs to nobody" in err[0]
    assert f"run `uvslurm trust {planted}`" in err[0]
    assert "Traceback" not in r.stderr


@needs_root
def test_doctor_reports_a_planted_project_and_runs_nothing_of_it(
    project: Path, tmp_path: Path
) -> None:
    planted = tmp_path / "shared"
    shutil.move(project, planted)
    pwned = tmp_path / "PWNED"
    _with_commands(planted, pwned)
    _give_away(planted)
    r = uvslurm("doctor", "--json", cwd=planted)
    assert not pwned.exists()
    assert '"what": "configuration"' in r.stdout and "belongs to nobody" in r.stdout


@needs_root
def test_a_group_writable_project_dir_is_refused_until_trusted(
    project: Path, tmp_path: Path
) -> None:
    project.chmod(0o775)
    r = uvslurm("submit", "--dry-run", "--", "python", "-V", cwd=project)
    assert r.returncode == 1
    assert "is writable by others (mode 775)" in r.stderr
    assert uvslurm("trust", cwd=project).returncode == 0
    ok = uvslurm("submit", "--dry-run", "--", "python", "-V", cwd=project)
    assert ok.returncode == 0, ok.stderr


def test_own_project_commands_run_only_after_uvslurm_trust(project: Path, tmp_path: Path) -> None:
    """A cloned repository is yours, but its fingerprint.commands came from elsewhere: direnv's
    rule. Trust covers exactly the values trusted: an edit needs a new `uvslurm trust`."""
    ran = tmp_path / "RAN"
    _with_commands(project, ran)
    refused = uvslurm("fingerprint", "--json", cwd=project)
    assert refused.returncode == 1 and not ran.exists()
    assert "names programs to run (fingerprint.commands = ['touch " in refused.stderr
    assert f"run `uvslurm trust {project}`" in refused.stderr
    env = uvslurm("env", cwd=project)
    assert env.returncode == 1 and not ran.exists()
    assert env.stdout.startswith('if [ -n "${UVSLURM_ENV_PROJECT:-}" ]; then unset'), env.stdout

    t = uvslurm("trust", cwd=project)
    assert t.returncode == 0, t.stderr
    assert f"trusted {project}" in t.stdout and "touch " in t.stdout
    ok = uvslurm("fingerprint", "--json", cwd=project)
    assert ok.returncode == 0, ok.stderr
    assert ran.exists(), "the trusted command did not run"
    assert f'"cmd.touch {ran}": ""' in ok.stdout

    ran.unlink()
    other = tmp_path / "OTHER"
    text = (project / "pyproject.toml").read_text().replace(f"touch {ran}", f"touch {other}")
    (project / "pyproject.toml").write_text(text)
    again = uvslurm("submit", "--dry-run", "train.py", cwd=project)
    assert again.returncode == 1 and "names programs to run" in again.stderr
    assert not other.exists()
    # other settings may change freely (uv add, a new sbatch default)
    uvslurm("trust", cwd=project, check=True)
    (project / "pyproject.toml").write_text(text + '\n[tool.uvslurm.sbatch]\ntime = "5"\n')
    # (a second [tool.uvslurm.*] table: the commands above are unchanged)
    assert uvslurm("submit", "--dry-run", "train.py", cwd=project).returncode == 0
    assert uvslurm("trust", "--revoke", cwd=project).stdout.startswith("no longer trusted")
    assert uvslurm("submit", "--dry-run", "train.py", cwd=project).returncode == 1


def test_config_files_that_others_can_write_may_not_name_programs(
    project: Path, tmp_path: Path, isolated_user: Path
) -> None:
    ran = tmp_path / "RAN"
    user_file = isolated_user / "config" / "uvslurm" / "config.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(f'[fingerprint]\ncommands = ["touch {ran}"]\n')
    user_file.chmod(0o666)
    r = uvslurm("fingerprint", cwd=project)
    assert r.returncode == 1 and not ran.exists()
    assert f"{user_file} sets fingerprint.commands, which run programs, but" in r.stderr
    assert "is writable by others (mode 666)" in r.stderr
    user_file.chmod(0o644)
    assert uvslurm("fingerprint", cwd=project).returncode == 0
    assert ran.exists(), "the user's own private config file is trusted"
    # settings that run nothing are read from any file (the depot is checked on its own)
    user_file.write_text('[sbatch]\ntime = "7"\n')
    user_file.chmod(0o666)
    r = uvslurm("submit", "--dry-run", "train.py", cwd=project)
    assert r.returncode == 0 and "#SBATCH --time=7" in r.stdout


def test_the_trust_record_must_be_the_users_own(project: Path, isolated_user: Path) -> None:
    _with_commands(project, isolated_user / "RAN")
    uvslurm("trust", cwd=project, check=True)
    store = isolated_user / "state" / "uvslurm" / "trust"
    assert uvslurm("fingerprint", cwd=project).returncode == 0
    store.chmod(0o777)  # anyone could have written a record
    r = uvslurm("fingerprint", cwd=project)
    assert r.returncode == 1 and "names programs to run" in r.stderr


@needs_root
def test_bash_hook_unsets_the_venv_in_an_untrusted_tree(project: Path, tmp_path: Path) -> None:
    """After `cd` from your project into another user's tree, plain `uv run` must not keep
    using your project's venv, and nothing of theirs runs."""
    planted = tmp_path / "shared"
    shutil.copytree(project, planted)
    pwned = tmp_path / "PWNED"
    _with_commands(planted, pwned)
    _give_away(planted)
    hook = uvslurm("shell-hook", "bash", cwd=project, check=True).stdout
    script = f"""
{hook}
cd {project} && _uvslurm_hook && echo "in project: ${{UV_PROJECT_ENVIRONMENT:-unset}}"
cd {planted} && _uvslurm_hook && echo "in planted: ${{UV_PROJECT_ENVIRONMENT:-unset}}"
"""
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("in project: /") and "shell-" in lines[0], r.stdout
    assert lines[1] == "in planted: unset", r.stdout
    assert not pwned.exists()


@needs_root
def test_the_search_for_a_project_stops_above_a_directory_of_someone_else(
    project: Path, tmp_path: Path
) -> None:
    """Your project, but you stand in a directory another user controls inside it (a shared
    data directory): what is above that directory is not taken as your project."""
    theirs = project / "data"
    theirs.mkdir()
    inner = theirs / "run"
    inner.mkdir()
    _give_away(theirs, 0o755)
    r = uvslurm("submit", "--dry-run", "--", "python", "-V", cwd=inner)
    assert r.returncode == 1
    assert f"no pyproject.toml in {inner} or the parent directories that are yours" in r.stderr
    # from a directory of yours below it, the project is found as usual
    assert uvslurm("submit", "--dry-run", "--", "python", "-V", cwd=project / "src").returncode == 0
