"""The shell hook without Python: after a directory or module change the hook runs one bash on
the program that `uvslurm shell-hook` writes (shellcache.py, resources/hook.sh), which answers
from `uvslurm env`'s record of the project, with the prolog's own fingerprint code. What it
answers must be what `uvslurm env` answers, byte for byte, in every shape; where it cannot be
sure it must say so (exit 3) and leave the decision to `uvslurm env`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LMOD_INIT, uvslurm
from uvslurm import shellcache
from uvslurm.commands import shell_hook

SHOW = 'printf "%s\\0%s" "${UV_PROJECT_ENVIRONMENT-<unset>}" "${UVSLURM_ENV_PROJECT-<unset>}"'
UNSET = ("<unset>", "<unset>")


def evaluated(code: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """What bash has after eval of `code`: UV_PROJECT_ENVIRONMENT and UVSLURM_ENV_PROJECT."""
    r = subprocess.run(["bash", "--norc", "-c", f"eval {_q(code)}; {SHOW}"], capture_output=True,
                       text=True, env={**os.environ, **(env or {})}, check=True)  # fmt: skip
    a, b = r.stdout.split("\0")
    return a, b


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def python_env(cwd: Path, **env: str) -> tuple[str, str]:
    """`uvslurm env` in `cwd` (which leaves its record), evaluated."""
    r = uvslurm("env", "--shell", "bash", cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    return evaluated(r.stdout)


def program() -> Path:
    path = shellcache.ensure_program()
    assert path is not None and path.is_file()
    return path


def fast(cwd: Path, shell: str = "bash", **env: str) -> tuple[int, str]:
    """The program's exit code and output in `cwd`."""
    r = subprocess.run(["bash", str(program()), shell], cwd=cwd, capture_output=True, text=True,
                       env={**os.environ, **env})  # fmt: skip
    return r.returncode, r.stdout


def fast_env(cwd: Path, **env: str) -> tuple[str, str]:
    rc, out = fast(cwd, **env)
    assert rc == 0, f"the program did not decide (exit {rc})"
    return evaluated(out)


MODS = {"LOADEDMODULES": "mpich/1.0:gcc/12", "_LMFILES_": "/m/mpich/1.0.lua:/m/gcc/12.lua"}


def test_same_venv_as_uvslurm_env_at_the_root_in_a_subdirectory_and_with_modules(
    project: Path, isolated_user: Path
) -> None:
    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    plain = python_env(project)
    assert plain[0].startswith(str(isolated_user / "scratch" / "uvslurm") + "/")
    assert fast_env(project) == plain
    assert fast_env(sub) == python_env(sub) == plain
    # the record does not depend on the modules; the fingerprint, computed each time, does
    with_mods = fast_env(project, **MODS)
    assert with_mods == python_env(project, **MODS)
    assert with_mods[0] != plain[0] and with_mods[1] == plain[1]


def test_same_answer_in_a_workspace_member(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    member = ws / "packages" / "alpha"
    member.mkdir(parents=True)
    (ws / "pyproject.toml").write_text(
        '[project]\nname = "root"\nversion = "0"\nrequires-python = ">=3.11"\n'
        '[tool.uv.workspace]\nmembers = ["packages/*"]\n'
    )
    (member / "pyproject.toml").write_text('[project]\nname = "alpha"\nversion = "0"\n')
    (member / ".python-version").write_text("3.11\n")
    at_member = python_env(member)
    assert at_member[1] == str(ws), "the workspace root is the project"
    assert fast_env(member) == at_member
    at_root = python_env(ws)
    assert fast_env(ws) == at_root
    assert at_root[0] != at_member[0], "--package alpha is in the key"


def test_outside_any_project_and_above_a_directory_others_can_write(project: Path) -> None:
    outside = project.parent / "elsewhere"
    outside.mkdir()
    rc, out = fast(outside)
    assert rc == 0 and evaluated(out) == UNSET
    assert python_env(outside) == UNSET
    python_env(project)
    shared = project / "shared"
    shared.mkdir()
    shared.chmod(0o775)  # group-writable: the search stops there, in Python and in bash
    assert python_env(shared) == UNSET
    assert fast_env(shared) == UNSET
    shared.chmod(0o755)
    assert fast_env(shared) == python_env(project)


def test_a_change_of_what_env_read_is_left_to_uvslurm_env(project: Path, tmp_path: Path) -> None:
    python_env(project)
    assert fast(project)[0] == 0
    # a setting that changes the fingerprint: the record no longer holds
    with (project / "pyproject.toml").open("a") as f:
        f.write('\n[tool.uvslurm.fingerprint]\nenv = ["MY_TOOLCHAIN"]\n')
    assert fast(project)[0] == 3
    new = python_env(project, MY_TOOLCHAIN="a")
    assert fast_env(project, MY_TOOLCHAIN="a") == new
    assert fast_env(project, MY_TOOLCHAIN="b") == python_env(project, MY_TOOLCHAIN="b") != new
    # a file that appears where env found none, an environment variable env read
    (project / ".python-version").write_text("3.11\n")
    assert fast(project)[0] == 3
    python_env(project)
    assert fast(project, UVSLURM_DEPOT=str(tmp_path / "other-depot"))[0] == 3
    assert fast(project)[0] == 0
    # another uvslurm's program (another fingerprint code, maybe) does not believe this record
    other = program().with_name("hook-000000000000.sh")
    shutil.copy(program(), other)
    assert subprocess.run(["bash", str(other), "bash"], cwd=project).returncode == 3
    # a depot named with a variable in the user's config file
    cfg = Path(os.environ["XDG_CONFIG_HOME"]) / "uvslurm" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('depot = "$MY_DEPOT/uvslurm"\n')
    assert fast(project, MY_DEPOT=str(tmp_path / "d1"))[0] == 3
    in_d1 = python_env(project, MY_DEPOT=str(tmp_path / "d1"))
    assert in_d1[0].startswith(str(tmp_path / "d1" / "uvslurm") + "/")
    assert fast_env(project, MY_DEPOT=str(tmp_path / "d1")) == in_d1
    assert fast(project, MY_DEPOT=str(tmp_path / "d2"))[0] == 3


def test_machine_facts_not_cached_are_left_to_uvslurm_env(project: Path,
                                                           isolated_user: Path) -> None:  # fmt: skip
    """What only a cold start computes (the CPU, uv's version, the interpreter: processes, and
    a Python) the program does not: it exits 3, and `uvslurm env` runs the prolog, which
    caches them."""
    want = python_env(project)
    shutil.rmtree(isolated_user / "scratch" / "uvslurm" / ".facts")
    assert fast(project)[0] == 3
    assert python_env(project) == want
    assert fast_env(project) == want


def test_without_stat_the_program_decides_nothing_it_cannot_check(
    project: Path, tmp_path: Path
) -> None:
    """The modes come from one `stat`: where none runs, a directory on the way up is not taken
    for one that others can write (which would say "no project"): exit 3, Python decides."""
    python_env(project)
    sub = project / "sub"
    sub.mkdir()
    bash = shutil.which("bash")
    assert bash is not None
    r = subprocess.run([bash, str(program()), "bash"], cwd=sub, capture_output=True, text=True,
                       env={**os.environ, "PATH": str(tmp_path / "nothing")})  # fmt: skip
    assert r.returncode == 3, r.stdout
    rc, out = fast(tmp_path)  # outside any project nothing needs checking
    assert rc == 0 and evaluated(out) == UNSET


@pytest.mark.parametrize("name", ["a[$(touch pwned)]", "1x", "", "UVSLURM_X;touch pwned"])
@pytest.mark.parametrize("tag", ["e", "u", "s"])
def test_a_record_naming_no_variable_runs_nothing(project: Path, name: str, tag: str) -> None:
    """A record is the user's own file, but what it names is still only compared or exported
    as a variable name: `${!name}` of `a[$(cmd)]` would run cmd."""
    python_env(project)
    record = shellcache.store() / str(shellcache.record_name(str(project)))
    with record.open("a") as f:
        f.write(f"{tag}\x1f{name}\x1fv\x1e")
    assert fast(project)[0] == 3
    assert not (project / "pwned").exists()


@pytest.mark.parametrize("sh", ["bash", "zsh", "fish"])
def test_hostile_project_path_round_trips_in_each_shell(sh: str, tmp_path: Path,
                                                        project: Path) -> None:  # fmt: skip
    if not shutil.which(sh):
        pytest.skip(f"{sh} is not installed")
    weird = tmp_path / "q'uote $(touch pwned) `x` back\\slash\nnl %2F"
    shutil.move(project, weird)
    want = python_env(weird)
    rc, code = fast(weird, sh)
    assert rc == 0
    show = {"fish": 'printf "%s\\0%s" "$UV_PROJECT_ENVIRONMENT" "$UVSLURM_ENV_PROJECT"'}.get(
        sh, SHOW
    )
    argv = {"bash": ["bash", "--norc", "-c"], "zsh": ["zsh", "-f", "-c"],
            "fish": ["fish", "--no-config", "-c"]}[sh]  # fmt: skip
    r = subprocess.run([*argv, code + "\n" + show], capture_output=True, text=True, check=True,
                       cwd=tmp_path)  # fmt: skip
    assert tuple(r.stdout.split("\0")) == want
    assert not (tmp_path / "pwned").exists()


PROMPT = {  # how each shell runs its prompt hooks
    "bash": 'eval "$PROMPT_COMMAND"',
    "zsh": "for f in $precmd_functions; do $f; done",
    "fish": "emit fish_prompt",
}
ARGV = {"bash": ["bash", "--norc", "--noprofile", "-c"], "zsh": ["zsh", "-f", "-c"],
        "fish": ["fish", "--no-config", "-c"]}  # fmt: skip


@pytest.mark.parametrize("sh", ["bash", "zsh", "fish"])
def test_hook_after_cd_runs_no_uvslurm_when_the_record_holds(sh: str, project: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    """The hook's `uvslurm env` replaced by a program that leaves a mark and fails: after a cd
    into a project whose record holds, and out of it, the hook sets and unsets
    UV_PROJECT_ENVIRONMENT right without ever calling it."""
    if not shutil.which(sh):
        pytest.skip(f"{sh} is not installed")
    want = python_env(project)
    mark = tmp_path / "uvslurm-was-called"
    poison = tmp_path / "poison"
    poison.write_text(f"#!/bin/sh\ntouch '{mark}'\nexit 1\n")
    poison.chmod(0o755)
    hook = uvslurm("shell-hook", sh, cwd=tmp_path, check=True).stdout
    called = f"{shell_hook.quote(sh, sys.executable)} -m uvslurm"
    assert called in hook
    hook = hook.replace(called, str(poison))
    show = 'printf "%s|%s\\n" "$UV_PROJECT_ENVIRONMENT" "$UVSLURM_ENV_PROJECT"'
    script = "\n".join([hook, f"cd '{project}'", PROMPT[sh], show, "cd /", PROMPT[sh], show])
    r = subprocess.run([*ARGV[sh], script], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{want[0]}|{want[1]}", "|"]
    assert not mark.exists(), "the hook called uvslurm"
    # without a record it does ask `uvslurm env` (here the poison: uv is left unset)
    shutil.rmtree(shellcache.store())
    subprocess.run([*ARGV[sh], script], capture_output=True, text=True, cwd=tmp_path)
    assert mark.exists()


def test_hook_after_cd_starts_no_python(project: Path, tmp_path: Path) -> None:
    """strace: the prompt after a cd into a project with a record starts bash and coreutils,
    never a Python (neither uvslurm nor the interpreter uv would probe)."""
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    want = python_env(project)
    hook = tmp_path / "hook.sh"
    hook.write_text(uvslurm("shell-hook", "bash", cwd=tmp_path, check=True).stdout)
    trace = tmp_path / "trace"
    script = f"source '{hook}'; cd '{project}'; eval \"$PROMPT_COMMAND\"; {SHOW}"
    r = subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o", str(trace),
                        "bash", "--norc", "-c", script], capture_output=True, text=True,
                       check=True)  # fmt: skip
    assert tuple(r.stdout.split("\0")) == want
    execs = [line for line in trace.read_text().splitlines() if "execve(" in line]
    assert any(str(program()) in line for line in execs), "the program ran"
    assert not [line for line in execs if "python" in line.split("execve(")[1].split(",")[0]]


def test_the_program_and_the_hooks_are_shellcheck_clean(tmp_path: Path) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed")
    subprocess.run(["shellcheck", "-S", "warning", str(program())], check=True)
    hook = tmp_path / "hook.bash"
    hook.write_text(shell_hook.text("bash"))
    subprocess.run(["shellcheck", "-S", "warning", str(hook)], check=True)


def test_real_lmod_modules_same_venv_as_uvslurm_env(
    project: Path, tmp_path: Path, modulepath: Path
) -> None:
    """Modules loaded and swapped with the real Lmod: after each change the program, from the
    record written under the modules before, answers what `uvslurm env` answers then."""
    py = f"'{sys.executable}' -m uvslurm env"
    both = (
        f'f=$(bash \'{program()}\' bash) && eval "$f" && echo "SH=$UV_PROJECT_ENVIRONMENT" && '
        f'p=$({py}) && eval "$p" && echo "PY=$UV_PROJECT_ENVIRONMENT"'
    )
    script = " && ".join([
        f"source {LMOD_INIT}", f"export MODULEPATH='{modulepath}'", "module purge", f"{py} >/dev/null",
        both, "module load mpich/1.0 tclmod/1.0", both, "module load mpich/2.0", both,
    ])  # fmt: skip
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=project)
    assert r.returncode == 0, r.stderr
    py_venvs = [line[3:] for line in r.stdout.splitlines() if line.startswith("PY=")]
    sh_venvs = [line[3:] for line in r.stdout.splitlines() if line.startswith("SH=")]
    assert len(py_venvs) == 3 and sh_venvs == py_venvs
    assert len(set(py_venvs)) == 3, "each module set has its own venv"
