"""depot.py in-process: reading a depot laid out by hand as the prolog lays it out, and removing
things under the locks a job would hold (flocks taken here, on their own open files, conflict
exactly as another process's would)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from uvslurm import depot, names
from uvslurm.nodeenv import project_id

KEY = "0123456789ab-01234567"
KEY2 = "ba9876543210-76543210"
SHELL = "shell-0123456789ab"
DAY = 86400.0


@contextmanager
def held(path: Path, shared: bool = False) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def _age(path: Path, days: float, now: float | None = None) -> None:
    t = (time.time() if now is None else now) - days * DAY
    os.utime(path, (t, t), follow_symlinks=False)


def marker_text(key: str, project: str, size: str = "42", extra: str = "") -> str:
    return f"key={key}\nproject={project}\nsize_kb={size}\nbuilt_on=node7\nmodules=gcc/12\n{extra}"


def make_venv(root: Path, project: str, key: str = KEY, marker: bool = True) -> Path:
    pdir = root / project_id(project)
    venv = pdir / key
    venv.mkdir(parents=True, exist_ok=True)
    (venv / "pyvenv.cfg").write_text("home = /x\n")
    if marker and not key.startswith("shell-"):
        (venv / depot.MARKER).write_text(marker_text(key, project))
    return venv


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "depot"
    r.mkdir()
    return r


@pytest.fixture
def proj(tmp_path: Path) -> str:
    p = tmp_path / "proj"
    p.mkdir()
    return str(p)


# --- markers -------------------------------------------------------------------------------


def test_read_marker(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    (venv / depot.MARKER).write_text(
        marker_text(KEY, proj, extra="arch=x86_64\nnoequals\ncpu=a=b\nkey=again\nproject=x\n")
    )
    m = depot.read_marker(venv)
    assert m == depot.Marker(
        project=proj,
        built_on="node7",
        size_kb=42,
        components={"modules": "gcc/12", "arch": "x86_64", "cpu": "a=b"},
    )


def test_read_marker_skips_the_sampled_files(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    text = marker_text(KEY, proj).replace(
        "built_on=node7\n", "built_on=node7\ncheck=lib/a b=c/RECORD\x1flib/x=1.py\x1flib/y\n"
    )
    (venv / depot.MARKER).write_text(text)
    m = depot.read_marker(venv)
    assert m is not None and m.components == {"modules": "gcc/12"} and m.built_on == "node7"


def test_read_marker_missing_and_odd_sizes(root: Path, proj: str) -> None:
    venv = make_venv(root, proj, marker=False)
    assert depot.read_marker(venv) is None
    (venv / depot.MARKER).write_text(marker_text(KEY, proj, size="12k"))
    m = depot.read_marker(venv)
    assert m is not None and m.size_kb is None and m.project == proj


def test_read_marker_project_must_hash_to_the_directory(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    (venv / depot.MARKER).write_text(marker_text(KEY, "/some/other/project"))
    m = depot.read_marker(venv)
    # not the project this directory is named after: not believed, the rest is read
    assert m == depot.Marker("", "node7", 42, {"modules": "gcc/12"})


def test_read_marker_project_with_a_newline(tmp_path: Path, root: Path) -> None:
    project = str(tmp_path / "a\nsize_kb=1\nmodules=evil")
    venv = make_venv(root, project)
    m = depot.read_marker(venv)
    assert m is not None
    assert m.project == project
    assert m.size_kb == 42
    assert m.components == {"modules": "gcc/12"}


def test_read_marker_without_the_header(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    (venv / depot.MARKER).write_text("junk\nproject=" + proj + "\nsize_kb=3\n")
    assert depot.read_marker(venv) == depot.Marker("", "", 3, {})


def test_read_marker_undecodable(root: Path, tmp_path: Path) -> None:
    project = os.fsdecode(os.fsencode(str(tmp_path)) + b"/\xff")
    venv = make_venv(root, project, marker=False)
    (venv / depot.MARKER).write_bytes(
        b"key=" + KEY.encode() + b"\nproject=" + os.fsencode(project) + b"\nsize_kb=1\n"
    )
    m = depot.read_marker(venv)
    assert m is not None and m.project == project


# --- listing -------------------------------------------------------------------------------


def test_venvs_lists_job_interactive_and_incomplete(root: Path, proj: str) -> None:
    job = make_venv(root, proj)
    shell = make_venv(root, proj, SHELL)
    incomplete = make_venv(root, proj, KEY2, marker=False)
    # not of the grammar, or not directories: never listed
    pdir = job.parent
    (pdir / "notes").mkdir()
    (pdir / "0123456789ab-0123456").mkdir()
    (pdir / f"{KEY}.lock").write_text("")
    (root / "stray-dir").mkdir()
    (root / ".facts").mkdir()
    got = {v.path: v for v in depot.venvs(root)}
    assert list(got) == sorted([job, shell, incomplete])
    j = got[job]
    assert (j.kind, j.project, j.built_on, j.size_kb) == ("job", proj, "node7", 42)
    assert j.components == {"modules": "gcc/12"}
    assert j.key == KEY
    assert j.project_exists
    assert j.lock == pdir / f"{KEY}.lock"
    s = got[shell]
    assert (s.kind, s.project, s.components, s.size_kb, s.built_on) == (
        "interactive",
        proj,
        {},
        None,
        "",
    )
    assert s.lock == shell / ".lock"
    i = got[incomplete]
    assert (i.kind, i.project, i.components) == ("incomplete", "", {})
    assert not i.project_exists
    assert i.lock == pdir / f"{KEY2}.lock"


def test_venvs_of_an_interactive_only_project(root: Path, proj: str) -> None:
    shell = make_venv(root, proj, SHELL)
    [v] = list(depot.venvs(root))
    assert (v.path, v.kind, v.project) == (shell, "interactive", "")


def test_venvs_of_no_depot(tmp_path: Path) -> None:
    assert list(depot.venvs(tmp_path / "none")) == []
    f = tmp_path / "file"
    f.write_text("")
    assert list(depot.venvs(f)) == []


def test_venvs_skip_symlinks(root: Path, proj: str, tmp_path: Path) -> None:
    venv = make_venv(root, proj)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (venv.parent / KEY2).symlink_to(elsewhere)
    linked_pdir = root / project_id("/other/project")
    linked_pdir.symlink_to(venv.parent)
    assert [v.path for v in depot.venvs(root)] == [venv]


def test_project_exists(root: Path, proj: str, tmp_path: Path) -> None:
    venv = make_venv(root, proj)
    Path(proj).rmdir()
    assert not next(depot.venvs(root)).project_exists
    Path(proj).write_text("a file is no project")
    assert not next(depot.venvs(root)).project_exists
    assert venv.exists()


def test_last_used_of_a_job_venv_is_its_use_stamp(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    now = time.time()
    _age(venv / depot.MARKER, 10, now)
    _age(venv / "pyvenv.cfg", 1, now)
    _age(venv, 1, now)
    v = next(depot.venvs(root))
    assert v.last_used == pytest.approx(now - 10 * DAY, abs=1)
    assert v.used_stamp is None
    (venv / depot.USED).write_text("")
    _age(venv / depot.USED, 20, now)
    v = next(depot.venvs(root))
    assert v.last_used == pytest.approx(now - 20 * DAY, abs=1)
    assert v.used_stamp == (venv / depot.USED).stat().st_mtime_ns
    (venv / depot.USED).unlink()
    (venv / depot.MARKER).unlink()
    _age(venv / "pyvenv.cfg", 3, now)
    v = next(depot.venvs(root))
    assert v.last_used == pytest.approx(now - 3 * DAY, abs=1)
    (venv / "pyvenv.cfg").unlink()
    _age(venv, 4, now)
    assert next(depot.venvs(root)).last_used == pytest.approx(now - 4 * DAY, abs=1)


def test_last_used_of_an_interactive_venv_is_its_newest_change(root: Path, proj: str) -> None:
    venv = make_venv(root, proj, SHELL)
    sp = venv / "lib" / "python3.11" / "site-packages"
    sp.mkdir(parents=True)
    now = time.time()
    for p, days in ((venv / "pyvenv.cfg", 9), (venv, 8), (sp, 2)):
        _age(p, days, now)
    assert next(depot.venvs(root)).last_used == pytest.approx(now - 2 * DAY, abs=1)
    _age(sp, 30, now)
    assert next(depot.venvs(root)).last_used == pytest.approx(now - 8 * DAY, abs=1)


def test_last_used_of_nothing(tmp_path: Path) -> None:
    assert depot._last_used(tmp_path / "gone", False) == 0.0
    assert depot._last_used(tmp_path / "gone", True) == 0.0


def test_usage_counts_blocks_and_inodes_once(tmp_path: Path) -> None:
    assert depot.usage(tmp_path / "missing") == (0, 0)
    d = tmp_path / "tree"
    d.mkdir()
    (d / "a").write_bytes(b"x" * 10000)
    sub = d / "sub"
    sub.mkdir()
    os.link(d / "a", sub / "hard")
    (sub / "link").symlink_to("/etc/passwd")
    blocks = sum(os.lstat(p).st_blocks for p in (d, d / "a", sub, sub / "link")) * 512
    assert depot.usage(d) == (blocks, 4)
    f = d / "a"
    assert depot.usage(f) == (os.lstat(f).st_blocks * 512, 1)


def test_usage_hard_links_to_outside_count(tmp_path: Path) -> None:
    outside = tmp_path / "o"
    outside.write_bytes(b"y" * 5000)
    d = tmp_path / "tree"
    d.mkdir()
    os.link(outside, d / "h")
    assert depot.usage(d) == ((os.lstat(d).st_blocks + os.lstat(outside).st_blocks) * 512, 2)


# --- locks and removal ---------------------------------------------------------------------


def test_holder(root: Path, proj: str) -> None:
    make_venv(root, proj)
    v = next(depot.venvs(root))
    assert depot.holder(v) is None
    assert not v.lock.exists()  # looking does not create the lock file
    with held(v.lock):
        assert depot.holder(v) == "a job is building or placing it"
    with held(v.path / depot.USED, shared=True):
        assert depot.holder(v) == "a running job uses it"
    assert depot.holder(v) is None


def test_locked_on_a_directory_is_not_held(tmp_path: Path) -> None:
    assert depot._locked(tmp_path) is False
    assert depot._locked(tmp_path / "missing") is False


def test_try_lock(tmp_path: Path) -> None:
    p = tmp_path / "l"
    assert depot._try_lock(p, create=False) is None
    assert not p.exists()
    fd = depot._try_lock(p, create=True)
    assert fd is not None and p.exists()
    assert (p.stat().st_mode & 0o777) == 0o644
    with pytest.raises(BlockingIOError):
        depot._try_lock(p, create=False)
    depot._close(fd, None)
    fd2 = depot._try_lock(p, create=False)
    assert fd2 is not None
    assert fcntl.fcntl(fd2, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    depot._close(fd2)
    with pytest.raises(OSError):
        os.fstat(fd2)


def test_try_lock_closes_its_fd_when_held(tmp_path: Path) -> None:
    p = tmp_path / "l"
    with held(p):
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(5):
            with pytest.raises(BlockingIOError):
                depot._try_lock(p, create=False)
        assert len(os.listdir("/proc/self/fd")) == before


def test_busy() -> None:
    b = depot.Busy(Path("/x"), "why")
    assert str(b) == "/x: why"
    assert (b.path, b.why) == (Path("/x"), "why")


def test_remove_a_job_venv_with_its_image_and_lock(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    pdir = venv.parent
    for image in depot.IMAGES:
        (pdir / f"{KEY}{image}").write_text("img")
    (pdir / f"{KEY2}.squashfs").write_text("other")
    (venv / depot.USED).write_text("")
    v = next(depot.venvs(root))
    depot.remove(v)
    assert sorted(p.name for p in pdir.iterdir()) == [f"{KEY2}.squashfs"]


def test_remove_an_interactive_venv_leaves_no_lock_file(root: Path, proj: str) -> None:
    shell = make_venv(root, proj, SHELL)
    (shell.parent / f"{SHELL}.lock").write_text("")
    v = next(depot.venvs(root))
    depot.remove(v)
    assert not shell.exists()
    # an interactive venv's lock is uv's own, inside it: the file beside it is not its lock
    assert (shell.parent / f"{SHELL}.lock").exists()


def test_remove_refuses_a_held_venv(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    v = next(depot.venvs(root))
    with held(v.lock), pytest.raises(depot.Busy) as e:
        depot.remove(v)
    assert (e.value.path, e.value.why) == (venv, "a job is building or placing it")
    assert venv.is_dir()
    (venv / depot.USED).write_text("")
    v = next(depot.venvs(root))
    with held(venv / depot.USED, shared=True), pytest.raises(depot.Busy) as e:
        depot.remove(v)
    assert e.value.why == "a running job uses it"
    assert venv.is_dir()
    # the key lock taken for the attempt was given back
    assert depot.holder(v) is None


def test_remove_interactive_held_by_uv(root: Path, proj: str) -> None:
    shell = make_venv(root, proj, SHELL)
    (shell / ".lock").write_text("")
    v = next(depot.venvs(root))
    with held(shell / ".lock"), pytest.raises(depot.Busy) as e:
        depot.remove(v)
    assert e.value.why == "a job is building or placing it"
    assert shell.is_dir()


def test_remove_gives_back_a_venv_a_job_started_using(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    (venv / depot.USED).write_text("")
    v = next(depot.venvs(root))
    os.utime(venv / depot.USED, ns=(1, v.used_stamp + 1_000_000))  # type: ignore[operator]
    with pytest.raises(depot.Busy) as e:
        depot.remove(v)
    assert e.value.why == "a job started using it just now"
    assert venv.is_dir() and (venv / depot.MARKER).is_file()
    assert sorted(p.name for p in venv.parent.iterdir()) == [KEY, f"{KEY}.lock"]
    # a venv first used after it was listed counts too
    venv2 = make_venv(root, proj, KEY2)
    v2 = next(x for x in depot.venvs(root) if x.path == venv2)
    (venv2 / depot.USED).write_text("")
    with pytest.raises(depot.Busy):
        depot.remove(v2)
    assert venv2.is_dir()


def test_trash_name(tmp_path: Path) -> None:
    a = depot._trash_name(tmp_path / "x")
    b = depot._trash_name(tmp_path / "x")
    assert a.parent == tmp_path
    assert a.name.startswith(f".x.trash-gc-{os.getpid()}-")
    assert a != b


# --- leftovers -----------------------------------------------------------------------------


def test_project_leftovers(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    pdir = venv.parent
    build = pdir / f".{KEY2}.build-123"
    build.mkdir()
    trash = pdir / f".{KEY}.trash-gc-1-2"
    trash.mkdir()
    shell_trash = pdir / f".{SHELL}.trash-x"
    shell_trash.mkdir()
    pack = pdir / f"{KEY}.tar.zst.tmp-77"
    pack.write_text("")
    (pdir / f"{KEY}.lock").write_text("")  # its venv is there
    (pdir / f"{KEY2}.lock").write_text("")  # its venv is being built
    orphan = pdir / "aaaaaaaaaaaa-bbbbbbbb.lock"
    orphan.write_text("")
    (pdir / "other.lock").write_text("")
    assert depot.leftovers(root, 30) == [
        depot.Leftover(trash, "a venv being deleted by a killed process"),
        depot.Leftover(build, "a killed build", pdir / f"{KEY2}.lock"),
        depot.Leftover(shell_trash, "a venv being deleted by a killed process"),
        depot.Leftover(pack, "an image a killed build was packing", pdir / f"{KEY}.lock"),
        depot.Leftover(orphan, "a lock without its venv", orphan),
    ]
    # once the build is gone, its lock is a leftover too
    build.rmdir()
    assert depot.Leftover(
        pdir / f"{KEY2}.lock", "a lock without its venv", pdir / f"{KEY2}.lock"
    ) in (depot.leftovers(root, 30))


def test_a_pending_file_older_than_a_day_is_a_leftover(root: Path, proj: str) -> None:
    """A start killed on its full path leaves its .pending-<host>-<pid>; a later start with the
    same inputs on that node removes it, but another node's stays: gc takes it after a day."""
    pdir = make_venv(root, proj).parent
    old, new = pdir / ".pending-n7-4242", pdir / ".pending-n1-99"
    for p in (old, new):
        p.write_text("inputs\n")
    _age(old, 1.1, time.time())
    _age(new, 0.9, time.time())
    assert depot.leftovers(root, 30) == [depot.Leftover(old, "the pending file of a killed start")]
    depot.remove_leftover(depot.leftovers(root, 30)[0])
    assert not old.exists() and new.exists()


def test_a_build_of_another_key_does_not_keep_a_lock(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    pdir = venv.parent
    (pdir / f".{KEY}.build-1").mkdir()
    lock = pdir / "aaaaaaaaaaaa-bbbbbbbb.lock"
    lock.write_text("")
    assert depot.Leftover(lock, "a lock without its venv", lock) in depot.leftovers(root, 30)


def test_wheel_and_prefetch_and_facts_leftovers(root: Path) -> None:
    now = time.time()
    wheels = root / ".wheels" / "mpi4py-4.0.0"
    wheels.mkdir(parents=True)
    wbuild = wheels / ".0123456789ab.build-9"
    wbuild.mkdir()
    (wheels / "0123456789ab").mkdir()
    (wheels / "0123456789ab.lock").write_text("")
    bad = root / ".wheels" / "bad name"
    bad.mkdir()
    (bad / ".0123456789ab.build-9").mkdir()
    pre = root / ".prefetch"
    pre.mkdir()
    old_sync, new_sync, stamp = pre / "sync-old", pre / "sync-new", pre / "0123abcd"
    for p in (old_sync, new_sync):
        p.mkdir()
    stamp.write_text("")
    # a stamp before its rename, by a prefetch killed then
    part, new_part = pre / ".0123abcd.tmp-77", pre / ".4567abcd.tmp-78"
    part.write_text("")
    new_part.write_text("")
    _age(part, 2, now)
    _age(new_part, 0.1, now)
    _age(old_sync, 1.5, now)
    _age(new_sync, 0.5, now)
    _age(stamp, 100, now)
    facts = root / ".facts"
    facts.mkdir()
    old_fact, new_fact = facts / "n1", facts / "n2"
    old_fact.write_text("")
    new_fact.write_text("")
    _age(old_fact, 8, now)
    _age(new_fact, 6, now)
    got = depot.leftovers(root, 7, now)
    assert got == [
        depot.Leftover(wbuild, "a killed wheel build", wheels / "0123456789ab.lock"),
        depot.Leftover(part, "a killed prefetch"),
        depot.Leftover(old_sync, "a killed prefetch"),
        depot.Leftover(old_fact, "machine facts unused for 7 days"),
    ]
    assert depot.leftovers(root, 0.5, now)[-1].why == "machine facts unused for 0.5 days"
    assert len(depot.leftovers(root, 5, now)) == 5
    # without `now`: the clock
    assert depot.leftovers(root, 7) == got


def test_leftovers_of_no_depot(tmp_path: Path) -> None:
    assert depot.leftovers(tmp_path / "none", 1) == []
    assert depot.leftovers(tmp_path, 1) == []


def test_wheel_package_of_another_owner_is_skipped(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "w"
    other.mkdir()
    (other / ".0123456789ab.build-1").mkdir()
    (root / ".wheels").mkdir()
    (root / ".wheels" / "pkg-1").symlink_to(other)
    assert depot.leftovers(root, 1) == []


def test_remove_leftover_directory_and_file(root: Path, proj: str) -> None:
    pdir = make_venv(root, proj).parent
    build = pdir / f".{KEY2}.build-1"
    (build / "sub").mkdir(parents=True)
    _age(build, 1)  # its builder's heartbeat stopped long ago
    lock = pdir / f"{KEY2}.lock"
    lock.write_text("")
    depot.remove_leftover(depot.Leftover(build, "b", lock))
    assert not build.exists()
    assert lock.exists()  # the lock of a build is not the leftover
    assert [p.name for p in pdir.iterdir() if ".trash" in p.name] == []
    depot.remove_leftover(depot.Leftover(lock, "l", lock))
    assert not lock.exists()
    trash = pdir / f".{KEY}.trash-gc-1-1"
    (trash / "x").mkdir(parents=True)
    depot.remove_leftover(depot.Leftover(trash, "t"))
    assert not trash.exists()
    # gone already: nothing to do
    depot.remove_leftover(depot.Leftover(trash, "t"))
    depot.remove_leftover(depot.Leftover(pdir / "missing.lock", "l", pdir / "missing.lock"))


def test_a_build_or_lease_touched_lately_is_busy_whatever_the_locks_say(
    root: Path, proj: str
) -> None:
    """Where flocks do not exclude across nodes, a free lock proves nothing: a build directory
    or lease that a builder's heartbeat touched in the last ten minutes stays."""
    pdir = make_venv(root, proj).parent
    build, lease = pdir / f".{KEY2}.build-n2-0123abcd-7", pdir / f".{KEY2}.lease"
    build.mkdir()
    lease.write_text("n2-0123abcd-7 1 2\n")
    failed = pdir / f".{KEY2}.failed"
    failed.write_text("1\njob 1 on n2\nuv sync failed\n")
    lock = pdir / f"{KEY2}.lock"
    got = depot.leftovers(root, 30)
    assert depot.Leftover(build, "a killed build", lock) in got
    assert depot.Leftover(lease, "the lease of a killed build", lock) in got
    assert [x for x in got if x.path == failed] == [], "a failure is remembered for a minute"
    for path in (build, lease):
        item = depot.Leftover(path, "x", lock)
        assert depot.leftover_is_busy(item)
        with pytest.raises(depot.Busy, match="its owner is still running"):
            depot.remove_leftover(item)
        assert path.exists()
        _age(path, depot.HEARTBEAT / DAY + 0.001)
        assert not depot.leftover_is_busy(item)
        depot.remove_leftover(item)
        assert not path.exists()
    _age(failed, depot.FAILED_FOR / DAY + 0.001)
    assert depot.Leftover(failed, "the record of a failed build") in depot.leftovers(root, 30)


def test_remove_leftover_symlink_only_removes_the_link(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "f").write_text("keep")
    link = root / "link"
    link.symlink_to(target)
    depot.remove_leftover(depot.Leftover(link, "x"))
    assert not link.is_symlink() and (target / "f").read_text() == "keep"


def test_remove_leftover_held(root: Path, proj: str) -> None:
    pdir = make_venv(root, proj).parent
    build = pdir / f".{KEY2}.build-1"
    build.mkdir()
    _age(build, 1)
    lock = pdir / f"{KEY2}.lock"
    item = depot.Leftover(build, "b", lock)
    assert not depot.leftover_is_busy(item)
    with held(lock):
        assert depot.leftover_is_busy(item)
        with pytest.raises(depot.Busy) as e:
            depot.remove_leftover(item)
        assert (e.value.path, e.value.why) == (build, "its owner is still running")
        assert build.is_dir()
    assert not depot.leftover_is_busy(depot.Leftover(build, "b"))
    depot.remove_leftover(item)
    assert not build.exists()
    # the lock was let go: another taker gets it
    fd = depot._try_lock(lock, create=False)
    assert fd is not None
    os.close(fd)


# --- rebuilt wheels ------------------------------------------------------------------------


def test_wheel_dirs(root: Path) -> None:
    assert list(depot.wheel_dirs(root)) == []
    base = root / ".wheels"
    pkg = base / "mpi4py-4.0.0"
    a, b = pkg / "0123456789ab", pkg / "ba9876543210"
    for d in (a, b):
        d.mkdir(parents=True)
    (pkg / "not-a-fingerprint").mkdir()
    (pkg / "0123456789ab.lock").write_text("")
    (base / "bad name").mkdir()
    (base / "bad name" / "0123456789ab").mkdir()
    now = time.time()
    (a / depot.USED).write_text("")
    _age(a / depot.USED, 3, now)
    _age(a, 1, now)
    _age(b, 5, now)
    got = list(depot.wheel_dirs(root))
    assert [w.path for w in got] == [a, b]
    assert got[0].last_used == pytest.approx(now - 3 * DAY, abs=1)
    assert got[1].last_used == pytest.approx(now - 5 * DAY, abs=1)
    assert got[0].lock == pkg / "0123456789ab.lock"


def test_remove_wheel_dir(root: Path) -> None:
    w = root / ".wheels" / "p-1" / "0123456789ab"
    (w / "x").mkdir(parents=True)
    wheel = next(depot.wheel_dirs(root))
    with held(wheel.lock), pytest.raises(depot.Busy) as e:
        depot.remove_wheel_dir(wheel)
    assert (e.value.path, e.value.why) == (w, "a build is using it")
    assert w.is_dir()
    depot.remove_wheel_dir(wheel)
    assert not w.exists()
    assert sorted(p.name for p in w.parent.iterdir()) == ["0123456789ab.lock"]


def test_remove_project_dir(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    pdir = venv.parent
    (pdir / ".keys").write_text(KEY)
    assert depot.remove_project_dir(pdir) is False
    assert pdir.is_dir() and (pdir / ".keys").exists()
    depot.remove(next(depot.venvs(root)))
    assert depot.remove_project_dir(pdir) is True
    assert not pdir.exists()
    assert depot.remove_project_dir(pdir) is False
    empty = root / "demo-0000000000"
    empty.mkdir()
    assert depot.remove_project_dir(empty) is True
    assert not empty.exists()
    # copies of small locks go with it; anything else (or a look-alike directory) keeps it
    remembered = root / "demo-1111111111"
    remembered.mkdir()
    (remembered / ".keys").write_text(KEY)
    (remembered / ".lock-0123456789abcdef").write_text("version = 1\n")
    # the warm start's memo and the certificates' env file: they went with it too (a project
    # whose jobs ran kept its directory for ever)
    (remembered / ".memo").write_text("inputs\nkey\n")
    (remembered / ".tls-env-0").write_text("SSL_CERT_DIR=/etc/ssl/certs\n")
    (remembered / ".tls-env-4").write_text("not of the grammar")
    assert depot.remove_project_dir(remembered) is False
    (remembered / ".tls-env-4").unlink()
    (remembered / ".lock-0123456789").write_text("not ours")
    assert depot.remove_project_dir(remembered) is False
    (remembered / ".lock-0123456789").unlink()
    (remembered / ".lock-fedcba9876543210").mkdir()
    assert depot.remove_project_dir(remembered) is False
    (remembered / ".lock-fedcba9876543210").rmdir()
    assert depot.remove_project_dir(remembered) is True
    assert not remembered.exists()


def test_remove_project_dir_that_cannot_go(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pdir = root / "demo-0000000000"
    pdir.mkdir()
    (pdir / ".keys").write_text("")

    def fail(self: Path) -> None:
        raise OSError("busy")

    monkeypatch.setattr(Path, "rmdir", fail)
    assert depot.remove_project_dir(pdir) is False
    assert not (pdir / ".keys").exists()


def test_read_marker_project_ending_in_an_equals_sign(tmp_path: Path, root: Path) -> None:
    project = str(tmp_path / "p=")
    venv = make_venv(root, project)
    assert depot.read_marker(venv) == depot.Marker(project, "node7", 42, {"modules": "gcc/12"})


def test_ours(tmp_path: Path) -> None:
    assert depot._ours(tmp_path)
    assert not depot._ours(tmp_path / "missing")
    f = tmp_path / "f"
    f.write_text("")
    assert not depot._ours(f)
    (tmp_path / "l").symlink_to(tmp_path)
    assert not depot._ours(tmp_path / "l")


def test_an_interactive_venv_never_names_the_project_from_a_stray_marker(
    root: Path, proj: str
) -> None:
    shell = make_venv(root, proj, SHELL)
    (shell / depot.MARKER).write_text(marker_text(SHELL, proj))
    [v] = list(depot.venvs(root))
    assert (v.kind, v.project) == ("interactive", "")


def test_usage_counts_what_follows_a_second_hard_link(tmp_path: Path) -> None:
    d = tmp_path / "tree"
    d.mkdir()
    (d / "a").write_bytes(b"x")
    os.link(d / "a", d / "b")
    n = 0
    while os.listdir(d)[-1] in ("a", "b") or n < 3:
        (d / f"f{n}").write_bytes(b"y")
        n += 1
    assert depot.usage(d)[1] == 1 + 1 + n


def test_try_lock_opens_for_appending_writes(tmp_path: Path) -> None:
    p = tmp_path / "l"
    p.write_text("keep")
    fd = depot._try_lock(p, create=False)
    assert fd is not None
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    assert flags & os.O_ACCMODE == os.O_WRONLY
    assert flags & os.O_APPEND
    depot._close(fd)
    assert p.read_text() == "keep"


def test_remove_reports_the_venv_a_job_holds(root: Path, proj: str) -> None:
    venv = make_venv(root, proj)
    (venv / depot.USED).write_text("")
    v = next(depot.venvs(root))
    with held(venv / depot.USED, shared=True), pytest.raises(depot.Busy) as e:
        depot.remove(v)
    assert e.value.path == venv
    os.utime(venv / depot.USED, ns=(1, v.used_stamp + 1_000_000))  # type: ignore[operator]
    with pytest.raises(depot.Busy) as e:
        depot.remove(v)
    assert e.value.path == venv
    # given back with no lock of ours left on it
    assert depot.holder(v) is None


def test_removing_a_held_interactive_venv_adds_nothing_to_it(root: Path, proj: str) -> None:
    shell = make_venv(root, proj, SHELL)
    (shell / depot.USED).write_text("")
    v = next(depot.venvs(root))
    with held(shell / depot.USED, shared=True), pytest.raises(depot.Busy):
        depot.remove(v)
    assert sorted(p.name for p in shell.iterdir()) == [depot.USED, "pyvenv.cfg"]


@pytest.fixture
def rmdir_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting a directory fails (a file server's hiccup): what was renamed away stays."""

    def fail(*a: object, **k: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "rmdir", fail)


def test_remove_when_the_tree_cannot_be_deleted(root: Path, proj: str, rmdir_fails: None) -> None:
    venv = make_venv(root, proj)
    depot.remove(next(depot.venvs(root)))
    assert not venv.exists()
    [left] = [p.name for p in venv.parent.iterdir()]
    assert left.startswith(f".{KEY}.trash-gc-")


def test_remove_leftover_when_the_tree_cannot_be_deleted(
    root: Path, proj: str, rmdir_fails: None
) -> None:
    pdir = make_venv(root, proj).parent
    build = pdir / f".{KEY2}.build-1"
    build.mkdir()
    _age(build, 1)
    depot.remove_leftover(depot.Leftover(build, "b"))
    assert not build.exists()
    trash = pdir / f".{KEY}.trash-x"
    trash.mkdir()
    depot.remove_leftover(depot.Leftover(trash, "t"))
    # a trash directory is removed where it is, not renamed again
    assert trash.exists()
    assert len([p for p in pdir.iterdir() if ".trash-gc-" in p.name]) == 1


def test_remove_wheel_dir_when_the_tree_cannot_be_deleted(root: Path, rmdir_fails: None) -> None:
    w = root / ".wheels" / "p-1" / "0123456789ab"
    w.mkdir(parents=True)
    depot.remove_wheel_dir(next(depot.wheel_dirs(root)))
    assert not w.exists()


def test_remove_leftover_does_not_create_its_lock(root: Path, proj: str) -> None:
    pdir = make_venv(root, proj).parent
    build = pdir / f".{KEY2}.build-1"
    build.mkdir()
    _age(build, 1)
    depot.remove_leftover(depot.Leftover(build, "b", pdir / f"{KEY2}.lock"))
    assert not (pdir / f"{KEY2}.lock").exists()


def test_remove_wheel_dir_takes_its_lock_and_lets_it_go(root: Path) -> None:
    w = root / ".wheels" / "p-1" / "0123456789ab"
    w.mkdir(parents=True)
    wheel = next(depot.wheel_dirs(root))
    assert not wheel.lock.exists()
    depot.remove_wheel_dir(wheel)
    assert wheel.lock.exists()
    fd = depot._try_lock(wheel.lock, create=False)
    assert fd is not None
    os.close(fd)


def test_leftovers_of_several_projects(root: Path, tmp_path: Path) -> None:
    a = make_venv(root, str(tmp_path / "a")).parent
    b = make_venv(root, str(tmp_path / "b")).parent
    (a / f".{KEY2}.build-1").mkdir()
    (b / f".{KEY2}.build-2").mkdir()
    assert {x.path for x in depot.leftovers(root, 30)} == {
        a / f".{KEY2}.build-1",
        b / f".{KEY2}.build-2",
    }


def test_leftovers_age_against_the_given_time(root: Path) -> None:
    now = float(int(time.time()) - 100 * 86400)
    pre = root / ".prefetch"
    pre.mkdir()
    facts = root / ".facts"
    facts.mkdir()
    sync_day, sync_more = pre / "sync-a", pre / "sync-b"
    fact_7, fact_more = facts / "n1", facts / "n2"
    for p in (sync_day, sync_more):
        p.mkdir()
    for p in (fact_7, fact_more):
        p.write_text("")
    # exactly a day, exactly 7 days: not yet; a second more: leftovers
    os.utime(sync_day, (now - DAY, now - DAY))
    os.utime(sync_more, (now - DAY - 1, now - DAY - 1))
    os.utime(fact_7, (now - 7 * DAY, now - 7 * DAY))
    os.utime(fact_more, (now - 7 * DAY - 1, now - 7 * DAY - 1))
    assert [x.path for x in depot.leftovers(root, 7, now)] == [sync_more, fact_more]


# --- projects gc cannot see, directories it cannot read, entries it cannot remove ----------


def test_project_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    (work / "proj").mkdir(parents=True)
    (work / "other").mkdir()
    assert depot.project_state(str(work / "proj")) == ("present", "")
    (work / "proj").rmdir()
    # missing from a readable parent that holds something: deleted
    assert depot.project_state(str(work / "proj")) == ("gone", "")
    (work / "proj").write_text("a file is no project")
    assert depot.project_state(str(work / "proj")) == ("gone", "")
    (work / "job.py").write_text("# /// script\n# ///\n")  # but a PEP 723 script is one
    assert depot.project_state(str(work / "job.py")) == ("present", "")
    # the parent is missing too, or empty: perhaps a filesystem that is not mounted here
    assert depot.project_state(str(tmp_path / "mnt" / "work" / "proj")) == (
        "unseen", f"{tmp_path / 'mnt' / 'work'} is missing too (a filesystem not mounted here?)",
    )  # fmt: skip
    (tmp_path / "mnt").mkdir()
    assert depot.project_state(str(tmp_path / "mnt" / "proj")) == (
        "unseen", f"{tmp_path / 'mnt'} is empty (a filesystem not mounted here?)",
    )  # fmt: skip
    # a link to such a place
    (work / "linked").symlink_to(tmp_path / "mnt" / "proj")
    assert depot.project_state(str(work / "linked"))[0] == "unseen"
    # a parent it may not read, a path it may not look at
    real_scandir, real_stat = os.scandir, os.stat

    def scandir(path: Any) -> Any:
        if str(path) == str(work):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    def stat_(path: Any, *a: Any, **k: Any) -> Any:
        if str(path) == str(work / "hidden"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *a, **k)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "stat", stat_)
    assert depot.project_state(str(work / "gone")) == (
        "unseen", f"cannot read {work} (Permission denied)",
    )  # fmt: skip
    assert depot.project_state(str(work / "hidden")) == (
        "unseen", "cannot look at it (Permission denied)",
    )  # fmt: skip


def _unreadable(monkeypatch: pytest.MonkeyPatch, *dirs: Path) -> None:
    """Listing these directories fails as it does for a directory of mode 000 (tests run as
    root here, whom no mode stops)."""
    real = Path.iterdir

    def iterdir(self: Path) -> Iterator[Path]:
        if self in dirs:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)


def test_gc_keeps_the_venvs_of_a_project_it_cannot_see(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A project on a filesystem that is not mounted where gc runs is no deleted project: its
    venvs stay (unless unused for --older-than days); one truly deleted goes."""
    from uvslurm.commands import depot as depot_cmd

    mount = tmp_path / "gpfs"
    mount.mkdir()  # the mount point, empty: the filesystem is not mounted here
    unmounted = make_venv(root, str(mount / "alice" / "proj"))
    (tmp_path / "home" / "keep").mkdir(parents=True)
    deleted = make_venv(root, str(tmp_path / "home" / "proj"))
    assert depot_cmd.gc_cmd(root, 30, dry_run=False) == 0
    out, err = capsys.readouterr()
    assert unmounted.exists()
    assert not deleted.exists()
    assert (
        f"cannot see the project {mount / 'alice' / 'proj'} ({mount / 'alice'} is missing "
        "too (a filesystem not mounted here?)); its venvs are not removed as gone" in err
    )
    assert out.endswith("(1 removed; 1 projects it could not see were not taken for gone)\n"), out
    # unused for long enough, it goes like any other
    for name in (depot.MARKER, "pyvenv.cfg", "."):
        _age(unmounted / name, 40)
    assert depot_cmd.gc_cmd(root, 30, dry_run=False) == 0
    assert not unmounted.exists()


def test_gc_goes_on_past_directories_it_cannot_read(
    root: Path, proj: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """One unreadable directory (a project directory, a rebuilt wheel's package directory,
    the machine facts) is reported and skipped; gc still cleans the rest of the depot."""
    from uvslurm.commands import depot as depot_cmd

    old = make_venv(root, proj)
    for name in (depot.MARKER, "pyvenv.cfg", "."):
        _age(old / name, 40)
    other = make_venv(root, str(tmp_path / "other"))
    (tmp_path / "other").mkdir()
    wheels = root / ".wheels" / "mpi4py-4.0"
    (wheels / "0123456789ab").mkdir(parents=True)
    (root / ".facts").mkdir()
    _unreadable(monkeypatch, other.parent, wheels, root / ".facts")
    assert depot_cmd.gc_cmd(root, 30, dry_run=False) == 0
    out, err = capsys.readouterr()
    assert not old.exists() and other.exists()
    for d in (other.parent, wheels, root / ".facts"):
        assert err.count(f"skipped {d}: cannot read it (Permission denied)") == 1, err
    assert out.endswith("(1 removed; skipped 3 directories it could not read)\n"), out


def test_gc_reports_an_entry_it_cannot_remove_and_goes_on(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from uvslurm.commands import depot as depot_cmd

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    stuck, old = make_venv(root, str(tmp_path / "a")), make_venv(root, str(tmp_path / "b"))
    for venv in (stuck, old):
        for name in (depot.MARKER, "pyvenv.cfg", "."):
            _age(venv / name, 40)
    real = os.rename

    def rename(src: Any, dst: Any) -> None:
        if Path(src) == stuck:
            raise PermissionError(13, "Permission denied", str(src))
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    assert depot_cmd.gc_cmd(root, 30, dry_run=False) == 0
    out, err = capsys.readouterr()
    assert stuck.exists() and not old.exists()
    assert f"kept {stuck}: cannot remove it (Permission denied)" in err
    assert out.endswith("(1 removed; kept 1 it could not remove)\n"), out


def test_list_shows_a_project_it_cannot_see_and_goes_on_past_what_it_cannot_read(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from uvslurm.commands import depot as depot_cmd

    (tmp_path / "gpfs").mkdir()
    make_venv(root, str(tmp_path / "gpfs" / "proj"))
    (tmp_path / "home" / "x").mkdir(parents=True)
    make_venv(root, str(tmp_path / "home" / "proj"))
    hidden = make_venv(root, str(tmp_path / "hidden")).parent
    _unreadable(monkeypatch, hidden)
    monkeypatch.setenv("COLUMNS", "300")
    assert depot_cmd.list_cmd(root, as_json=False) == 0
    out, err = capsys.readouterr()
    assert f"skipped {hidden}: cannot read it (Permission denied)" in err
    assert "proj (not visible here)" in out and "proj (gone)" in out, out
    assert depot_cmd.list_cmd(root, as_json=True) == 0
    states = {r["project"]: r["project_state"] for r in json.loads(capsys.readouterr().out)}
    assert states == {str(tmp_path / "gpfs" / "proj"): "unseen",
                      str(tmp_path / "home" / "proj"): "gone"}  # fmt: skip


def test_rm_of_a_project_directory_it_cannot_read_says_so(
    root: Path, proj: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from uvslurm.commands import depot as depot_cmd
    from uvslurm.context import Context

    pdir = make_venv(root, proj).parent
    _unreadable(monkeypatch, pdir)
    assert depot_cmd.rm_cmd(root, pdir.name, Context(tmp_path)) == 1
    out, err = capsys.readouterr()
    assert f"skipped {pdir}: cannot read it (Permission denied)" in err
    assert out == f"could not remove all of {pdir.name} from {root} (see above)\n"
    assert pdir.exists()


@pytest.mark.parametrize("kind", ["per-node", "failing"])
def test_a_fresh_hold_keeps_a_venv_where_other_nodes_locks_are_not_seen(
    root: Path, kind: str
) -> None:
    """On a depot whose flocks do not reach across nodes (as `uvslurm doctor` or a job wrote
    down), a job on another node holds its venv by recording a use every minute: gc and rm keep
    a venv used more recently than depot.HOLD_FRESH, and remove it once the last use is older
    (the job ended). Where locks are coherent the flock alone decides."""
    venv = make_venv(root, "/p")
    (venv / depot.USED).touch()
    [v] = depot.venvs(root)
    assert depot.locks(root) == ("coherent", "")
    assert depot.holder(v) is None, "coherent: a free flock means no job holds it"
    depot.record_locks(root, kind, "a flock held on n1 does not exclude n2")
    assert depot.locks(root) == (kind, "a flock held on n1 does not exclude n2")
    why = depot.holder(v)
    assert why is not None and why.startswith("a job may still run from it on another node")
    assert f"flock on this depot is {kind}" in why
    with pytest.raises(depot.Busy) as e:
        depot.remove(v)
    assert e.value.why.startswith("a job may still run from it on another node (its last use")
    assert venv.is_dir() and [p.name for p in venv.parent.glob(".*trash*")] == []
    # the hold stopped being refreshed three beats ago: the job is gone
    t = time.time() - depot.HOLD_FRESH - 1
    os.utime(venv / depot.USED, (t, t))
    [v] = depot.venvs(root)
    assert depot.holder(v) is None
    depot.remove(v)
    assert not venv.exists()


def test_the_record_of_the_depots_locks(root: Path) -> None:
    depot.record_locks(root, "per-node", "why")
    depot.record_locks(root, "coherent", "a flock held on n1 excludes n2")
    assert depot.locks(root) == ("coherent", "a flock held on n1 excludes n2")
    # a depot holding the record is still one uvslurm made (names.py: what gc may adopt)
    assert names.is_depot_entry(depot.LOCKS)
    (root / depot.LOCKS).write_text("something else\n")
    assert depot.locks(root) == ("coherent", "")
