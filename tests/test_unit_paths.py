"""paths.py in-process: default places, the depot's checks and marker, uv's private TMPDIR."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import pytest

from uvslurm import names, paths
from uvslurm.errors import UvslurmError


def test_site_config_file() -> None:
    assert paths.site_config_file({}) == Path("/etc/uvslurm/config.toml")
    assert paths.site_config_file({"UVSLURM_SITE_CONFIG": ""}) == Path("/etc/uvslurm/config.toml")
    assert paths.site_config_file({"UVSLURM_SITE_CONFIG": "/x/c.toml"}) == Path("/x/c.toml")


def test_user_config_and_state_follow_xdg(isolated_user: Path) -> None:
    assert paths.user_config_file() == isolated_user / "config" / "uvslurm" / "config.toml"
    assert paths.state_dir() == isolated_user / "state" / "uvslurm"


@pytest.mark.parametrize("kind", ["config", "cache", "state"])
@pytest.mark.parametrize(
    "xdg", [None, "", "relative/dir", "/abs/xdg", "/abs/trailing/", "//double//slash"]
)
@pytest.mark.parametrize("home", [None, "", "rel", "/", "/home/u", "/home/u/"])
def test_user_dirs_are_platformdirs_own(
    kind: str, xdg: str | None, home: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paths.user_dir applies platformdirs' rule without importing it: the same directory for
    every shape of XDG_*_HOME and HOME (unset, empty, relative, absolute, odd slashes)."""
    var = {"config": "XDG_CONFIG_HOME", "cache": "XDG_CACHE_HOME", "state": "XDG_STATE_HOME"}
    for name, value in ((var[kind], xdg), ("HOME", home)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    theirs = Path(getattr(platformdirs, f"user_{kind}_dir")("uvslurm"))
    assert paths.user_dir(kind) == theirs


def test_default_depot() -> None:
    assert paths.default_depot({"SCRATCH": "/scratch/me"}) == Path("/scratch/me/uvslurm")
    assert paths.default_depot({}) == Path(platformdirs.user_cache_dir("uvslurm"))
    assert paths.default_depot({"SCRATCH": ""}) == Path(platformdirs.user_cache_dir("uvslurm"))
    with pytest.raises(UvslurmError) as e:
        paths.default_depot({"SCRATCH": "rel/dir"})
    assert e.value.message == (
        "SCRATCH='rel/dir' is not an absolute path (the default depot is $SCRATCH/uvslurm)"
    )
    assert e.value.hint == "set SCRATCH to an absolute path, or set `depot`"


def test_ensure_depot_creates_a_private_marked_depot(tmp_path: Path) -> None:
    depot = tmp_path / "a" / "b" / "depot"
    paths.ensure_depot(depot)
    assert depot.is_dir()
    assert (depot.stat().st_mode & 0o777) == 0o700
    marker = depot / names.DEPOT_MARKER
    assert marker.read_text() == "uvslurm depot\n"
    assert (marker.stat().st_mode & 0o777) == 0o644
    # again: nothing changes, nothing fails
    paths.ensure_depot(depot)
    assert sorted(os.listdir(depot)) == [names.DEPOT_MARKER]


def test_ensure_depot_refuses_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UvslurmError) as e:
        paths.ensure_depot(Path("rel"))
    assert e.value.message == "the depot rel is not an absolute path"
    assert e.value.hint == "set `depot` to one"
    assert not (tmp_path / "rel").exists()


def test_ensure_depot_adopts_an_old_depot_and_refuses_a_foreign_directory(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir(mode=0o700)
    (old / "demo-0123456789").mkdir()
    (old / ".facts").mkdir()
    paths.ensure_depot(old)
    assert (old / names.DEPOT_MARKER).is_file()
    foreign = tmp_path / "scratch"
    foreign.mkdir(mode=0o700)
    (foreign / "data").mkdir()
    (foreign / "results.csv").write_text("")
    with pytest.raises(UvslurmError) as e:
        paths.ensure_depot(foreign)
    assert e.value.message == (
        f"{foreign} is not a uvslurm depot (it holds 'data', which uvslurm did not make, and no "
        ".uvslurm-depot marker)"
    )
    assert e.value.hint == f"set `depot` to a directory of its own, e.g. {foreign / 'uvslurm'}"
    assert not (foreign / names.DEPOT_MARKER).exists()


def test_a_marked_depot_may_hold_anything(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    (d / names.DEPOT_MARKER).write_text("")
    (d / "data").mkdir()
    assert paths.depot_problem(d) is None
    paths.check_depot(d)


def test_a_marker_that_is_not_a_file_does_not_count(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    (d / names.DEPOT_MARKER).mkdir()
    (d / "data").mkdir()
    problem = paths.depot_problem(d)
    assert problem is not None and "it holds 'data'" in problem.message


def test_depot_others_can_write_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    d.chmod(0o777)
    problem = paths.depot_problem(d)
    assert problem is not None
    assert problem.message == f"the depot is not safe to use: {d} is writable by others (mode 777)"
    assert problem.hint == (
        "set `depot` (or UVSLURM_DEPOT) to a directory of your own that others cannot write, "
        "e.g. $SCRATCH/uvslurm"
    )
    with pytest.raises(UvslurmError) as e:
        paths.ensure_depot(d)
    assert e.value is not problem and e.value.message == problem.message
    assert not (d / names.DEPOT_MARKER).exists()


def test_symlinked_depot_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(UvslurmError, match="is a symlink"):
        paths.ensure_depot(link)


def test_check_depot_without_adopting(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    paths.check_depot(d, adopt=False)
    assert not (d / names.DEPOT_MARKER).exists()
    paths.check_depot(d)
    assert (d / names.DEPOT_MARKER).is_file()


def test_marker_is_not_written_through_a_symlink(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    target = tmp_path / "target"
    (d / names.DEPOT_MARKER).symlink_to(target)
    with pytest.raises(OSError):
        paths.check_depot(d)
    assert not target.exists()


def _open_tmp(tmp_path: Path, mode: int) -> Path:
    base = tmp_path / "tmp"
    base.mkdir()
    base.chmod(mode)
    return base


def test_private_tmpdir_in_a_shared_tmp(tmp_path: Path) -> None:
    base = _open_tmp(tmp_path, 0o1777)
    got = paths.private_tmpdir({"TMPDIR": str(base)})
    mine = base / f"uvslurm-{os.geteuid()}"
    assert got == str(mine / "tmp")
    for d in (mine, mine / "tmp"):
        assert (d.stat().st_mode & 0o7777) == 0o700
    # again: the same, made already
    assert paths.private_tmpdir({"TMPDIR": str(base)}) == str(mine / "tmp")


@pytest.mark.parametrize("mode", [0o777, 0o755 | 0o1000, 0o775, 0o757])
def test_private_tmpdir_when_tmpdir_is_not_private(tmp_path: Path, mode: int) -> None:
    base = _open_tmp(tmp_path, mode)
    assert paths.private_tmpdir({"TMPDIR": str(base)}) == str(
        base / f"uvslurm-{os.geteuid()}" / "tmp"
    )


def test_private_tmpdir_not_needed_when_tmpdir_is_private(tmp_path: Path) -> None:
    base = _open_tmp(tmp_path, 0o700)
    assert paths.private_tmpdir({"TMPDIR": str(base)}) is None
    base.chmod(0o755)
    assert paths.private_tmpdir({"TMPDIR": str(base)}) is None
    assert list(base.iterdir()) == []


def test_private_tmpdir_of_a_file_or_missing_dir(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    f.chmod(0o700)
    # a file of ours is no TMPDIR: a directory cannot be made under it
    assert paths.private_tmpdir({"TMPDIR": str(f)}) is None
    assert paths.private_tmpdir({"TMPDIR": str(tmp_path / "missing")}) is None


def test_private_tmpdir_defaults_to_tmp() -> None:
    got = paths.private_tmpdir({})
    assert got == f"/tmp/uvslurm-{os.geteuid()}/tmp"
    assert paths.private_tmpdir({"TMPDIR": ""}) == got


def test_private_tmpdir_refuses_a_planted_directory(tmp_path: Path) -> None:
    base = _open_tmp(tmp_path, 0o1777)
    planted = base / f"uvslurm-{os.geteuid()}"
    planted.mkdir()
    planted.chmod(0o777)
    assert paths.private_tmpdir({"TMPDIR": str(base)}) is None
    assert not (planted / "tmp").exists()
    planted.chmod(0o700)
    (planted / "tmp").mkdir()
    (planted / "tmp").chmod(0o777)
    assert paths.private_tmpdir({"TMPDIR": str(base)}) is None


def test_private_tmpdir_when_it_cannot_be_made(tmp_path: Path) -> None:
    base = _open_tmp(tmp_path, 0o1777)
    (base / f"uvslurm-{os.geteuid()}").write_text("a file in the way")
    assert paths.private_tmpdir({"TMPDIR": str(base)}) is None


def test_ensure_depot_made_by_someone_else_at_the_same_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    depot = tmp_path / "depot"
    depot.mkdir(mode=0o700)
    # it did not exist when looked for, and did when made: a job made it meanwhile
    monkeypatch.setattr(os.path, "lexists", lambda p: False)
    paths.ensure_depot(depot)
    assert (depot / names.DEPOT_MARKER).is_file()
