"""shellcache.py in-process: the hook program's text, record names and texts, what a record holds
and when it is (not) written. The program itself runs in tests/test_shell_hook_fast.py."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from uvslurm import nodeenv, prolog, shellcache
from uvslurm.context import Context


def test_functions_text_is_the_closure_of_the_roots_in_section_order() -> None:
    text = prolog.functions_text(("_uvslurm_os",))
    assert re.findall(r"^(_uvslurm_\w+)\(\)", text, re.M) == ["_uvslurm_os"]
    full = prolog.functions_text(("_uvslurm_facts",))
    names = re.findall(r"^(_uvslurm_\w+)\(\)", full, re.M)
    # what _uvslurm_facts calls, transitively (the CPU's table through _uvslurm_cpu), in order
    for fn in ("_uvslurm_ino", "_uvslurm_ldso", "_uvslurm_os", "_uvslurm_cpu",
               "_uvslurm_uarch_data", "_uvslurm_facts_write", "_uvslurm_private"):  # fmt: skip
        assert fn in names
    assert names.index("_uvslurm_owned") < names.index("_uvslurm_facts")
    assert "_uvslurm_build" not in names and "_uvslurm_fingerprint" not in names
    assert prolog.functions_text(("_uvslurm_nothing",)) == "\n"


def test_cold_functions_become_stubs_and_what_only_they_call_is_left_out() -> None:
    text = prolog.functions_text(("_uvslurm_facts",), cold="exit 3")
    assert "_uvslurm_cpu() { exit 3; }" in text
    assert "_uvslurm_facts_write() { exit 3; }" in text
    assert "_uvslurm_uarch_data" not in text
    # a warm function stays whole, with its comment
    assert "# _uvslurm_os VAR:" in text and "_uvslurm_os() {\n" in text


def test_the_program_without_comments_defines_the_same_functions() -> None:
    """Comment lines are dropped from the program: bash must define the very same functions
    from it as from the full text (`declare -f` prints them without comments)."""
    full = (
        prolog.functions_text(shellcache.ROOTS, cold="exit 3")
        + "\n"
        + prolog.resource("hook.sh").replace('_uvslurm_hook_main "$@"', "")
    )
    short = shellcache.program_text().replace('_uvslurm_hook_main "$@"', "")
    assert len(short) < 0.8 * len(full)

    def defined(text: str) -> str:
        r = subprocess.run(["bash", "-c", text + "\ndeclare -f"], capture_output=True, text=True,
                           check=True)  # fmt: skip
        return r.stdout

    assert defined(short) == defined(full)
    assert "_uvslurm_hook_main ()" in defined(short)


def test_program_text_holds_the_fingerprint_code_and_the_main() -> None:
    text = shellcache.program_text()
    assert text.startswith("# shellcheck shell=bash\n")
    assert "\n_uvslurm_fingerprint() {\n" in text and "\n_uvslurm_privtmp() {\n" in text
    assert "_uvslurm_cpu() { exit 3; }" in text
    comments = [ln for ln in text.split("\n") if ln.lstrip().startswith("#")]
    assert comments and all("# shellcheck " in ln for ln in comments), "only shellcheck's"
    assert text.rstrip().endswith('_uvslurm_hook_main "$@"')
    name = shellcache.program_name(text)
    assert name == f"hook-{hashlib.sha256(text.encode()).hexdigest()[:12]}.sh"


def test_record_names_escape_and_are_bounded() -> None:
    assert shellcache.record_name("/a/b") == "r%2Fa%2Fb"
    assert shellcache.record_name("/a%2Fb") == "r%2Fa%252Fb"
    assert shellcache.record_name("/a%2Fb") != shellcache.record_name("/a/b")
    # "%2F" and the name: at most 237 bytes (hook.sh checks the same bound)
    assert shellcache.record_name("/" + "x" * 234) is not None
    assert shellcache.record_name("/" + "x" * 235) is None
    assert shellcache.record_name("/" + "x" * 300) is None
    assert shellcache.record_name("/ü") == "r%2Fü"


def test_record_text_separators_and_refusals() -> None:
    assert shellcache.record_text([("v", "1"), ("e", "A", "x y")]) == "v\x1f1\x1ee\x1fA\x1fx y\x1e"
    assert shellcache.record_text([]) == ""
    for bad in ("a\x1eb", "a\x1fb", "a\0b"):
        assert shellcache.record_text([("s", "X", bad)]) is None


def _tags(entries: list[tuple[str, ...]], tag: str) -> list[tuple[str, ...]]:
    return [e[1:] for e in entries if e[0] == tag]


def test_entries_of_a_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UVSLURM_REBUILD", "six")
    monkeypatch.delenv("UVSLURM_IMAGE", raising=False)
    ctx = Context(cwd=project)
    assert ctx.project is not None
    settings = nodeenv.settings_for(ctx.project, ctx.config)
    found = shellcache.entries(ctx.project, ctx.config, settings, os.environ)
    assert found[:2] == [("v", "1"), ("k", str(project))]
    st = os.stat(project / "pyproject.toml")
    ns = st.st_mtime_ns
    ident = f"{st.st_ino} {ns // 10**9}.{ns % 10**9:09d} {st.st_size}"
    assert (str(project / "pyproject.toml"), ident) in _tags(found, "f")
    assert (str(project),) in _tags(found, "p")
    # the parents, up to the first one others can write (or /), each with its pyproject.toml
    assert (str(project.parent),) in _tags(found, "p")
    assert (str(project.parent / "pyproject.toml"),) in _tags(found, "a")
    assert (str(Path(os.environ["XDG_CONFIG_HOME"]) / "uvslurm" / "config.toml"),) in _tags(
        found, "a"
    )
    assert (str(Path(os.environ["UVSLURM_SITE_CONFIG"])), ) in [
        e[:1] for e in _tags(found, "f")
    ]  # fmt: skip
    assert ("UVSLURM_REBUILD", "six") in _tags(found, "e")
    assert ("UVSLURM_IMAGE",) in _tags(found, "u")
    assert ("SCRATCH", os.environ["SCRATCH"]) in _tags(found, "e")
    env = settings.environ("fingerprint")
    assert dict(_tags(found, "s")) == {k: v for k, v in env.items() if k != "UVSLURM_UV"}
    assert _tags(found, "c") == [("",)]


def test_entries_of_a_workspace_member_and_a_depot_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    member = ws / "m"
    member.mkdir(parents=True)
    (ws / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["m"]\n')
    (member / "pyproject.toml").write_text('[project]\nname = "m"\n')
    (ws / ".python-version").write_text("3.11\n")
    cfg = Path(os.environ["XDG_CONFIG_HOME"]) / "uvslurm" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('depot = "${MY_DEPOT}/d"\nuv = "uv"\n')
    monkeypatch.setenv("MY_DEPOT", str(tmp_path / "depot"))
    ctx = Context(cwd=member)
    assert ctx.project is not None and ctx.project.root == ws
    settings = nodeenv.settings_for(ctx.project, ctx.config)
    found = shellcache.entries(ctx.project, ctx.config, settings, os.environ)
    assert ("k", str(member)) in found
    files = [e[0] for e in _tags(found, "f")]
    assert str(member / "pyproject.toml") in files and str(ws / "pyproject.toml") in files
    assert str(ws / ".python-version") in files
    assert (str(member / ".python-version"),) in _tags(found, "a")
    assert {(str(member),), (str(ws),)} <= set(_tags(found, "p"))
    assert ("MY_DEPOT", str(tmp_path / "depot")) in _tags(found, "e")
    assert dict(_tags(found, "s"))["UVSLURM_SYNC_ARGS"] == "--package m"
    assert dict(_tags(found, "s"))["UVSLURM_DEPOT"] == str(tmp_path / "depot" / "d")
    assert _tags(found, "c") == [("uv",)]


def test_entries_of_a_workspace_root_walk_no_parents(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "pyproject.toml").write_text('[project]\nname = "r"\n[tool.uv.workspace]\nmembers = []\n')
    ctx = Context(cwd=ws)
    assert ctx.project is not None
    settings = nodeenv.settings_for(ctx.project, ctx.config)
    found = shellcache.entries(ctx.project, ctx.config, settings, os.environ)
    assert (str(tmp_path / "pyproject.toml"),) not in _tags(found, "a")
    assert (str(tmp_path),) not in _tags(found, "p")


def test_remember_writes_a_private_record_for_this_program(project: Path) -> None:
    ctx = Context(cwd=project)
    shellcache.remember(ctx)
    name = shellcache.record_name(str(project))
    assert name is not None
    record = shellcache.store() / name
    text = record.read_text()
    program = shellcache.ensure_program()
    assert program is not None and program.parent == shellcache.store()
    assert text.startswith(f"h\x1f{program.name}\x1ev\x1f1\x1ek\x1f{project}\x1e")
    assert record.stat().st_mode & 0o777 == 0o600
    assert shellcache.store().stat().st_mode & 0o777 == 0o700


def test_remember_writes_nothing_when_the_answer_moved(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = Context(cwd=project)
    shellcache.remember(ctx)
    name = shellcache.record_name(str(project))
    assert name is not None and (shellcache.store() / name).is_file()
    answers = iter([("then",), ("now",)])
    monkeypatch.setattr(shellcache, "_answer", lambda c: next(answers))
    shellcache.remember(Context(cwd=project))
    assert not (shellcache.store() / name).exists(), "an outdated record is removed"


def test_remember_outside_a_project_or_in_a_store_others_can_write(
    project: Path, tmp_path: Path
) -> None:
    shellcache.remember(Context(cwd=tmp_path))
    assert not shellcache.store().exists() or not list(shellcache.store().glob("r*"))
    shellcache.store().mkdir(parents=True)
    shellcache.store().chmod(0o777)
    shellcache.remember(Context(cwd=project))
    assert not list(shellcache.store().glob("r*"))
    assert shellcache.ensure_program() is None


def test_ensure_program_rewrites_a_changed_program() -> None:
    path = shellcache.ensure_program()
    assert path is not None
    assert path.read_text() == shellcache.program_text()
    path.write_text("echo tampered\n")
    assert shellcache.ensure_program() == path
    assert path.read_text() == shellcache.program_text()
    assert path.stat().st_mode & 0o777 == 0o600
