"""uvtool.py in-process: the prefetch into uv's shared cache and its stamp, which is believed
only while the cache still holds what the prefetch put there (uv replaced by a stand-in that
lays out a venv as `uv sync --link-mode symlink` does: each file a link into the cache)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from uvslurm import proc, uvtool
from uvslurm.errors import UvslurmError
from uvslurm.project import Project

LOCK = b'version = 1\n[[package]]\nname = "six"\nversion = "1.17.0"\n'


@dataclass
class FakeUv:
    """`uv sync` into UV_PROJECT_ENVIRONMENT, linking each package's files from `cache`."""

    cache: Path
    packages: tuple[str, ...] = ("six-1.17.0", "demo-0.1.0")
    syncs: list[Sequence[str]] = field(default_factory=list)
    fail: bool = False

    venvs: list[Path] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, **_: object) -> str:
        assert env is not None and "--link-mode" in argv
        self.syncs.append(argv)
        self.venvs.append(Path(env["UV_PROJECT_ENVIRONMENT"]))
        if self.fail:
            raise proc.CommandFailed(argv, 2, "error: Failed to fetch: `six`\n")
        site = Path(env["UV_PROJECT_ENVIRONMENT"], "lib", "python3.11", "site-packages")
        for pkg in self.packages:
            entry = self.cache / "archive-v0" / pkg / f"{pkg}.dist-info"
            entry.mkdir(parents=True, exist_ok=True)
            (entry / "METADATA").write_text(f"Name: {pkg}\n")
            info = site / f"{pkg}.dist-info"
            info.mkdir(parents=True)
            (info / "METADATA").symlink_to(entry / "METADATA")
            (info / "RECORD").write_text("")  # written, not linked
        return ""


@pytest.fixture
def uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeUv:
    fake = FakeUv(tmp_path / "uv-cache")
    monkeypatch.setattr(proc, "run", fake.run)
    return fake


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    return Project(root, {})


def _prefetch(project: Project, depot: Path) -> None:
    uvtool.prefetch("/usr/bin/uv", project, ["--no-dev"], depot, [], LOCK)


def _stamps(depot: Path) -> list[Path]:
    return sorted((depot / ".prefetch").iterdir())


def test_the_stamp_skips_the_prefetch_while_the_cache_holds_what_it_fetched(
    uv: FakeUv, project: Project, tmp_path: Path
) -> None:
    depot = tmp_path / "depot"
    _prefetch(project, depot)
    _prefetch(project, depot)
    assert len(uv.syncs) == 1
    [stamp] = _stamps(depot)
    fields = stamp.read_text().split("\0")
    assert fields[0] == uvtool.STAMP_HEADER
    assert sorted(fields[1:]) == sorted(
        str(uv.cache / "archive-v0" / p / f"{p}.dist-info" / "METADATA") for p in uv.packages
    )


def test_a_cleaned_cache_is_fetched_again(uv: FakeUv, project: Project, tmp_path: Path) -> None:
    """`uv cache clean` empties the cache; the stamp of the last prefetch is still there: the
    offline build on the node would fail on the gap."""
    depot = tmp_path / "depot"
    _prefetch(project, depot)
    shutil.rmtree(uv.cache / "archive-v0")
    _prefetch(project, depot)
    assert len(uv.syncs) == 2
    _prefetch(project, depot)
    assert len(uv.syncs) == 2, "fetched again although the cache holds it"


def test_a_cache_cleaned_of_one_package_is_fetched_again(
    uv: FakeUv, project: Project, tmp_path: Path
) -> None:
    """`uv cache clean six` or `uv cache prune --ci` remove some packages only."""
    depot = tmp_path / "depot"
    _prefetch(project, depot)
    shutil.rmtree(uv.cache / "archive-v0" / "six-1.17.0")
    _prefetch(project, depot)
    assert len(uv.syncs) == 2


def test_a_stamp_of_an_older_uvslurm_is_not_believed(
    uv: FakeUv, project: Project, tmp_path: Path
) -> None:
    """Older stamps are empty files: they say nothing of the cache, so the prefetch runs once
    more and writes one that does."""
    depot = tmp_path / "depot"
    _prefetch(project, depot)
    [stamp] = _stamps(depot)
    stamp.write_text("")
    _prefetch(project, depot)
    assert len(uv.syncs) == 2
    assert stamp.read_text().startswith(uvtool.STAMP_HEADER + "\0")


def test_a_failed_prefetch_leaves_no_stamp(uv: FakeUv, project: Project, tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    uv.fail = True
    with pytest.raises(UvslurmError) as e:
        _prefetch(project, depot)
    assert e.value.message == "uv could not fetch what the job needs: error: Failed to fetch: `six`"
    assert _stamps(depot) == [], "no stamp, no leftover of the throwaway venv"
    uv.fail = False
    _prefetch(project, depot)
    assert len(uv.syncs) == 2 and len(_stamps(depot)) == 1


@pytest.mark.parametrize("runtime", [True, False])
def test_the_throwaway_venv_is_on_this_machine_not_in_the_depot(
    uv: FakeUv, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: bool
) -> None:
    """Its thousands of links would each be a metadata round trip on a parallel filesystem:
    it goes to $XDG_RUNTIME_DIR when that is the user's alone, else to $TMPDIR; in the depot
    only the stamp, and the throwaway is gone afterwards."""
    run, tmp = tmp_path / "run", tmp_path / "tmp"
    run.mkdir(mode=0o700)
    tmp.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run) if runtime else "")
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # (tempfile caches its choice)
    depot = tmp_path / "depot"
    _prefetch(project, depot)
    [venv] = uv.venvs
    assert venv.parent.parent == (run if runtime else tmp), venv
    assert venv.parent.name.startswith("uvslurm-prefetch-"), venv
    assert not venv.parent.exists(), "the throwaway is removed"
    assert [len(p.name) for p in _stamps(depot)] == [24], "the stamp alone"


def test_a_stamp_that_cannot_be_put_in_place_leaves_nothing(
    uv: FakeUv, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    depot = tmp_path / "depot"

    def no_rename(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(uvtool.os, "replace", no_rename)
    with pytest.raises(OSError):
        _prefetch(project, depot)
    assert _stamps(depot) == [], "no partial stamp left in the depot"


def test_a_runtime_dir_others_can_write_into_is_not_used(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o777)
    assert uvtool.paths.throwaway_parent({"XDG_RUNTIME_DIR": str(run)}) is None
    run.chmod(0o700)
    assert uvtool.paths.throwaway_parent({"XDG_RUNTIME_DIR": str(run)}) == str(run)
    assert uvtool.paths.throwaway_parent({"XDG_RUNTIME_DIR": "run"}) is None
    assert uvtool.paths.throwaway_parent({}) is None


def test_stamp_holds(tmp_path: Path) -> None:
    present = tmp_path / "METADATA"
    present.write_text("x")
    stamp = tmp_path / "stamp"
    assert not uvtool.stamp_holds(stamp), "no stamp"
    for text, holds in [
        (uvtool.stamp_text([]), True),  # a lock of nothing from the cache
        (uvtool.stamp_text([str(present)]), True),
        (uvtool.stamp_text([str(present), str(tmp_path / "gone")]), False),
        ("", False),
        (f"uvslurm prefetch stamp 0\0{present}", False),
        (uvtool.STAMP_HEADER[:-2], False),  # cut short
    ]:
        stamp.write_text(text)
        assert uvtool.stamp_holds(stamp) == holds, text


def test_cache_files_are_the_links_of_each_distributions_metadata(tmp_path: Path) -> None:
    cache, venv = tmp_path / "cache", tmp_path / "venv"
    site = venv / "lib" / "python3.12" / "site-packages"
    for name in ("a-1.dist-info", "b-2.dist-info", "c-3.dist-info"):
        (site / name).mkdir(parents=True)
        (cache / name).mkdir(parents=True)
        (cache / name / "METADATA").write_text("")
    (site / "a-1.dist-info" / "METADATA").symlink_to(cache / "a-1.dist-info" / "METADATA")
    # a relative link is resolved against its directory
    rel = os.path.relpath(cache / "b-2.dist-info" / "METADATA", site / "b-2.dist-info")
    (site / "b-2.dist-info" / "METADATA").symlink_to(rel)
    # a copied METADATA (not from the cache): nothing to check
    (site / "c-3.dist-info" / "METADATA").write_text("")
    (site / "mod.py").symlink_to(cache / "a-1.dist-info" / "METADATA")
    assert uvtool.cache_files(venv) == [
        str(cache / "a-1.dist-info" / "METADATA"),
        str(cache / "b-2.dist-info" / "METADATA"),
    ]
    assert uvtool.cache_files(tmp_path / "none") == []
