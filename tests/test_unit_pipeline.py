"""context.py and pipeline.py in-process: finding the project, each stage of the submit
pipeline, and the order of the login-node effects (uv and the downloads replaced by recorders;
real submissions are in tests/test_jobs.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from uvslurm import output, paths, pipeline, rebuild, slurm, uvtool
from uvslurm.context import Context
from uvslurm.errors import NoProject, UsageError, UvslurmError
from uvslurm.pipeline import Options, Request, Target

PYPROJECT = '[project]\nname = "demo"\nversion = "0"\nrequires-python = ">=3.11"\n'
LOCK = (
    'version = 1\n[[package]]\nname = "mpi4py"\nversion = "4.0"\nsource = { registry = "r" }\n'
    'sdist = { url = "https://h/mpi4py-4.0.tar.gz", hash = "sha256:00112233445566778899" }\n'
)


def _project(path: Path, tool: str = "", lock: str | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    (path / "pyproject.toml").write_text(PYPROJECT + tool)
    if lock is not None:
        (path / "uv.lock").write_text(lock)
    return path


@pytest.fixture
def uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    exe = tmp_path / "bin" / "uv"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    monkeypatch.setenv("UVSLURM_UV", str(exe))
    return exe


# --- Context -----------------------------------------------------------------------------------


def test_context_searches_upward_from_cwd(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p", '[tool.uvslurm]\nimage = "tar.zst"\n')
    (proj / "sub").mkdir()
    ctx = Context(proj / "sub")
    assert ctx.project is not None and ctx.project.root == proj
    assert ctx.require_project() is ctx.project
    assert ctx.config.get("image") == "tar.zst"
    assert ctx.config.settings["image"].source == f"{proj / 'pyproject.toml'} [tool.uvslurm]"


def test_context_outside_a_project(tmp_path: Path) -> None:
    ctx = Context(tmp_path, cli={"image": "squashfs"})
    assert ctx.project is None
    assert ctx.config.get("image") == "squashfs"
    assert ctx.config.settings["image"].source == "command line"
    with pytest.raises(NoProject) as e:
        ctx.require_project()
    assert str(tmp_path) in e.value.message


def test_context_with_an_explicit_project(tmp_path: Path) -> None:
    proj = _project(tmp_path / "p")
    (proj / "sub").mkdir()
    ctx = Context(tmp_path, project_dir="p")
    assert ctx.project is not None and ctx.project.root == proj
    with pytest.raises(NoProject):
        _ = Context(tmp_path, project_dir="p/sub").project  # that directory, no search
    with pytest.raises(NoProject):
        _ = Context(tmp_path, project_dir="nope").project


def test_context_search_order_and_fallback(tmp_path: Path) -> None:
    a, b = _project(tmp_path / "a"), _project(tmp_path / "b")
    empty = tmp_path / "empty"
    empty.mkdir()
    ctx = Context(empty)
    assert ctx.searching(a, b).project.root == a  # type: ignore[union-attr]
    assert ctx.searching(b, a).project.root == b  # type: ignore[union-attr]
    assert ctx.searching(empty, b).project.root == b  # type: ignore[union-attr]
    assert ctx.searching(empty, empty).project is None
    with pytest.raises(NoProject) as e:
        ctx.searching(empty / "x", empty).require_project()
    assert f"no pyproject.toml in {empty} or the parent" in e.value.message  # the last place


def test_context_from_args_and_depot(tmp_path: Path, isolated_user: Path) -> None:
    class NS:
        project = "p"
        no_node_local = True

    ctx = Context.from_args(NS(), tmp_path)
    assert (ctx.cwd, ctx.project_dir, dict(ctx.cli)) == (tmp_path, "p", {"node-local": "never"})
    bare = Context.from_args(object(), tmp_path)
    assert (bare.project_dir, dict(bare.cli)) == (None, {})
    assert bare.depot == isolated_user / "scratch" / "uvslurm"


# --- stage 1: the target -----------------------------------------------------------------------


def test_target_of_a_command(tmp_path: Path) -> None:
    t = pipeline.resolve_target(Request(command=["/usr/bin/env", "-i"]), tmp_path)
    assert t == Target(command=("/usr/bin/env", "-i"), name="env", search_from=tmp_path)


def test_target_of_a_python_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.py").write_text("print(1)\n")
    t = pipeline.resolve_target(Request(target="d/train.py", args=["--lr", "1"]), tmp_path)
    train = (tmp_path / "d" / "train.py").resolve()
    assert t == Target(command=(str(train), "--lr", "1"), name="train", search_from=train.parent)


def test_target_of_a_batch_script(tmp_path: Path) -> None:
    (tmp_path / "job.sh").write_text("#!/bin/bash\n#SBATCH --time=5\necho hi\n")
    t = pipeline.resolve_target(Request(target="job.sh", args=["x"]), tmp_path)
    assert t.script is not None and t.script.options() == {"time": "5"}
    assert (t.command, t.script_args, t.name) == ((), ("x",), "job")
    (tmp_path / "headless").write_text("#SBATCH --time=5\necho hi\n")
    t = pipeline.resolve_target(Request(target="headless"), tmp_path)
    assert t.script is not None and t.script.shebang == "#!/bin/bash"


@pytest.mark.parametrize(
    ("req", "content", "error", "line"),
    [
        (Request(), None, UsageError, "nothing to run; give a .py file, a batch script, or "
         "`-- CMD ARGS...` after the options"),
        (Request(target="gone.py"), None, UvslurmError,
         "gone.py: no such file; check the path, or use `-- CMD` for a command"),
        (Request(target="f.txt"), b"hello\n", UsageError,
         "f.txt: not a .py file or a batch script (no #! line or #SBATCH header); "
         "use `uvslurm submit -- CMD ARGS...` to run a command"),
        (Request(target="f.txt"), b"\xff\xfe#!", UvslurmError, "f.txt: cannot read it"),
    ],
)  # fmt: skip
def test_target_errors(
    tmp_path: Path, req: Request, content: bytes | None, error: type, line: str
) -> None:
    if content is not None:
        (tmp_path / "f.txt").write_bytes(content)
    with pytest.raises(error) as e:
        pipeline.resolve_target(req, tmp_path)
    assert e.value.line().startswith(line)


# --- stage 2: where the project is looked for --------------------------------------------------


def test_locate(tmp_path: Path) -> None:
    ctx, other = Context(tmp_path), tmp_path / "o"
    assert pipeline.locate(ctx, Target(command=("a",), search_from=other)).search == (
        other,
        tmp_path,
    )
    assert pipeline.locate(ctx, Target(command=("a",), search_from=tmp_path)).search == (
        tmp_path,
        tmp_path,
    )
    script = pipeline.resolve_target(Request(command=["x"]), tmp_path)
    assert pipeline.locate(ctx, Target(script=None, search_from=other)).search == (
        tmp_path,
        other,
    )
    assert script.search_from == tmp_path


# --- stage 3: options --------------------------------------------------------------------------


def test_sbatch_defaults_and_profiles(tmp_path: Path, uv: Path) -> None:
    proj = _project(
        tmp_path / "p",
        '[tool.uvslurm.sbatch]\ntime = "1:00:00"\npartition = "a"\n'
        '[tool.uvslurm.profiles.big]\ntime = "9:00:00"\nexclusive = true\n',
    )
    config = Context(proj).config
    assert pipeline.sbatch_defaults(config, None) == {"time": "1:00:00", "partition": "a"}
    assert pipeline.sbatch_defaults(config, "big") == {
        "time": "9:00:00",
        "partition": "a",
        "exclusive": True,
    }
    with pytest.raises(UvslurmError) as e:
        pipeline.sbatch_defaults(config, "huge")
    assert e.value.line() == (
        "unknown profile 'huge' (available: big); "
        "define it under [tool.uvslurm.profiles] in pyproject.toml"
    )
    with pytest.raises(UvslurmError) as e:
        pipeline.sbatch_defaults(Context(tmp_path).config, "x")
    assert "(available: none defined)" in e.value.message


def test_default_job_name() -> None:
    assert pipeline.default_job_name("train") == "train"
    assert pipeline.default_job_name("a\nb\x00c\u2028d") == "a_b_c_d"
    assert pipeline.default_job_name("") == "job"
    assert pipeline.default_job_name("héllo wörld") == "héllo wörld"


def test_layer_options_precedence() -> None:
    opts = pipeline.layer_options(
        {"time": "1", "partition": "a", "mem": "1G"},
        {"time": "2", "job-name": "mine"},
        {"mem": "2G", "output": "o.log"},
        "train",
        "/state/logs/%x-%j.out",
    )
    assert opts == Options(
        script={"partition": "a", "mem": "2G", "output": "o.log"},
        effective={
            "time": "2",
            "partition": "a",
            "mem": "2G",
            "job-name": "mine",
            "output": "o.log",
        },
        # the layer each option's value came from, for the job's manifest
        sources={"time": "script", "partition": "config", "mem": "command line",
                 "job-name": "script", "output": "command line"},
    )  # fmt: skip


def test_layer_options_defaults() -> None:
    opts = pipeline.layer_options({}, {}, {}, "a\nb", "/state/logs/%x-%j.out")
    expected = {"job-name": "a_b", "output": "/state/logs/%x-%j.out"}
    assert opts == Options(
        expected, expected, frozenset(expected), dict.fromkeys(expected, "default")
    )
    with pytest.raises(UvslurmError) as e:
        pipeline.layer_options({}, {}, {}, "x", "/home/a\nb/%x.out")
    assert e.value.line() == (
        "the default log path '/home/a\\nb/%x.out' cannot be an #SBATCH value; pass -o FILE"
    )


def test_log_directories_must_exist(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    ok = {"output": "logs/x.out", "error": f"{tmp_path}/%j/e.err", "time": "1"}
    pipeline._check_log_dirs(Options(ok, ok), tmp_path)
    bare = {"output": "x.out"}
    pipeline._check_log_dirs(Options(bare, bare), tmp_path)
    chosen = {"output": "/no/such/dir/x.out"}
    pipeline._check_log_dirs(Options(chosen, chosen, frozenset(chosen)), tmp_path)
    for name in ("output", "error"):
        bad = {name: "missing/x.out"}
        with pytest.raises(UvslurmError) as e:
            pipeline._check_log_dirs(Options(bad, bad), tmp_path)
        assert e.value.line() == (
            f"--{name}: directory {tmp_path / 'missing'} does not exist "
            "(Slurm would drop the log); create it first"
        )


# --- the whole pipeline ------------------------------------------------------------------------


def test_plan_and_dry_run(tmp_path: Path, uv: Path, isolated_user: Path) -> None:
    proj = _project(tmp_path / "p", '[tool.uvslurm]\nrebuild = ["mpi4py"]\n', lock=LOCK)
    (proj / "train.py").write_text("print(1)\n")
    req = Request(target="p/train.py", args=["1"], sbatch={"time": "5"}, sync_args=("--no-dev",))
    p = pipeline.plan(Context(tmp_path), req)
    assert p.project.root == proj
    assert p.node.project == str(proj) and p.node.sync_args == ("--no-dev",)
    assert p.node.rebuild == ("mpi4py",) and p.node.rebuild_sources == ""
    assert p.options.effective["time"] == "5" and p.options.effective["job-name"] == "train"
    assert p.origin.endswith(": uvslurm submit p/train.py")
    job = pipeline.realize(p, req, dry_run=True)
    depot = isolated_user / "scratch" / "uvslurm"
    assert job.node.rebuild_sources == rebuild.encode(
        [("mpi4py", "4.0", "archive", f"{depot}/.sources/0011223344556677-mpi4py-4.0.tar.gz")]
    )
    assert "#SBATCH --time=5" in job.text
    assert f"UVSLURM_CMD=({proj / 'train.py'} 1)" in job.text
    # the hash of the lock on disk travels in the script: the node checks the one it sees
    assert job.node.lock_hash == hashlib.sha256(LOCK.encode()).hexdigest()
    assert f"UVSLURM_LOCK_HASH={job.node.lock_hash}\n" in job.text
    assert not depot.exists()  # a dry run writes nothing
    (proj / "uv.lock").unlink()
    assert pipeline.realize(p, req, dry_run=True).node.lock_hash == ""


def test_plan_of_a_command_uses_the_current_project(tmp_path: Path, uv: Path) -> None:
    proj = _project(tmp_path / "p")
    req = Request(command=["python", "-V"])
    p = pipeline.plan(Context(proj), req)
    assert p.project.root == proj and p.target.command == ("python", "-V")
    assert p.origin.endswith(": uvslurm submit -- python -V")
    with pytest.raises(NoProject):
        pipeline.plan(Context(tmp_path), req)


def test_plan_stops_at_option_errors_before_any_effect(
    tmp_path: Path, uv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = _project(tmp_path / "p")
    monkeypatch.setattr(uvtool, "ensure_lock", lambda *a: pytest.fail("locked"))
    with pytest.raises(UvslurmError):
        pipeline.plan(Context(proj), Request(command=["x"], profile="nope"))
    with pytest.raises(UvslurmError):
        pipeline.plan(Context(proj), Request(command=["x"], sbatch={"output": "no/x.log"}))


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch, lock: str | None = LOCK) -> None:
        real_ensure_lock = uvtool.ensure_lock

        def ensure_lock(uv: str, project: Any, *, locked: bool, frozen: bool = False) -> None:
            if frozen:  # uses the lock as it is: runs no uv
                return real_ensure_lock(uv, project, locked=locked, frozen=frozen)
            self.calls.append(("lock", locked))
            if lock is not None:
                project.lock.write_text(lock)

        def prefetch(*a: Any, **kw: Any) -> None:
            self.calls.append(("prefetch", (a[2], a[4], a[5])))

        def node_arches(partitions: Any) -> set[str]:
            self.calls.append(("arches", partitions))
            return set()

        def download(located: Any, depot: Path) -> None:
            self.calls.append(("download", [x.name for x in located]))

        monkeypatch.setattr(uvtool, "ensure_lock", ensure_lock)
        monkeypatch.setattr(uvtool, "prefetch", prefetch)
        monkeypatch.setattr(slurm, "node_arches", node_arches)
        monkeypatch.setattr(rebuild, "download", download)


def test_effects_in_order(
    tmp_path: Path, uv: Path, monkeypatch: pytest.MonkeyPatch, isolated_user: Path
) -> None:
    rec = Recorder()
    rec.install(monkeypatch)
    proj = _project(tmp_path / "p", '[tool.uvslurm]\nrebuild = ["mpi4py"]\n')
    req = Request(command=["x"], locked=True, sync_args=("--no-dev",))
    job = pipeline.realize(pipeline.plan(Context(proj), req), req)
    assert rec.calls == [
        ("lock", True),
        ("prefetch", (("--no-dev",), ("mpi4py",), LOCK.encode())),
        ("arches", []),
        ("download", ["mpi4py"]),
    ]
    depot = isolated_user / "scratch" / "uvslurm"
    assert paths.depot_problem(depot) is None and (depot / ".uvslurm-depot").is_file()
    assert f"{depot}/.sources/0011223344556677-mpi4py-4.0.tar.gz" in job.node.rebuild_sources
    assert "UVSLURM_REBUILD=mpi4py" in job.text
    # the hash of the lock that `uv lock` left, read once with the prefetch's bytes
    assert job.node.lock_hash == hashlib.sha256(LOCK.encode()).hexdigest()


def test_effects_without_rebuild_and_with_frozen(
    tmp_path: Path, uv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder()
    rec.install(monkeypatch)
    proj = _project(tmp_path / "p", lock=LOCK)
    req = Request(command=["x"], frozen=True)
    job = pipeline.realize(pipeline.plan(Context(proj), req), req)
    assert rec.calls == [("prefetch", ((), (), LOCK.encode())), ("arches", [])]
    assert job.node.rebuild_sources == ""
    assert job.node.lock_hash == hashlib.sha256(LOCK.encode()).hexdigest()
    (proj / "uv.lock").unlink()
    with pytest.raises(UvslurmError) as e:
        pipeline.realize(pipeline.plan(Context(proj), req), req)
    assert e.value.line() == f"no uv.lock in {proj}; run `uv lock`, or drop --frozen"


def test_effects_refuse_an_unwritable_depot(
    tmp_path: Path, uv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder()
    rec.install(monkeypatch)
    (tmp_path / "file").write_text("")
    depot = tmp_path / "file" / "depot"  # (root may write anywhere: a path that cannot be)
    monkeypatch.setenv("UVSLURM_DEPOT", str(depot))
    proj = _project(tmp_path / "p", lock=LOCK)
    req = Request(command=["x"])
    with pytest.raises(UvslurmError) as e:
        pipeline.realize(pipeline.plan(Context(proj), req), req)
    assert e.value.message.startswith(f"depot {depot} is not writable")
    assert rec.calls == []


def test_with_lock() -> None:
    from uvslurm.nodeenv import NodeSettings

    node = NodeSettings("/p", "/uv", "/d", "auto", "auto", "", (), ())
    assert pipeline.with_lock(node, None) is node
    assert pipeline.with_lock(node, b"x").lock_hash == hashlib.sha256(b"x").hexdigest()
    assert pipeline.with_lock(node, b"").lock_hash == hashlib.sha256(b"").hexdigest()


def test_status_lines_are_quiet_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with output.Status("x"):
        pass
    assert capsys.readouterr().err == ""
