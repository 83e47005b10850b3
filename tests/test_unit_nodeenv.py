"""nodeenv.py in-process: the prolog's inputs, computed from a project and its configuration;
running the prolog is checked with subprocess.run replaced (the real prolog is run by
tests/test_prolog.py, and from nodeenv.prolog_file by tests/test_prepare_file.py)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from uvslurm import nodeenv, pipeline, proc, prolog, render
from uvslurm.config import merge
from uvslurm.errors import PrepareError, UsageError, UvslurmError
from uvslurm.nodeenv import NodeSettings
from uvslurm.project import Project
from uvslurm.rebuild import FS, RS


def _settings(**kw: Any) -> NodeSettings:
    base: dict[str, Any] = dict(
        project="/work/a b/proj",
        uv="/bin/uv",
        depot="/d",
        node_local="auto",
        offline="auto",
        python="3.11",
        sync_args=("--extra", "gpu", "--no-dev"),
        fingerprint_env=("A", "B"),
    )
    base.update(kw)
    return NodeSettings(**base)


def test_environ_defaults() -> None:
    s = _settings()
    assert s.environ("run") == {
        "UVSLURM_PROJECT": "/work/a b/proj",
        "UVSLURM_PROJECT_ID": nodeenv.project_id("/work/a b/proj"),
        "UVSLURM_LOCK_HASH": "",
        "UVSLURM_LOCK_DIR": "",
        "UVSLURM_RECORD": "",
        "UVSLURM_SNAPSHOT": "",
        "UVSLURM_UV": "/bin/uv",
        "UVSLURM_DEPOT": "/d",
        "UVSLURM_NODE_LOCAL": "auto",
        "UVSLURM_OFFLINE": "auto",
        "UVSLURM_PYTHON": "3.11",
        "UVSLURM_SYNC_ARGS": "--extra gpu --no-dev",
        "UVSLURM_FP_ENV": "A B",
        "UVSLURM_FP_COMMANDS": "",
        "UVSLURM_FP_MODULES": "1",
        "UVSLURM_FP_IGNORE": "",
        "UVSLURM_REBUILD": "",
        "UVSLURM_REBUILD_SOURCES": "",
        "UVSLURM_IMAGE": "none",
        "UVSLURM_SCRIPT": "",
        "UVSLURM_PLATFORMS": "",
        "UVSLURM_MODE": "run",
    }


def test_environ_everything_set() -> None:
    s = _settings(
        project="",
        fingerprint_commands=("hostname", "nvidia-smi -L"),
        fingerprint_modules=False,
        rebuild=("mpi4py", "h5py"),
        rebuild_sources="src",
        image="squashfs",
    )
    env = s.environ("activate")
    assert env["UVSLURM_PROJECT_ID"] == ""
    assert s.project_id == ""
    assert env["UVSLURM_FP_COMMANDS"] == "hostname\x1envidia-smi -L\x1e"
    assert env["UVSLURM_FP_MODULES"] == "0"
    assert env["UVSLURM_REBUILD"] == "mpi4py,h5py"
    assert env["UVSLURM_REBUILD_SOURCES"] == "src"
    assert env["UVSLURM_IMAGE"] == "squashfs"
    assert env["UVSLURM_MODE"] == "activate"


def test_project_id() -> None:
    # the value the prolog computes (tests/golden/py-job.sh; tests/test_prolog.py compares both)
    assert nodeenv.project_id("/work/alice/proj") == "proj-5ff016d152"
    digest = hashlib.sha256(b"/x/sp ace;\xc3\xbc\n").hexdigest()[:10]
    assert nodeenv.project_id("/x/sp ace;ü") == f"sp_ace___-{digest}"
    long = "/x/" + "a" * 50
    assert (
        nodeenv.project_id(long)
        == "a" * 40 + "-" + hashlib.sha256(long.encode() + b"\n").hexdigest()[:10]
    )
    assert nodeenv.project_id("/x/A.b_c-9").startswith("A.b_c-9-")
    assert nodeenv.project_id("rel") == "rel-" + hashlib.sha256(b"rel\n").hexdigest()[:10]
    assert nodeenv.project_id("/") == "-" + hashlib.sha256(b"/\n").hexdigest()[:10]


def test_sync_args() -> None:
    assert nodeenv.sync_args([], False, [], False) == ()
    assert nodeenv.sync_args(["gpu", "a.b_c-1"], True, ["dev", "docs"], True) == (
        "--extra", "gpu", "--extra", "a.b_c-1", "--group", "dev", "--group", "docs",
        "--all-extras", "--no-dev",
    )  # fmt: skip
    assert nodeenv.sync_args([], True, [], False) == ("--all-extras",)
    assert nodeenv.sync_args([], False, [], True) == ("--no-dev",)


@pytest.mark.parametrize("bad", ["", "-x", "a b", "a;b", "_x", "ü"])
def test_sync_args_refuse_names_the_prolog_cannot_split(bad: str) -> None:
    with pytest.raises(UsageError) as e:
        nodeenv.sync_args([bad], False, [], False)
    assert e.value.message == f"--extra: invalid name '{bad}'"
    with pytest.raises(UsageError) as e:
        nodeenv.sync_args([], False, ["ok", bad], False)
    assert e.value.message == f"--group: invalid name '{bad}'"


def test_depot_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCRATCH", "/scratch/me")
    assert nodeenv.depot_root(merge([])) == Path("/scratch/me/uvslurm")
    monkeypatch.setenv("MYDEPOT", "/big/disk")
    cfg = merge([("/etc/c.toml", {"depot": "$MYDEPOT/uv"})])
    assert nodeenv.depot_root(cfg) == Path("/big/disk/uv")
    with pytest.raises(UvslurmError) as e:
        nodeenv.depot_root(merge([("/etc/c.toml", {"depot": "$UNSET_VAR/uv"})]))
    assert e.value.message == "depot = '$UNSET_VAR/uv' (from /etc/c.toml): $UNSET_VAR is not set"
    # from the environment: taken as it is
    assert nodeenv.depot_root(merge([("environment", {"depot": "/a/$b"})])) == Path("/a/$b")


def _exe(tmp_path: Path, name: str = "uv") -> Path:
    p = tmp_path / "bin" / name
    p.parent.mkdir(exist_ok=True)
    p.write_text("#!/bin/sh\n")
    p.chmod(0o755)
    return p


def test_uvtool_find(tmp_path: Path) -> None:
    uv = _exe(tmp_path)
    assert nodeenv.uvtool_find(merge([("command line", {"uv": str(uv)})])) == str(uv)
    with pytest.raises(UvslurmError):
        nodeenv.uvtool_find(merge([("command line", {"uv": str(tmp_path / "nope")})]))


def test_image_value(monkeypatch: pytest.MonkeyPatch) -> None:
    def cfg(v: str) -> Any:
        return merge([("x", {"image": v})])

    assert nodeenv.image_value(merge([])) == "none"
    assert nodeenv.image_value(cfg("none")) == "none"
    assert nodeenv.image_value(cfg("tar.zst")) == "tar.zst"
    assert nodeenv.image_value(cfg("squashfs")) == "squashfs"
    from uvslurm.config import Config, Setting

    assert nodeenv.image_value(Config({"image": Setting("zip", "x")})) == "none"
    access: dict[tuple[str, int], bool] = {}
    tools: dict[str, str] = {}
    monkeypatch.setattr(os, "access", lambda p, m: access.get((p, m), False))
    monkeypatch.setattr(nodeenv.shutil, "which", lambda n: tools.get(n))
    assert nodeenv.image_value(cfg("auto")) == "none"
    assert nodeenv.squashfs_here() == (["mksquashfs", "squashfuse", "unsquashfs"], False)
    access[("/dev/fuse", os.R_OK | os.W_OK)] = True
    assert nodeenv.image_value(cfg("auto")) == "none"
    tools["mksquashfs"] = "/bin/mksquashfs"
    assert nodeenv.image_value(cfg("auto")) == "none"
    tools["squashfuse"] = "/bin/squashfuse"
    # unsquashfs only unpacks where FUSE is refused: mounting needs none
    assert nodeenv.squashfs_here() == (["unsquashfs"], True)
    assert nodeenv.image_value(cfg("auto")) == "squashfs"
    del tools["mksquashfs"]
    assert nodeenv.image_value(cfg("auto")) == "none"
    tools["mksquashfs"] = "/bin/mksquashfs"
    access.clear()
    assert nodeenv.image_value(cfg("auto")) == "none"


def test_fingerprint_env() -> None:
    assert nodeenv.fingerprint_env(merge([])) == ()
    cfg = merge([("x", {"fingerprint": {"env": ["CUDA_HOME", "_X1", "a"]}})])
    assert nodeenv.fingerprint_env(cfg) == ("CUDA_HOME", "_X1", "a")
    for bad in ("1X", "A-B", "A B", ""):
        with pytest.raises(UsageError) as e:
            nodeenv.fingerprint_env(merge([("x", {"fingerprint": {"env": ["OK", bad]}})]))
        assert e.value.message == f"fingerprint.env: '{bad}' is not a variable name"


def _project(tmp_path: Path, lock: str | None = None) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    if lock is not None:
        (root / "uv.lock").write_text(lock)
    return Project(root, {"project": {"requires-python": ">=3.12"}})


def test_settings_for_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRATCH", "/scratch/me")
    uv = _exe(tmp_path)
    project = _project(tmp_path)
    cfg = merge(
        [
            ("p", {"node-local": "never", "offline": True, "image": "tar.zst",
                   "fingerprint": {"env": ["X"], "commands": ["hostname"], "modules": False}}),
            ("command line", {"uv": str(uv)}),
        ]
    )  # fmt: skip
    s = nodeenv.settings_for(project, cfg, ("--no-dev",))
    assert s == NodeSettings(
        project=str(project.root),
        uv=str(uv),
        depot="/scratch/me/uvslurm",
        node_local="never",
        offline="true",
        python=">=3.12",
        sync_args=("--no-dev",),
        fingerprint_env=("X",),
        fingerprint_commands=("hostname",),
        fingerprint_modules=False,
        rebuild=(),
        rebuild_sources="",
        image="tar.zst",
    )


def test_settings_outside_a_project(tmp_path: Path) -> None:
    uv = _exe(tmp_path)
    s = nodeenv.settings_for(None, merge([("command line", {"uv": str(uv), "rebuild": ["x"]})]))
    assert (s.project, s.python, s.sync_args, s.rebuild, s.rebuild_sources) == (
        "",
        "",
        (),
        ("x",),
        "",
    )
    assert (s.node_local, s.fingerprint_modules, s.image) == ("auto", True, "none")


def test_settings_with_rebuild_sources(tmp_path: Path) -> None:
    uv = _exe(tmp_path)
    lock = (
        '[[package]]\nname = "Mpi4Py"\nversion = "4.0"\nsource = { registry = "r" }\n'
        'sdist = { url = "https://h/mpi4py-4.0.tar.gz", hash = "sha256:00112233445566778899" }\n'
        '[[package]]\nname = "loc"\nversion = "1"\nsource = { directory = "libs/loc" }\n'
    )
    project = _project(tmp_path, lock)
    depot = tmp_path / "depot"
    cfg = merge(
        [("command line", {"uv": str(uv), "depot": str(depot), "rebuild": ["mpi4py", "Loc"]})]
    )
    s = nodeenv.settings_for(project, cfg)
    assert s.rebuild == ("mpi4py", "loc") and s.rebuild_sources == ""
    s = pipeline.with_sources(s, project, project.lock.read_bytes(), download=False)
    assert s.rebuild_sources == (
        f"Mpi4Py{FS}4.0{FS}archive{FS}{depot}/.sources/0011223344556677-mpi4py-4.0.tar.gz{RS}"
        f"loc{FS}1{FS}directory{FS}{project.root}/libs/loc{RS}"
    )
    assert not depot.exists()  # nothing downloaded


def test_settings_with_rebuild_need_a_lock(tmp_path: Path) -> None:
    uv = _exe(tmp_path)
    project = _project(tmp_path)
    cfg = merge([("command line", {"uv": str(uv), "rebuild": ["x"]})])
    s = nodeenv.settings_for(project, cfg)
    assert s.rebuild == ("x",)
    with pytest.raises(UvslurmError) as e:
        pipeline.with_sources(s, project, None, download=False)
    assert e.value.line() == f"rebuild: no uv.lock in {project.root}; run `uv lock` first"


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "no-memfd"])
def test_prolog_file_holds_the_joined_sections_unnamed(
    memfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not memfd:  # a Python built against a glibc older than 2.27
        monkeypatch.delattr(os, "memfd_create", raising=False)
    with nodeenv.prolog_file() as fd:
        # what bash opens: /dev/fd/N afresh, from the start, however often
        argv = nodeenv.prolog_argv(fd)
        assert argv == ["bash", f"/dev/fd/{fd}"]
        for _ in range(2):
            assert Path(argv[1]).read_text() == prolog.text() == render.prolog_text()
        assert not prolog.text().startswith("#!")  # job scripts have their own shebang
        st = os.fstat(fd)
        assert stat.S_ISREG(st.st_mode) and st.st_nlink == 0, "a file no one can open by name"
        name = os.readlink(f"/proc/self/fd/{fd}")
        assert name == "/memfd:uvslurm-prolog (deleted)" if memfd else name.endswith(" (deleted)")
        if memfd:  # sealed: nothing the prolog starts can change its text
            with pytest.raises(PermissionError):
                os.pwrite(fd, b"x", 0)
            with pytest.raises(PermissionError):
                os.truncate(fd, 0)
    with pytest.raises(OSError):
        os.fstat(fd)


def test_prolog_file_that_cannot_be_written_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "memfd_create", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", "/proc")  # no file can be made there
    with pytest.raises(UvslurmError) as e, nodeenv.prolog_file():
        pytest.fail("no file, no prolog")
    assert re.fullmatch(
        r"cannot write the prolog to a temporary file: [A-Z][a-z ]+; "
        r"free some space in \$TMPDIR, or set TMPDIR to a directory of yours",
        e.value.line(),
    ), e.value.line()


def test_parse_fingerprint() -> None:
    text = "fingerprint=abc\nvenv=/d/p/k\narch=x86_64\ncpu=a=b c\nnoequals\n"
    assert nodeenv.parse_fingerprint(text) == (
        "abc",
        "/d/p/k",
        {"arch": "x86_64", "cpu": "a=b c", "noequals": ""},
    )
    assert nodeenv.parse_fingerprint("") == ("", "", {})


class FakeRun:
    def __init__(self, returncode: int, stdout: str = "") -> None:
        self.returncode, self.stdout = returncode, stdout
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((argv, kw))
        return subprocess.CompletedProcess(argv, self.returncode, self.stdout, None)


class ScriptRun(FakeRun):
    """Also reads the script bash is given (a file only while the process runs)."""

    scripts: list[str]

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.scripts = [*getattr(self, "scripts", []), Path(argv[1]).read_text()]
        return super().__call__(argv, **kw)


def test_run_prolog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = ScriptRun(0, "fingerprint=x\n")
    monkeypatch.setattr(subprocess, "run", fake)
    monkeypatch.setenv("KEEP_ME", "1")
    depot = tmp_path / "depot"
    s = _settings(depot=str(depot))
    assert nodeenv.run_prolog(s, "fingerprint") == "fingerprint=x\n"
    [(argv, kw)] = fake.calls
    # bash reads the prolog from the descriptor it keeps; closed once the prolog has run
    [fd] = kw["pass_fds"]
    assert argv == nodeenv.prolog_argv(fd) == ["bash", f"/dev/fd/{fd}"]
    assert fake.scripts == [prolog.text()]
    with pytest.raises(OSError):
        os.fstat(fd)
    assert kw["env"]["KEEP_ME"] == "1"
    assert kw["env"]["UVSLURM_MODE"] == "fingerprint"
    assert kw["env"]["UVSLURM_DEPOT"] == str(depot)
    assert kw["stdout"] == subprocess.PIPE
    assert kw["text"] is True
    assert kw["check"] is False
    # the depot was made, private and marked, before the prolog ran
    assert (depot / ".uvslurm-depot").is_file()
    assert (depot.stat().st_mode & 0o777) == 0o700
    # the library's way (quiet), too
    assert nodeenv.run_prolog(s, "fingerprint", quiet=True) == "fingerprint=x\n"
    (argv, kw) = fake.calls[-1]
    assert argv == nodeenv.prolog_argv(kw["pass_fds"][0]) and len(kw["pass_fds"]) == 1
    assert fake.scripts[-1] == prolog.text()


def test_run_prolog_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(depot=str(tmp_path / "depot"))
    monkeypatch.setattr(subprocess, "run", FakeRun(75))
    with pytest.raises(PrepareError) as e:
        nodeenv.run_prolog(s, "prepare")
    assert e.value.message == "the venv could not be prepared (see the uvslurm: lines above)"
    monkeypatch.setattr(subprocess, "run", FakeRun(3))
    with pytest.raises(proc.CommandFailed) as f:
        nodeenv.run_prolog(s, "prepare")
    assert f.value.returncode == 3
    assert f.value.message == "`uvslurm prolog prepare` failed: exit code 3"


def test_run_prolog_refuses_a_foreign_depot_but_not_a_missing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRun(0)
    monkeypatch.setattr(subprocess, "run", fake)
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    (foreign / "data").write_text("")
    with pytest.raises(UvslurmError, match="is not a uvslurm depot"):
        nodeenv.run_prolog(_settings(depot=str(foreign)), "prepare")
    assert fake.calls == []
    # one that cannot be made: the prolog reports it
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert nodeenv.run_prolog(_settings(depot=str(blocker / "depot")), "prepare") == ""
    assert len(fake.calls) == 1


def test_defaults_of_a_config_without_the_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Config need not hold every key (merge() adds the defaults; these are the same)."""
    from uvslurm.config import Config, Setting

    monkeypatch.setenv("SCRATCH", "/s")
    empty = Config({})
    assert nodeenv.image_value(empty) == "none"
    assert nodeenv.fingerprint_env(empty) == ()
    uv = _exe(tmp_path)
    s = nodeenv.settings_for(_project(tmp_path), Config({"uv": Setting(str(uv), "x")}))
    assert (s.rebuild, s.fingerprint_commands, s.fingerprint_modules) == ((), (), True)
    assert (s.offline, s.image, s.fingerprint_env, s.depot) == ("auto", "none", (), "/s/uvslurm")
