"""commands/template.py and commands/config_cmd.py in-process (their `run` called as the CLI
calls it), output.py's messages and proc.py's error mapping."""

from __future__ import annotations

import argparse
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from uvslurm import cli, output, proc
from uvslurm.commands import config_cmd, template
from uvslurm.context import Context
from uvslurm.errors import NoProject, TrustError, UvslurmError


def _run(module: Any, ns: argparse.Namespace, cwd: Path) -> int:
    """A command's `run` as the CLI calls it."""
    result: int = module.run(Context.from_args(ns, cwd), ns)
    return result


PYPROJECT = '[project]\nname = "demo"\nversion = "0"\n'


def _project(path: Path, tool: str = "") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "pyproject.toml").write_text(PYPROJECT + tool)
    return path


def _user_config(isolated_user: Path, text: str) -> Path:
    f = isolated_user / "config" / "uvslurm" / "config.toml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    return f


# --- template ------------------------------------------------------------------------------


def _tpl(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"name": None, "output": None, "profile": None, "project": None}
    base.update(kw)
    return argparse.Namespace(**base)


def test_template_summaries() -> None:
    assert template.summary("cpu") == "one task with a few cores"
    assert template.summary("gpu") == "one task with one GPU"
    assert template.summary("array") == "the same script over many inputs, one array task per index"
    assert template.summary("mpi") == "one MPI rank per task over two nodes"


def test_template_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(template, _tpl(), tmp_path) == 0
    assert capsys.readouterr().out == (
        "cpu    one task with a few cores\n"
        "gpu    one task with one GPU\n"
        "array  the same script over many inputs, one array task per index\n"
        "mpi    one MPI rank per task over two nodes\n"
    )


def test_template_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in template.NAMES:
        assert _run(template, _tpl(name=name), tmp_path) == 0
        assert capsys.readouterr().out == template.text_of(name)
    assert template.text_of("cpu").startswith('#!/bin/bash\n# uvslurm template "cpu"')


def test_template_unknown(tmp_path: Path) -> None:
    with pytest.raises(UvslurmError) as e:
        _run(template, _tpl(name="nope"), tmp_path)
    assert e.value.line() == "unknown template 'nope'; choose one of: cpu, gpu, array, mpi"


def test_fill() -> None:
    text = (
        "#!/bin/bash\n#SBATCH --time=00:10:00\n#SBATCH --mem=2G\n#SBATCH --exclusive\n"
        "#SBATCH --nodes=1\n  #SBATCH --mem=1G\n#SBATCH --ntasks=1"
    )
    got = template.fill(text, {"time": "1:00:00", "mem": "a b", "exclusive": True,
                               "nodes": True, "partition": "gpu", "ntasks": "4"})  # fmt: skip
    assert got == (
        "#!/bin/bash\n#SBATCH --time=1:00:00  # from your config\n"
        '#SBATCH --mem="a b"  # from your config\n#SBATCH --exclusive\n#SBATCH --nodes=1\n'
        "  #SBATCH --mem=1G\n#SBATCH --ntasks=4  # from your config\n"
    )
    assert template.fill(text, {}) == text


def test_template_filled_from_config_and_profile(
    isolated_user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _user_config(isolated_user, '[sbatch]\nmem = "8G"\n')
    proj = _project(
        tmp_path / "p",
        '[tool.uvslurm.sbatch]\ntime = "2:00:00"\n[tool.uvslurm.profiles.big]\nmem = "64G"\n'
        "cpus_per_task = 16\n",
    )
    sub = proj / "sub"
    sub.mkdir()
    assert _run(template, _tpl(name="cpu"), sub) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --time=2:00:00  # from your config\n" in out
    assert "#SBATCH --mem=8G  # from your config\n" in out
    assert "#SBATCH --cpus-per-task=2\n" in out
    assert _run(template, _tpl(name="cpu", profile="big"), sub) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --mem=64G  # from your config\n" in out
    assert "#SBATCH --cpus-per-task=16  # from your config\n" in out
    assert "#SBATCH --time=2:00:00  # from your config\n" in out
    # --project names the project directory, relative to cwd
    assert _run(template, _tpl(name="cpu", project="p"), tmp_path) == 0
    assert "#SBATCH --time=2:00:00  # from your config\n" in capsys.readouterr().out


def test_template_unknown_profile(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p", "[tool.uvslurm.profiles.big]\nmem = \"1G\"\n"
                    "[tool.uvslurm.profiles.gpu]\ngpus = 1\n")  # fmt: skip
    with pytest.raises(UvslurmError) as e:
        _run(template, _tpl(name="cpu", profile="huge"), proj)
    assert e.value.message == "unknown profile 'huge' (available: big, gpu)"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UvslurmError) as e:
        _run(template, _tpl(name="cpu", profile="huge"), empty)
    assert e.value.message == "unknown profile 'huge' (available: none defined)"


def test_template_outside_a_project_uses_the_user_config(
    isolated_user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _user_config(isolated_user, '[sbatch]\ntime = "5"\n')
    here = tmp_path / "nowhere"
    here.mkdir()
    assert _run(template, _tpl(name="gpu"), here) == 0
    assert "#SBATCH --time=5  # from your config\n" in capsys.readouterr().out
    with pytest.raises(NoProject):
        _run(template, _tpl(name="gpu", project="missing"), here)


def test_template_untrusted_project_is_an_error(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p")
    proj.chmod(0o777)
    with pytest.raises(TrustError):
        _run(template, _tpl(name="cpu"), proj)


def test_template_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(template, _tpl(name="mpi", output="job.sh"), tmp_path) == 0
    assert capsys.readouterr().out == "wrote job.sh: submit it with `uvslurm submit job.sh`\n"
    dest = tmp_path / "job.sh"
    assert dest.read_text() == template.text_of("mpi")
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    dest.write_text("mine")
    with pytest.raises(UvslurmError) as e:
        _run(template, _tpl(name="cpu", output="job.sh"), tmp_path)
    assert e.value.line() == "job.sh exists; remove it or choose another file name"
    assert dest.read_text() == "mine"
    with pytest.raises(UvslurmError) as e:
        _run(template, _tpl(name="cpu", output="no/such/dir.sh"), tmp_path)
    assert e.value.line() == "cannot write no/such/dir.sh: No such file or directory"


# --- config --------------------------------------------------------------------------------


def _cfg(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"json": True, "project": None}
    base.update(kw)
    return argparse.Namespace(**base)


def _json(cwd: Path, capsys: pytest.CaptureFixture[str], **kw: object) -> dict[str, object]:
    assert _run(config_cmd, _cfg(**kw), cwd) == 0
    return {k: (v["value"], v["source"]) for k, v in json.loads(capsys.readouterr().out).items()}


def _load(cwd: Path, project_dir: str | None) -> tuple[Any, Any]:
    ctx = Context(cwd, project_dir)
    return ctx.project, ctx.config


def test_context_finds_the_project_and_its_config(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p", '[tool.uvslurm]\nimage = "tar.zst"\n')
    project, cfg = _load(proj, None)
    assert project is not None and project.root == proj
    assert cfg.settings["image"].source == f"{proj / 'pyproject.toml'} [tool.uvslurm]"
    project, cfg = _load(tmp_path, "p")
    assert project is not None and project.root == proj
    empty = tmp_path / "e"
    empty.mkdir()
    project, cfg = _load(empty, None)
    assert project is None and cfg.get("image") == "none"
    with pytest.raises(NoProject):
        _load(proj, "sub")


def test_config_json_defaults(
    isolated_user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    uv = tmp_path / "bin" / "uv"
    uv.parent.mkdir()
    uv.write_text("#!/bin/sh\n")
    uv.chmod(0o755)
    monkeypatch.setenv("PATH", str(uv.parent))
    got = _json(tmp_path, capsys)
    keys = list(got)
    assert keys[0] == "depot" and keys[-1] == "uv"
    assert keys[1:-1] == sorted(keys[1:-1])
    assert got["depot"] == (str(isolated_user / "scratch" / "uvslurm"), "default ($SCRATCH)")
    assert got["uv"] == (str(uv), "default (uv on PATH)")
    assert got["offline"] == ("auto", "default")
    assert got["fingerprint.modules"] == (True, "default")
    monkeypatch.delenv("SCRATCH")
    got = _json(tmp_path, capsys)
    assert got["depot"][1] == "default (user cache dir)"
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert _json(tmp_path, capsys)["uv"] == ("(not found)", "default (uv on PATH)")


def test_config_json_sources(
    isolated_user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("BIG", "/big")
    user = _user_config(isolated_user, 'depot = "$BIG/uvslurm"\nuv = "/nonexistent/uv"\n')
    monkeypatch.setenv("UVSLURM_OFFLINE", "true")
    got = _json(tmp_path, capsys)
    assert got["depot"] == ("/big/uvslurm", f"{user} (set as '$BIG/uvslurm')")
    assert got["uv"] == ("(not found)", f"{user} (set as '/nonexistent/uv')")
    assert got["offline"] == ("true", "environment (UVSLURM_OFFLINE)")
    monkeypatch.setenv("UVSLURM_DEPOT", "/plain")
    got = _json(tmp_path, capsys)
    assert got["depot"] == ("/plain", "environment (UVSLURM_DEPOT)")


def test_config_effective_rows_keep_other_environment_sources() -> None:
    from uvslurm.config import merge

    rows = config_cmd.effective(merge([("environment", {"sbatch": {"time": "5"}})]))
    assert config_cmd.Row("sbatch.time", "5", "environment") in rows


def test_config_files(isolated_user: Path, tmp_path: Path) -> None:
    from uvslurm.project import Project

    assert config_cmd.files(None) == [
        ("site", isolated_user / "site-config.toml"),
        ("user", isolated_user / "config" / "uvslurm" / "config.toml"),
        ("project", None),
    ]
    assert config_cmd.files(Project(tmp_path, {}))[2] == ("project", tmp_path / "pyproject.toml")


def test_config_table(
    isolated_user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("COLUMNS", "300")
    user = _user_config(isolated_user, '[sbatch]\ncomment = "[bold]x[/]"\n')
    proj = _project(tmp_path / "p", '[tool.uvslurm]\nrebuild = ["a", "b"]\n')
    assert _run(config_cmd, _cfg(json=False), proj) == 0
    out = capsys.readouterr().out
    words = " ".join(out.split())
    assert words.startswith(
        "uvslurm settings (lowest to highest: default, site file, user file, project, "
        "environment, command line) "
    )
    assert re.search(r'│ rebuild +│ \["a", "b"\] +│ ' + re.escape(str(proj)), out)
    assert re.search(r"│ sbatch.comment +│ \[bold\]x\[/\] +│ " + re.escape(str(user)), out)
    assert re.search(r"│ fingerprint.modules +│ true +│ default +│", out)
    assert f"site: {isolated_user / 'site-config.toml'}\n" in out
    assert f"user: {user}\n" in out
    assert f"project: {proj / 'pyproject.toml'}\n" in out
    empty = tmp_path / "e"
    empty.mkdir()
    assert _run(config_cmd, _cfg(json=False), empty) == 0
    assert "project: (no project here)\n" in capsys.readouterr().out


# --- output --------------------------------------------------------------------------------


def test_output_messages(capsys: pytest.CaptureFixture[str]) -> None:
    output.error("it [broke]")
    output.warn("careful [x]")
    output.summary("Done [ok]", [("venv", "/d/[k]"), ("log", "/l")])
    err = capsys.readouterr().err
    assert [line.rstrip() for line in err.splitlines()] == [
        "uvslurm: error: it [broke]",
        "uvslurm: warning: careful [x]",
        "Done [ok]",
        "venv  /d/[k]",
        "log   /l",
    ]


def test_output_status_is_silent_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with output.Status("working") as s:
        assert s.text == "working"
        assert s._status is None
    assert capsys.readouterr() == ("", "")


def test_output_status_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[object] = []

    class FakeStatus:
        def __enter__(self) -> None:
            events.append("enter")

        def __exit__(self, *exc: object) -> None:
            events.append(("exit", exc))

    class FakeConsole:
        is_terminal = True

        def status(self, text: str) -> FakeStatus:
            events.append(text)
            return FakeStatus()

    monkeypatch.setattr(output, "console", lambda: FakeConsole())
    with output.Status("locking") as s:
        assert s._status is not None
        events.append("body")
    assert events == ["locking", "enter", "body", ("exit", (None, None, None))]


def test_output_console_goes_to_stderr() -> None:
    c = output.console()
    assert c is output.console()
    assert c.stderr is True
    assert c.soft_wrap is True
    assert c._highlight is False


# --- proc ----------------------------------------------------------------------------------


def test_proc_run_returns_stdout(tmp_path: Path) -> None:
    assert proc.run(["sh", "-c", "echo out; echo err >&2"]) == "out\n"
    assert proc.run(["sh", "-c", 'printf "%s" "$X"'], env={"X": "y z"}) == "y z"
    assert proc.run(["pwd"], cwd=str(tmp_path)) == f"{tmp_path}\n"
    assert proc.run(["cat"], input="fed") == "fed"


def test_proc_env_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAK", "1")
    assert proc.run(["/usr/bin/env"], env={"ONLY": "this"}) == "ONLY=this\n"
    assert "LEAK=1" in proc.run(["/usr/bin/env"]).splitlines()


def test_proc_failures() -> None:
    with pytest.raises(proc.CommandFailed) as e:
        proc.run(["sh", "-c", "echo 1 >&2; echo 2 >&2; echo 'last line' >&2; exit 4", "x", "y"])
    f = e.value
    assert (
        f.message
        == "`sh -c echo 1 >&2; echo 2 >&2; echo 'last line' >&2; exit 4` failed: last line"
    )
    assert (f.last_line, f.returncode) == ("last line", 4)
    assert f.exit_code == 1
    with pytest.raises(proc.CommandFailed) as e:
        proc.run(["sh", "-c", "exit 2"])
    assert e.value.message == "`sh -c exit 2` failed: exit code 2"
    assert e.value.last_line == "exit code 2"
    with pytest.raises(proc.CommandFailed) as e:
        proc.run(["sh", "-c", "echo '  ' >&2; exit 5"])
    assert e.value.last_line == "exit code 5"


def test_proc_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(UvslurmError) as e:
        proc.run([str(tmp_path / "missing"), "a"])
    assert e.value.message == f"cannot run {tmp_path / 'missing'}: not found"
    assert not isinstance(e.value, proc.CommandFailed)
    f = tmp_path / "noexec"
    f.write_text("")
    f.chmod(0o644)
    with pytest.raises(UvslurmError) as e:
        proc.run([str(f)])
    assert e.value.message == f"cannot run {f}: permission denied"


def test_output_summary_keys_are_bold(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system="standard", highlight=False)
    monkeypatch.setattr(output, "console", lambda stdout=False: console)
    output.summary("T", [("key", "value")])
    assert "\x1b[1mkey\x1b[0m" in buf.getvalue()
    assert "\x1b[1mvalue" not in buf.getvalue()


def test_template_summary_of_any_first_line(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = {
        "a": '#!/bin/bash\n# uvslurm template "a": first part. Second: x. Third.\n',
        "b": "#!/bin/bash\n# Xray vision\n",
        "c": "#!/bin/bash\n#  x: X ends with X.\n",
    }
    monkeypatch.setattr(template, "text_of", lambda name: lines[name])
    assert template.summary("a") == "first part"
    assert template.summary("b") == "Xray vision"
    assert template.summary("c") == "X ends with X"


def test_template_project_option_names_the_project_itself(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p")
    (proj / "sub").mkdir()
    with pytest.raises(NoProject):
        _run(template, _tpl(name="cpu", project="p/sub"), tmp_path)


def test_template_project_settings_that_run_programs_need_trust(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p", '[tool.uvslurm]\nuv = "/bin/true"\n')
    with pytest.raises(TrustError) as e:
        _run(template, _tpl(name="cpu"), proj)
    assert e.value.message == (
        f"{proj / 'pyproject.toml'} [tool.uvslurm] names programs to run (uv = '/bin/true')"
    )


# --- prepare ----------------------------------------------------------------------------------


def test_prepare_hands_the_prolog_the_hash_of_the_lock_it_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    from uvslurm import nodeenv
    from uvslurm.commands import prepare

    proj = _project(tmp_path / "p")
    (proj / "uv.lock").write_text("version = 1\n")
    seen: list[nodeenv.NodeSettings] = []
    monkeypatch.setattr(nodeenv, "run_prolog", lambda node, mode: seen.append(node) or "/v\n")
    ns = cli.build_parser().parse_args(["prepare", "--frozen"])
    assert _run(prepare, ns, proj) == 0
    assert capsys.readouterr().out == "/v\n"
    assert seen[0].lock_hash == hashlib.sha256(b"version = 1\n").hexdigest()


def test_depot_summary_names_the_microarchitecture_and_the_python_version() -> None:
    from uvslurm.commands import depot as depot_cmd

    comps = {"modules": "gcc/12", "python": "cpython-3.11.7 /usr", "arch": "x86_64",
             "cpu": "microarch=zen2 flags=sse avx", "os": "debian-12", "glibc": "glibc 2.36"}  # fmt: skip
    assert depot_cmd.summary(comps) == "gcc/12; python 3.11.7; x86_64 zen2 debian-12 glibc-2.36"
    assert depot_cmd.python_summary("pypy-3.10.14 /opt/pypy") == "pypy-3.10.14"
    # fingerprints made before issue 17 recorded the request, and the CPU's model
    assert depot_cmd.python_summary("3.11") == "3.11" and depot_cmd.python_summary("") == "(any)"
    assert depot_cmd.cpu_summary("vendor_id=AMD cpu_family=23 model=49 flags=sse") == "AMD 23/49"
