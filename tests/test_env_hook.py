"""`uvslurm env` and the shell hooks, in real bash, zsh and fish."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import HOSTILE_NAMES, files_under, uvslurm, wait_for
from uvslurm.commands import env as env_cmd
from uvslurm.nodeenv import project_id

SHELLS = {
    "bash": ["bash", "--norc", "--noprofile", "-c"],
    "zsh": ["zsh", "-f", "-c"],
    "fish": ["fish", "--no-config", "-c"],
}


def shell(name: str, script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    if not shutil.which(name):
        pytest.skip(f"{name} is not installed")
    return subprocess.run([*SHELLS[name], script], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env})  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("sh", ["bash", "zsh", "fish"])
def test_env_output_round_trips_through_each_shell(sh: str, name: str) -> None:
    value = f"/scratch/{name}\nline2/shell-abc"
    code = env_cmd.render(sh, {"UV_PROJECT_ENVIRONMENT": value, "UVSLURM_ENV_PROJECT": "/p"})
    r = shell(sh, code + 'printf "%s" "$UV_PROJECT_ENVIRONMENT"', Path.cwd())
    assert r.returncode == 0, r.stderr
    assert r.stdout == value


@pytest.mark.parametrize("sh", ["bash", "zsh", "fish"])
def test_leaving_a_project_unsets_only_what_env_set(sh: str) -> None:
    unset = env_cmd.render(sh, None)
    ours = shell(sh, unset + 'printf "[%s]" "$UV_PROJECT_ENVIRONMENT"', Path.cwd(),
                 UV_PROJECT_ENVIRONMENT="/x", UVSLURM_ENV_PROJECT="/p")  # fmt: skip
    assert ours.stdout == "[]", ours.stderr
    theirs = shell(
        sh,
        unset + 'printf "[%s]" "$UV_PROJECT_ENVIRONMENT"',
        Path.cwd(),
        UV_PROJECT_ENVIRONMENT="/mine",
    )
    assert theirs.stdout == "[/mine]"


PROMPT = {  # how each shell runs its prompt hooks
    "bash": 'eval "$PROMPT_COMMAND"',
    "zsh": "for f in $precmd_functions; do $f; done",
    "fish": "emit fish_prompt",
}
SETVAR = {"bash": "export {k}={v}", "zsh": "export {k}={v}", "fish": "set -gx {k} {v}"}


@pytest.mark.parametrize("sh", ["bash", "zsh", "fish"])
def test_hook_follows_cd_and_modules_and_uv_sync_writes_only_the_depot(
    sh: str, project: Path, tmp_path: Path, isolated_user: Path
) -> None:
    b = tmp_path / "projB"
    shutil.copytree(project, b)
    before = files_under(project)
    hook = uvslurm("shell-hook", sh, cwd=tmp_path, check=True).stdout
    show = 'printf "%s\\n" "VENV=$UV_PROJECT_ENVIRONMENT"'
    uv = shutil.which("uv")
    mods = (
        SETVAR[sh].format(k="LOADEDMODULES", v="mpich/1.0")
        + "; "
        + SETVAR[sh].format(k="_LMFILES_", v="/m/mpich/1.0.lua")
    )
    script = "\n".join(
        [
            hook,
            f"cd '{project}'", PROMPT[sh], show,
            f"'{uv}' sync -q", PROMPT[sh], show,
            f"cd '{b}'", PROMPT[sh], show,
            mods, PROMPT[sh], show,
            "cd /", PROMPT[sh], show,
        ]
    )  # fmt: skip
    r = shell(sh, script, tmp_path)
    assert r.returncode == 0, r.stderr
    venvs = [line[5:] for line in r.stdout.splitlines() if line.startswith("VENV=")]
    a1, a2, b1, b_mod, outside = venvs
    depot = isolated_user / "scratch" / "uvslurm"
    assert a1 == a2 and Path(a1).parent == depot / project_id(str(project))
    assert Path(a1, "bin", "python").exists(), "uv sync built the venv in the depot"
    assert files_under(project) == before, "nothing new under the project"
    assert Path(b1).parent == depot / project_id(str(b))
    assert b_mod != b1 and Path(b_mod).parent == Path(b1).parent, "modules change the venv"
    assert outside == ""


def test_hook_is_cheap_when_nothing_changed(project: Path, tmp_path: Path) -> None:
    """Not a timed assertion: proves the unchanged prompt starts no process (strace)."""
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    hook = uvslurm("shell-hook", "bash", cwd=tmp_path, check=True).stdout
    (tmp_path / "hook.sh").write_text(hook)
    trace = tmp_path / "trace"
    script = f"source '{tmp_path}/hook.sh'; cd '{project}'; eval \"$PROMPT_COMMAND\"; echo MARK >/dev/null; for i in 1 2 3 4 5; do eval \"$PROMPT_COMMAND\"; done"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork", "-o", str(trace),
                    "bash", "--norc", "-c", script], check=True, capture_output=True)  # fmt: skip
    lines = trace.read_text().splitlines()
    # (the first prompt's prolog asks uv which Python it would use; uv runs the Pythons on PATH)
    execs = [line for line in lines if "execve(" in line and '"-m", "uvslurm"' in line]
    assert len(execs) == 1, "one uvslurm process for the first prompt, none for the next five"


def test_hook_in_an_interactive_bash_driven_through_tmux(
    project: Path, tmp_path: Path, isolated_user: Path
) -> None:
    """A real interactive bash (prompts and all) in tmux: cd in, uv sync, cd out."""
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")

    hook = tmp_path / "hook.sh"
    hook.write_text(uvslurm("shell-hook", "bash", cwd=tmp_path, check=True).stdout)
    out = tmp_path / "seen"
    uv = shutil.which("uv")
    session = f"uvslurm-test-{os.getpid()}"
    env = {**os.environ, "HOME": str(tmp_path), "PS1": "$ "}
    subprocess.run(
        ["tmux", "-L", session, "new-session", "-d", "-s", session, "bash --norc -i"],
        env=env,
        check=True,
    )
    try:
        for line in (f"source '{hook}'", f"cd '{project}'", f"'{uv}' sync -q",
                     f'echo "IN=$UV_PROJECT_ENVIRONMENT" >> {out}', "cd /", f'echo "OUT=$UV_PROJECT_ENVIRONMENT" >> {out}'):  # fmt: skip
            # the shell reads typed-ahead lines in order, running the hook before each prompt
            subprocess.run(
                ["tmux", "-L", session, "send-keys", "-t", session, line, "Enter"], check=True
            )
        wait_for(lambda: out.exists() and "OUT=" in out.read_text(), 60, "the shell's last line")
    finally:
        subprocess.run(["tmux", "-L", session, "kill-server"], capture_output=True)
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert Path(seen["IN"]).parent == isolated_user / "scratch" / "uvslurm" / project_id(
        str(project)
    )
    assert Path(seen["IN"], "bin", "python").exists()
    assert seen["OUT"] == ""
    assert not (project / ".venv").exists()
