"""The depot and node-local disk against other users and careless settings, without the
cluster: owner checks, the depot marker, gc/rm touching only the depot's grammar, node-local
copies keyed by project, uv's lock files out of a shared /tmp, strict path settings.
(tests/test_multiuser.py repeats each with real users and real jobs.)"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import prolog_env, uvslurm, wait_for
from test_prolog import PROLOG, prolog, ready_state
from uvslurm.nodeenv import project_id

NOBODY = pwd.getpwnam("nobody").pw_uid
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="needs root to hand files to another user (CI runs as root)",
)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_mode, p.lstat().st_size)
        for p in [root, *root.rglob("*")]
    }


def _foreign_files(scratch: Path) -> None:
    """What a $SCRATCH holds besides uvslurm: data, results, other tools' lock files, and
    names that look like the depot's at a glance."""
    # data/<12 hex>-<8 hex> looks like an incomplete venv, but data/ is no project directory
    for d in ("data/run1", "results/x/y", "proj-0123456789/notes", "proj-0123456789/abc",
              "data/0123456789ab-01234567"):  # fmt: skip
        (scratch / d).mkdir(parents=True)
        (scratch / d / "file").write_text("precious")
    for f in ("uv.lock", "results/old.lock", "proj-0123456789/other.lock",
              "proj-0123456789/0123456789ab-01234567.lockfile"):  # fmt: skip
        (scratch / f).write_text("precious")


def test_gc_and_rm_refuse_a_directory_that_is_not_a_depot(project: Path, tmp_path: Path) -> None:
    """`depot = $SCRATCH` by mistake: gc, rm and list touch nothing and say what to do."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _foreign_files(scratch)
    before = _tree(scratch)
    env = {"UVSLURM_DEPOT": str(scratch)}
    for argv in (["gc", "--older-than", "0"], ["rm"], ["list"], ["rm", "proj-0123456789"]):
        r = uvslurm("depot", *argv, cwd=project, env=env)
        assert r.returncode == 1, (argv, r.stdout)
        assert f"{scratch} is not a uvslurm depot (it holds 'data'" in r.stderr, r.stderr
        assert f"e.g. {scratch}/uvslurm" in r.stderr
    # nor does a job or prepare adopt it
    r = uvslurm("prepare", "--no-node-local", cwd=project, env=env)
    assert r.returncode == 1 and "is not a uvslurm depot" in r.stderr
    assert _tree(scratch) == before


def test_gc_in_a_depot_removes_only_names_uvslurm_makes(project: Path, tmp_path: Path) -> None:
    """A real depot that also holds other files (copied in, or a depot of an older layout):
    gc --older-than 0 removes its venvs and leaves every other file alone."""
    depot = tmp_path / "depot"
    built = uvslurm("prepare", "--no-node-local", cwd=project, env={"UVSLURM_DEPOT": str(depot)})
    assert built.returncode == 0, built.stderr
    assert (depot / ".uvslurm-depot").is_file()
    assert stat.S_IMODE(depot.stat().st_mode) == 0o700
    _foreign_files(depot)
    pdir = depot / project_id(str(project))
    (pdir / "mydata").mkdir()
    (pdir / "mydata" / "f").write_text("precious")
    (pdir / "notes.lock").write_text("precious")
    (depot / ".wheels" / "x").mkdir(parents=True)
    (depot / ".wheels" / "x" / "keep").mkdir()
    venv = Path(built.stdout.strip())
    assert venv.parent == pdir and venv.is_dir()
    r = uvslurm("depot", "gc", "--older-than", "0", cwd=project, env={"UVSLURM_DEPOT": str(depot)})
    assert r.returncode == 0, r.stderr
    assert f"removed {venv}: unused for 0 days" in r.stdout, r.stdout
    assert not venv.exists()
    after = _tree(depot)
    for name in ("data/run1/file", "results/x/y/file", "uv.lock", "results/old.lock",
                 "data/0123456789ab-01234567/file",
                 "proj-0123456789/notes/file", "proj-0123456789/other.lock",
                 f"{pdir.name}/mydata/f", f"{pdir.name}/notes.lock", ".wheels/x/keep"):  # fmt: skip
        assert name in after, f"gc removed {name}"
    r = uvslurm("depot", "rm", cwd=project, env={"UVSLURM_DEPOT": str(depot)})
    assert r.returncode == 0, r.stderr
    assert (pdir / "mydata" / "f").read_text() == "precious"
    assert (pdir / "notes.lock").read_text() == "precious"


@needs_root
def test_a_depot_of_another_user_is_never_used(project: Path, tmp_path: Path) -> None:
    """Another user created the depot path first (0777) and put a "ready" venv for our key in
    it: refused by the CLI and by the prolog itself, and its python never runs."""
    depot = tmp_path / "depot"
    ok = prolog(project, depot)
    assert ready_state(ok.stderr) == "cold"
    venv = Path(ok.stdout.strip())
    pwned = tmp_path / "PWNED"
    python = venv / "bin" / "python"
    python.unlink()
    python.write_text(f'#!/bin/sh\ntouch {pwned}\nexec /usr/bin/python3 "$@"\n')
    python.chmod(0o755)
    for p in [depot, *depot.rglob("*")]:
        os.chown(p, NOBODY, -1, follow_symlinks=False)
    depot.chmod(0o777)
    r = uvslurm("prepare", "--no-node-local", cwd=project, env={"UVSLURM_DEPOT": str(depot)})
    assert r.returncode == 1
    assert f"the depot is not safe to use: {depot} belongs to nobody, not to you" in r.stderr
    p = prolog(project, depot, UVSLURM_MODE="run", UVSLURM_CMD="python")
    assert p.returncode == 75, p.stderr
    assert f"uvslurm: error: the depot {depot} is not a directory of yours" in p.stderr
    # a project directory planted inside a depot of ours
    mine = tmp_path / "mine"
    ok = prolog(project, mine)
    pdir = mine / project_id(str(project))
    os.chown(pdir, NOBODY, -1)
    p = prolog(project, mine)
    assert p.returncode == 75 and f"{pdir} is not a directory of yours" in p.stderr
    assert not pwned.exists()


def test_a_depot_writable_by_others_is_refused(project: Path, tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    depot.mkdir()
    depot.chmod(0o777)
    r = uvslurm("prepare", "--no-node-local", cwd=project, env={"UVSLURM_DEPOT": str(depot)})
    assert r.returncode == 1 and "is writable by others (mode 777)" in r.stderr
    # the prolog on its own (a job script resubmitted by hand) will not build in it either
    p = prolog(project, depot)
    assert p.returncode == 75 and "is writable by other users" in p.stderr
    assert list(depot.iterdir()) in ([], [depot / ".facts"]), list(depot.iterdir())


def test_remembered_key_names_never_leave_the_project_directory(
    project: Path, tmp_path: Path
) -> None:
    depot = tmp_path / "depot"
    first = prolog(project, depot)
    venv = Path(first.stdout.strip())
    keys = venv.parent / ".keys"
    line = keys.read_text().split("\n")[0]  # (str.splitlines would split at its \x1e too)
    # .keys remembers fingerprint hashes; the key is <that>-<lock hash>: a planted "hash" of
    # "../../outsid" would lead to <depot>/../outsid-<lock hash>
    outside = tmp_path / f"outsid-{venv.name.rsplit('-', 1)[1]}"
    (outside / "bin").mkdir(parents=True)
    (outside / ".uvslurm-ready").touch()
    (outside / "bin" / "python").symlink_to("/usr/bin/python3")
    evil = "../../outsid" + line[line.index("\x1e") :]
    keys.write_text(evil + "\n")
    r = prolog(project, depot)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == venv, "a key read back from .keys left the depot"


def test_two_checkouts_of_one_repository_get_their_own_node_local_venvs(
    project: Path, tmp_path: Path
) -> None:
    """Same uv.lock, same node: each checkout's job runs its own code (the editable install of
    the project points at its own sources)."""
    other = tmp_path / "clone"
    shutil.copytree(project, other)
    (other / "src" / "demo" / "__init__.py").write_text("WHO = 'clone'\n")
    (project / "src" / "demo" / "__init__.py").write_text("WHO = 'original'\n")
    depot, local = tmp_path / "depot", tmp_path / "local"
    local.mkdir()
    code = "import demo; print(demo.WHO)"
    seen = {}
    for proj in (project, other, project):
        r = prolog(proj, depot, UVSLURM_NODE_LOCAL=str(local))
        assert r.returncode == 0, r.stderr
        venv = Path(r.stdout.strip())
        assert venv.parent == local / f"uvslurm-{os.getuid()}"
        assert venv.name.startswith(project_id(str(proj)) + "-")
        out = subprocess.run([venv / "bin" / "python", "-c", code], capture_output=True, text=True)
        seen[proj] = (venv, out.stdout.strip())
    assert seen[project][1] == "original" and seen[other][1] == "clone", seen
    assert seen[project][0] != seen[other][0]


@needs_root
def test_a_held_uv_lock_in_a_shared_tmp_does_not_hang_the_job(
    project: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Another user holds every uv-*.lock in the node's shared /tmp: uv's own lock files live in
    a private directory, so the prolog and the command go on."""
    # a shared directory the other user can reach (pytest's tmp_path is root's alone)
    shared = Path(tempfile.mkdtemp(prefix="uvslurm-shared-tmp-", dir="/var/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    shared.chmod(0o1777)
    depot = tmp_path / "depot"
    assert prolog(project, depot, TMPDIR=str(shared)).returncode == 0
    # what plain uv would lock there, for this project: found by running it once
    probe = tmp_path / "probe"
    probe.mkdir()
    subprocess.run(["uv", "run", "--no-sync", "--project", str(project), "true"],
                   env={**os.environ, "TMPDIR": str(probe)}, capture_output=True)  # fmt: skip
    names = [p.name for p in probe.glob("uv-*.lock")]
    assert names, "uv took no lock in TMPDIR: the premise of this test is gone"
    holders = []
    for name in names:
        f = shared / name
        f.touch()
        f.chmod(0o666)
        os.chown(f, NOBODY, -1)
        holder = subprocess.Popen(
            ["runuser", "-u", "nobody", "--", "flock", str(f), "sleep", "300"],
            start_new_session=True,
        )
        holders.append(holder)
    try:
        held = lambda: subprocess.run(["flock", "-n", str(shared / names[0]), "true"]).returncode  # noqa: E731
        wait_for(held, 10, "the other user's flock on uv's lock file")
        r = subprocess.run(
            ["bash", "-c", 'UVSLURM_CMD=(python -c "print(42)"); source "$1"', "_", str(PROLOG)],
            env={**os.environ, "UVSLURM_PROJECT": str(project),
                 "UVSLURM_PROJECT_ID": project_id(str(project)), "UVSLURM_DEPOT": str(depot),
                 "UVSLURM_MODE": "run", "UVSLURM_NODE_LOCAL": "never", "UVSLURM_PYTHON": "3.11",
                 "TMPDIR": str(shared)},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        for h in holders:
            os.killpg(h.pid, signal.SIGKILL)  # runuser and the flock and sleep under it
            h.wait()
    assert r.returncode == 0, r.stderr
    assert "ready (warm)" in r.stderr and r.stdout == "42\n"
    private = shared / f"uvslurm-{os.getuid()}" / "tmp"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert list(private.glob("uv-*.lock")), "uv's lock file is not in the private directory"


def test_depot_settings_must_expand_to_absolute_paths(project: Path, tmp_path: Path) -> None:
    pyproject = project / "pyproject.toml"
    base = pyproject.read_text()
    env = {"UVSLURM_UNSET_FOR_TEST": ""}
    pyproject.write_text(base + '\n[tool.uvslurm]\ndepot = "$UVSLURM_UNSET_FOR_TEST/venvs"\n')
    for argv in (["submit", "--dry-run", "train.py"], ["env"], ["prepare"], ["depot", "path"]):
        r = uvslurm(*argv, cwd=project, env=env)
        assert r.returncode == 1, (argv, r.stdout)
        assert (
            "depot = '$UVSLURM_UNSET_FOR_TEST/venvs' (from "
            f"{pyproject} [tool.uvslurm]): "
            "$UVSLURM_UNSET_FOR_TEST is not set"
        ) in r.stderr, r.stderr
    assert not (project / "$UVSLURM_UNSET_FOR_TEST").exists()
    doctor = uvslurm("doctor", cwd=project, env=env)
    assert doctor.returncode == 1 and "fail depot: depot = " in doctor.stdout
    pyproject.write_text(base + '\n[tool.uvslurm]\ndepot = "venvs"\n')
    r = uvslurm("submit", "--dry-run", "train.py", cwd=project)
    assert r.returncode == 1 and "depot = 'venvs' (from" in r.stderr
    assert "is not an absolute path" in r.stderr
    pyproject.write_text(base + '\n[tool.uvslurm]\ndepot = "${SCRATCH}/venvs"\n')
    r = uvslurm("depot", "path", cwd=project)
    assert r.returncode == 0 and r.stdout.strip() == f"{os.environ['SCRATCH']}/venvs"


def test_uv_gets_a_private_tmpdir_only_where_tmpdir_is_shared(tmp_path: Path) -> None:
    """paths.private_tmpdir: a per-job TMPDIR of the user's stays, a shared one is replaced,
    and a planted uvslurm-<uid> in it is refused (None: uv runs as before, with a warning
    in the prolog)."""
    from uvslurm.paths import private_tmpdir

    own = tmp_path / "job"
    own.mkdir(mode=0o700)
    assert private_tmpdir({"TMPDIR": str(own)}) is None
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    got = private_tmpdir({"TMPDIR": str(shared)})
    assert got == str(shared / f"uvslurm-{os.geteuid()}" / "tmp")
    assert stat.S_IMODE(os.stat(got).st_mode) == 0o700
    planted = tmp_path / "planted"
    planted.mkdir()
    planted.chmod(0o1777)
    (planted / f"uvslurm-{os.geteuid()}").symlink_to(tmp_path)
    assert private_tmpdir({"TMPDIR": str(planted)}) is None


@needs_root
@pytest.mark.parametrize("planted", ["dir", "symlink"])
def test_a_planted_private_tmpdir_is_neither_used_nor_written(
    project: Path, tmp_path: Path, request: pytest.FixtureRequest, planted: str
) -> None:
    """Another user made <shared TMPDIR>/uvslurm-<uid> first (a 0777 directory, or a symlink to
    one of theirs): the prolog creates nothing in it, warns, and the job runs."""
    shared = Path(tempfile.mkdtemp(prefix="uvslurm-shared-tmp-", dir="/var/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    shared.chmod(0o1777)
    lure = shared / f"uvslurm-{os.getuid()}"
    trap = shared / "trap"
    trap.mkdir()
    if planted == "dir":
        lure.mkdir()
        target = lure
    else:
        lure.symlink_to(trap)
        os.chown(lure, NOBODY, -1, follow_symlinks=False)
        target = trap
    os.chown(target, NOBODY, -1)
    target.chmod(0o777)
    depot = tmp_path / "depot"
    r = subprocess.run(
        ["bash", "-c", 'UVSLURM_CMD=(python -c "import os; print(os.environ[\'TMPDIR\'])"); . "$1"',
         "_", str(PROLOG)],
        env={**prolog_env(project, depot, UVSLURM_MODE="run"), "TMPDIR": str(shared)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"uvslurm: warning: {lure} is not a private directory of this user" in r.stderr
    assert r.stdout.strip() == str(shared), "TMPDIR must stay the shared one, not the planted"
    assert list(target.iterdir()) == [], "the prolog wrote into the planted directory"
