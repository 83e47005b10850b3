"""rebuild.py in-process: locating locked sources, where nodes read them, downloading them
(from file:// URLs: no network), and the prolog's encoding."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from uvslurm import rebuild
from uvslurm.errors import UvslurmError
from uvslurm.rebuild import FS, RS, Locked


def test_normalize() -> None:
    assert rebuild.normalize("Foo_Bar.baz--x") == "foo-bar-baz-x"
    assert rebuild.normalize("mpi4py") == "mpi4py"
    assert rebuild.normalize("A__.-B") == "a-b"


LOCK = {
    "package": [
        {
            "name": "mpi4py",
            "version": "4.0.0",
            "source": {"registry": "https://pypi.org/simple"},
            "sdist": {"url": "https://files/mpi4py-4.0.0.tar.gz", "hash": "sha256:abc123"},
        },
        {
            "name": "no_sdist",
            "version": "1.0",
            "source": {"registry": "https://pypi.org/simple"},
            "wheels": [{"url": "x"}],
        },
        {
            "name": "local-sdist",
            "version": "0.1",
            "source": {"path": "dist/local-0.1.tar.gz"},
            "sdist": {"hash": "sha256:def"},
        },
        {"name": "localdir", "version": "0.2", "source": {"directory": "../libs/d"}},
        {"name": "editme", "version": "0.3", "source": {"editable": "pkgs/e"}},
        {"name": "fromgit", "version": "0.4", "source": {"git": "https://g/x.git"}},
        {"name": "nosource", "version": "0.5"},
        {"name": "noversion", "source": {"registry": "r"}, "sdist": {"url": "u/nv.tar.gz"}},
    ]
}


def test_locate_each_kind(tmp_path: Path) -> None:
    got = rebuild.locate(LOCK, ["MPI4PY", "Local_Sdist", "localdir", "editme"], tmp_path)
    assert got == [
        Locked("mpi4py", "4.0.0", "registry", "https://files/mpi4py-4.0.0.tar.gz", "abc123"),
        Locked("local-sdist", "0.1", "archive", str(tmp_path / "dist/local-0.1.tar.gz"), "def"),
        Locked("localdir", "0.2", "directory", str(tmp_path.parent / "libs" / "d")),
        Locked("editme", "0.3", "directory", str(tmp_path / "pkgs" / "e")),
    ]
    assert rebuild.locate(LOCK, ["noversion"], tmp_path) == [
        Locked("noversion", "", "registry", "u/nv.tar.gz", "")
    ]
    assert rebuild.locate(LOCK, [], tmp_path) == []
    assert rebuild.locate({}, [], tmp_path) == []


def test_locate_errors(tmp_path: Path) -> None:
    with pytest.raises(UvslurmError) as e:
        rebuild.locate(LOCK, ["numpy"], tmp_path)
    assert e.value.line() == (
        "rebuild: 'numpy' is not in uv.lock; add it to the project or fix the name"
    )
    with pytest.raises(UvslurmError) as e:
        rebuild.locate(LOCK, ["no-sdist"], tmp_path)
    assert e.value.line() == (
        "rebuild: no_sdist 1.0 has no source distribution on its index; "
        "it cannot be built from source; remove it from rebuild"
    )
    with pytest.raises(UvslurmError) as e:
        rebuild.locate(LOCK, ["fromgit"], tmp_path)
    assert e.value.line() == (
        "rebuild: fromgit comes from a git source; "
        "uvslurm rebuilds packages from an index, a local sdist or a local directory"
    )
    with pytest.raises(UvslurmError) as e:
        rebuild.locate(LOCK, ["nosource"], tmp_path)
    assert e.value.message == "rebuild: nosource comes from a unknown source"
    # a package without a name matches no request
    with pytest.raises(UvslurmError):
        rebuild.locate({"package": [{"version": "1"}]}, ["xxxx"], tmp_path)


def test_local_sources(tmp_path: Path) -> None:
    locked = [
        Locked("a", "1", "registry", "https://h/p/a-1.tar.gz#sha256=ff", "0123456789abcdef0123"),
        Locked("b", "2", "registry", "https://h/b-2.tar.gz", ""),
        Locked("c", "3", "archive", "/src/c.tar.gz"),
        Locked("d", "4", "directory", "/src/d"),
    ]
    assert rebuild.local_sources(locked, tmp_path) == [
        ("a", "1", "archive", str(tmp_path / ".sources" / "0123456789abcdef-a-1.tar.gz")),
        ("b", "2", "archive", str(tmp_path / ".sources" / "nohash-b-2.tar.gz")),
        ("c", "3", "archive", "/src/c.tar.gz"),
        ("d", "4", "directory", "/src/d"),
    ]


def _sdist(tmp_path: Path, data: bytes = b"sdist bytes") -> tuple[Path, str]:
    f = tmp_path / "pkg-1.0.tar.gz"
    f.write_bytes(data)
    return f, hashlib.sha256(data).hexdigest()


def test_download_fetches_and_checks(tmp_path: Path) -> None:
    src, digest = _sdist(tmp_path)
    depot = tmp_path / "depot"
    item = Locked("pkg", "1.0", "registry", src.as_uri(), digest)
    rebuild.download([item], depot)
    dest = depot / ".sources" / f"{digest[:16]}-pkg-1.0.tar.gz"
    assert dest.read_bytes() == b"sdist bytes"
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
    # there already: not fetched again
    src.unlink()
    rebuild.download([item], depot)
    assert dest.read_bytes() == b"sdist bytes"


def test_download_without_hash(tmp_path: Path) -> None:
    src, _ = _sdist(tmp_path)
    depot = tmp_path / "depot"
    rebuild.download([Locked("pkg", "1.0", "registry", src.as_uri(), "")], depot)
    assert (depot / ".sources" / "nohash-pkg-1.0.tar.gz").read_bytes() == b"sdist bytes"


def test_download_refuses_a_mismatch(tmp_path: Path) -> None:
    src, _ = _sdist(tmp_path)
    depot = tmp_path / "depot"
    item = Locked("pkg", "1.0", "registry", src.as_uri(), "0" * 64)
    with pytest.raises(UvslurmError) as e:
        rebuild.download([item], depot)
    assert e.value.message == "rebuild: the downloaded sdist of pkg does not match uv.lock"
    assert list((depot / ".sources").iterdir()) == []


def test_download_failure(tmp_path: Path) -> None:
    depot = tmp_path / "depot"
    item = Locked("pkg", "1.0", "registry", (tmp_path / "missing.tar.gz").as_uri(), "ab")
    with pytest.raises(UvslurmError) as e:
        rebuild.download([item], depot)
    assert e.value.message.startswith("rebuild: cannot download the sdist of pkg: ")
    assert isinstance(e.value.__cause__, OSError)
    assert list((depot / ".sources").iterdir()) == []


def test_download_checks_local_sources(tmp_path: Path) -> None:
    there = tmp_path / "c.tar.gz"
    there.write_bytes(b"")
    rebuild.download(
        [Locked("c", "1", "archive", str(there)), Locked("d", "1", "directory", str(tmp_path))],
        tmp_path / "depot",
    )
    assert not (tmp_path / "depot").exists()
    missing = tmp_path / "gone"
    with pytest.raises(UvslurmError) as e:
        rebuild.download([Locked("d", "1", "directory", str(missing))], tmp_path / "depot")
    assert e.value.message == f"rebuild: the source of d is missing: {missing}"


def test_sha256_of_a_large_file(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 5)
    f = tmp_path / "big"
    f.write_bytes(data)
    assert rebuild._sha256(f) == hashlib.sha256(data).hexdigest()


def test_encode() -> None:
    assert rebuild.encode([]) == ""
    assert rebuild.encode([("a", "1", "archive", "/p/a"), ("b", "2", "directory", "/q")]) == (
        f"a{FS}1{FS}archive{FS}/p/a{RS}b{FS}2{FS}directory{FS}/q{RS}"
    )
    for bad in (f"/p{FS}x", f"/p{RS}x"):
        with pytest.raises(UvslurmError) as e:
            rebuild.encode([("a", "1", "archive", bad)])
        assert e.value.message == f"rebuild: unusable characters in {bad!r}"
    with pytest.raises(UvslurmError):
        rebuild.encode([(f"a{RS}", "1", "archive", "/p")])


def test_local_sources_file_names() -> None:
    depot = Path("/d")
    locked = [
        Locked("a", "1", "registry", "https://h/a-1.tar.gz#sha256=ff#x", "ab"),
        Locked("b", "2", "registry", "b-2.tar.gz", "cd"),
    ]
    assert [p for *_, p in rebuild.local_sources(locked, depot)] == [
        "/d/.sources/ab-a-1.tar.gz",
        "/d/.sources/cd-b-2.tar.gz",
    ]


def test_download_goes_on_after_what_is_there(tmp_path: Path) -> None:
    local = tmp_path / "local.tar.gz"
    local.write_bytes(b"")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, da = _sdist(tmp_path / "a", b"a")
    b, db = _sdist(tmp_path / "b", b"b")
    depot = tmp_path / "depot"
    first = [
        Locked("loc", "1", "archive", str(local)),
        Locked("a", "1", "registry", a.as_uri(), da),
    ]
    rebuild.download(first, depot)
    # a local source, then one already downloaded, then a new one: the new one is fetched too
    rebuild.download([*first, Locked("b", "1", "registry", b.as_uri(), db)], depot)
    assert (depot / ".sources" / f"{db[:16]}-pkg-1.0.tar.gz").read_bytes() == b"b"
    assert len(list((depot / ".sources").iterdir())) == 2


def test_download_writes_next_to_its_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partial file is hidden and in <depot>/.sources (renamed into place, whatever
    TMPDIR is); nothing is left of it."""
    import tempfile
    import urllib.request

    seen: list[list[str]] = []
    dest_dir = tmp_path / "depot" / ".sources"

    class Response:
        def __enter__(self) -> Response:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def read(self, n: int = -1) -> bytes:
            seen.append(sorted(os.listdir(dest_dir)))
            return b"" if len(seen) > 1 else b"data"

    monkeypatch.setattr(urllib.request, "urlopen", lambda url: Response())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    digest = hashlib.sha256(b"data").hexdigest()
    rebuild.download(
        [Locked("p", "1", "registry", "https://h/p-1.tar.gz", digest)], dest_dir.parent
    )
    assert len(seen[0]) == 1 and seen[0][0].startswith(".download-")
    assert os.listdir(dest_dir) == [f"{digest[:16]}-p-1.tar.gz"]
