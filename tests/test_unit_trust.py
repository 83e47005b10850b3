"""trust.py, names.py, project.py and sources.py in-process: the trust record, the depot's
grammar, finding a project and reading the configuration layers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from uvslurm import names, paths, project, sources, trust
from uvslurm.errors import NoProject, TrustError, UvslurmError

# --- trust ---------------------------------------------------------------------------------


def test_code_values_picks_what_runs_programs() -> None:
    assert trust.code_values({}) == {}
    assert trust.code_values({"uv": "", "fingerprint": {"commands": []}}) == {}
    assert trust.code_values({"uv": "/bin/uv", "depot": "/d"}) == {"uv": "/bin/uv"}
    assert trust.code_values({"fingerprint": {"commands": ["hostname"], "env": ["X"]}}) == {
        "fingerprint.commands": ["hostname"]
    }
    assert trust.code_values({"fingerprint": ["commands"]}) == {}
    both = {"uv": "uvx", "fingerprint": {"commands": ["a"]}}
    assert trust.code_values(both) == {"uv": "uvx", "fingerprint.commands": ["a"]}


def test_digest_depends_on_project_and_values() -> None:
    d = trust.digest(Path("/p"), {"uv": "a"})
    assert len(d) == 64 and int(d, 16) >= 0
    assert d == trust.digest(Path("/p"), {"uv": "a"})
    assert d != trust.digest(Path("/q"), {"uv": "a"})
    assert d != trust.digest(Path("/p"), {"uv": "b"})
    import hashlib

    text = json.dumps({"project": "/p", "code": {"uv": "a"}}, sort_keys=True)
    assert d == hashlib.sha256(text.encode()).hexdigest()


def test_allow_records_and_revoke_forgets(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    assert trust.recorded(root) is None
    assert not trust.is_trusted(root)
    record = trust.allow(root, {"uv": "/bin/uv"})
    store = paths.state_dir() / "trust"
    assert record.parent == store
    assert record.name.endswith(".json") and len(record.name) == 32 + 5
    assert (store.stat().st_mode & 0o777) == 0o700
    assert (record.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in store.iterdir()] == [record.name]  # no temporary file left
    data = json.loads(record.read_text())
    assert data == {
        "project": str(root),
        "digest": trust.digest(root, {"uv": "/bin/uv"}),
        "code": {"uv": "/bin/uv"},
    }
    assert trust.recorded(root) == data
    assert trust.is_trusted(root)
    assert trust.is_trusted(root, {"uv": "/bin/uv"})
    assert not trust.is_trusted(root, {"uv": "/other/uv"})
    assert not trust.is_trusted(tmp_path / "other")
    # allow again: replaced
    trust.allow(root, {})
    assert trust.is_trusted(root, {})
    assert not trust.is_trusted(root, {"uv": "/bin/uv"})
    assert trust.revoke(root) is True
    assert not record.exists()
    assert trust.revoke(root) is False
    assert not trust.is_trusted(root)


def test_a_record_others_could_write_is_not_believed(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    record = trust.allow(root, {})
    record.chmod(0o666)
    assert trust.recorded(root) is None
    record.chmod(0o600)
    assert trust.recorded(root) is not None
    record.parent.chmod(0o777)
    assert trust.recorded(root) is None
    assert not trust.is_trusted(root)


def test_a_broken_or_foreign_record_is_not_believed(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    record = trust.allow(root, {})
    record.write_text("{not json")
    assert trust.recorded(root) is None
    record.write_text("[1, 2]")
    assert trust.recorded(root) is None
    record.write_text(json.dumps({"project": "/elsewhere", "digest": "x"}))
    assert trust.recorded(root) is None
    record.write_text(json.dumps({"project": str(root)}))
    assert trust.recorded(root) == {"project": str(root)}
    assert trust.is_trusted(root)
    assert not trust.is_trusted(root, {})


def test_records_are_per_project(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ra, rb = trust.allow(a, {}), trust.allow(b, {})
    assert ra != rb
    trust.revoke(a)
    assert trust.is_trusted(b) and not trust.is_trusted(a)


def test_allow_refuses_a_store_others_can_write(tmp_path: Path) -> None:
    store = paths.state_dir() / "trust"
    store.mkdir(parents=True)
    store.chmod(0o777)
    with pytest.raises(UvslurmError) as e:
        trust.allow(tmp_path, {})
    assert e.value.message == (
        f"cannot keep trust records in {store}: {store} is writable by others (mode 777)"
    )
    assert e.value.hint == "chmod go-w it"


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [".uvslurm-depot", ".facts", ".wheels", ".prefetch", "demo-0123456789", "-abcdef0123",
     "a" * 40 + "-0123456789", ".write-test-12", "x.y_z-0123456789"],
)  # fmt: skip
def test_depot_entries(name: str) -> None:
    assert names.is_depot_entry(name)


@pytest.mark.parametrize(
    "name",
    ["data", "demo-012345678", "demo-0123456789a", "a" * 41 + "-0123456789", "demo-ABCDEF0123",
     "sp ace-0123456789", ".write-tes", ".factsx", "x.write-test-1"],
)  # fmt: skip
def test_not_depot_entries(name: str) -> None:
    assert not names.is_depot_entry(name)


# --- project -------------------------------------------------------------------------------


def _project(d: Path, text: str = '[project]\nname = "p"\n') -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "pyproject.toml").write_text(text)
    return d


def test_find_project_walks_up(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    sub = root / "a" / "b"
    sub.mkdir(parents=True)
    found = project.find_project(sub)
    assert found.root == root
    assert found.pyproject == {"project": {"name": "p"}}
    assert found.lock == root / "uv.lock"


def test_find_project_explicit_looks_only_there(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    sub = root / "sub"
    sub.mkdir()
    assert project.find_project(root, explicit=True).root == root
    with pytest.raises(NoProject) as e:
        project.find_project(sub, explicit=True)
    assert e.value.message == f"no pyproject.toml in {sub}"
    assert e.value.hint == "run from inside a uv project or pass --project DIR"


def test_find_project_none(tmp_path: Path) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    with pytest.raises(NoProject) as e:
        project.find_project(d)
    assert e.value.message == (f"no pyproject.toml in {d} or the parent directories that are yours")


def test_find_project_stops_above_a_directory_others_can_write(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    shared = root / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    inner = shared / "mine"
    inner.mkdir()
    with pytest.raises(NoProject):
        project.find_project(inner)
    shared.chmod(0o755)
    assert project.find_project(inner).root == root


def test_find_project_resolves_the_start(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    link = tmp_path / "link"
    link.symlink_to(root)
    assert project.find_project(link).root == root


def test_checked_refuses_what_others_could_write_until_trusted(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    root.chmod(0o775)
    with pytest.raises(TrustError) as e:
        project.checked(root)
    assert e.value.message == (
        f"not using the project in {root}: {root} is writable by others (mode 775)"
    )
    assert e.value.hint == f"if you trust it, run `uvslurm trust {root}`"
    trust.allow(root, {})
    assert project.checked(root).root == root
    trust.revoke(root)
    root.chmod(0o755)
    (root / "pyproject.toml").chmod(0o666)
    with pytest.raises(TrustError) as e:
        project.checked(root)
    f = root / "pyproject.toml"
    assert e.value.message == (
        f"not using the project in {root}: {f} is writable by others (mode 666)"
    )


def test_checked_looks_at_the_file_not_its_parents(tmp_path: Path) -> None:
    outer = tmp_path / "open"
    outer.mkdir()
    root = _project(outer / "p")
    outer.chmod(0o777)
    assert project.checked(root).root == root


def test_tool_table(tmp_path: Path) -> None:
    p = project.Project(tmp_path, {"tool": {"uvslurm": {"depot": "/d"}}})
    assert p.tool_table == {"depot": "/d"}
    assert project.Project(tmp_path, {}).tool_table == {}
    assert project.Project(tmp_path, {"tool": {"other": 1}}).tool_table == {}
    bad = project.Project(tmp_path, {"tool": {"uvslurm": 3}})
    with pytest.raises(UvslurmError) as e:
        _ = bad.tool_table
    assert e.value.message == f"{tmp_path / 'pyproject.toml'}: [tool.uvslurm] must be a table"


def test_python_request(tmp_path: Path) -> None:
    p = project.Project(tmp_path, {"project": {"requires-python": ">=3.10"}})
    assert p.python_request() == ">=3.10"
    assert project.Project(tmp_path, {}).python_request() == ""
    assert project.Project(tmp_path, {"project": {"requires-python": 3}}).python_request() == ""
    (tmp_path / ".python-version").write_text("# pinned\n\n  3.11  \n3.12\n")
    assert p.python_request() == "3.11"
    (tmp_path / ".python-version").write_text("# only a comment\n\n")
    assert p.python_request() == ">=3.10"
    (tmp_path / ".python-version").unlink()
    (tmp_path / ".python-version").mkdir()
    assert p.python_request() == ">=3.10"


# --- sources -------------------------------------------------------------------------------


def test_read_toml(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('a = 1\n[t]\nb = "x"\n')
    assert sources.read_toml(f) == {"a": 1, "t": {"b": "x"}}
    f.write_text("[t\n")
    with pytest.raises(UvslurmError) as e:
        sources.read_toml(f)
    assert e.value.message.startswith(f"{f}: invalid TOML: ")
    assert e.value.hint == "fix the file's syntax"


def _toml_cache(f: Path) -> Path:
    return sources._cache_file(f)


def test_read_toml_keeps_the_table_by_content_and_never_misses_an_edit(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('a = 1\nf = inf\nx = -0.0\n[t]\nb = "x"\n')
    first = sources.read_toml(f)
    kept = json.loads(_toml_cache(f).read_text())
    assert kept["table"] == first and _toml_cache(f).stat().st_mode & 0o777 == 0o600
    assert sources.read_toml(f) == first == {"a": 1, "f": float("inf"), "x": -0.0, "t": {"b": "x"}}
    st = f.stat()
    f.write_text('a = 2\nf = inf\nx = -0.0\n[t]\nb = "y"\n')  # same size, same times
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert sources.read_toml(f) == {"a": 2, "f": float("inf"), "x": -0.0, "t": {"b": "y"}}
    # what the cache holds for the current bytes is what is returned (a hit parses nothing)
    doc = json.loads(_toml_cache(f).read_text())
    _toml_cache(f).write_text(json.dumps({**doc, "table": {"from": "cache"}}))
    assert sources.read_toml(f) == {"from": "cache"}


def test_read_toml_ignores_a_cache_others_could_write_or_that_is_broken(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("uv = '/usr/bin/uv'\n")
    sources.read_toml(f)
    cache = _toml_cache(f)
    doc = json.loads(cache.read_text())
    cache.write_text(json.dumps({**doc, "table": {"uv": "/tmp/evil"}}))
    cache.chmod(0o666)
    assert sources.read_toml(f) == {"uv": "/usr/bin/uv"}
    cache.chmod(0o600)
    cache.parent.chmod(0o777)
    assert sources.read_toml(f) == {"uv": "/usr/bin/uv"}
    cache.parent.chmod(0o700)
    for broken in ("{", "[]", json.dumps({**doc, "table": []})):
        cache.write_text(broken)
        assert sources.read_toml(f) == {"uv": "/usr/bin/uv"}


def test_read_toml_does_not_keep_what_json_cannot_hold(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("when = 2026-11-30T04:00:00Z\n")
    assert sources.read_toml(f)["when"].year == 2026
    assert not _toml_cache(f).exists()
    assert sources.read_toml(f)["when"].year == 2026


def test_read_toml_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.toml"
    f.write_text("a = 1\n")

    def deny(self: Path, *a: object, **k: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(UvslurmError) as e:
        sources.read_toml(f)
    assert e.value.message == f"{f}: cannot read it (Permission denied)"
    assert e.value.hint == ""


def _user_file(isolated_user: Path, text: str) -> Path:
    user = isolated_user / "config" / "uvslurm" / "config.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(text)
    return user


def test_load_layers_and_sources(isolated_user: Path) -> None:
    site = isolated_user / "site-config.toml"
    site.write_text('depot = "/site"\nimage = "tar.zst"\n[sbatch]\npartition = "cpu"\n')
    user = _user_file(isolated_user, 'depot = "/user"\nnode-local = "never"\n')
    env = {"UVSLURM_SITE_CONFIG": str(site), "UVSLURM_OFFLINE": "true"}
    pyproject = isolated_user / "proj" / "pyproject.toml"
    cfg = sources.load(
        {"node-local": "/local"}, {"image": "none"}, environ=env, pyproject=pyproject
    )
    assert cfg.settings["depot"].source == str(user)
    assert cfg.settings["sbatch.partition"].source == str(site)
    assert cfg.settings["node-local"].value == "/local"
    assert cfg.settings["node-local"].source == f"{pyproject} [tool.uvslurm]"
    assert cfg.settings["offline"].value == "true"
    assert cfg.settings["offline"].source == "environment"
    assert cfg.settings["image"].source == "command line"
    # no pyproject named: the project layer is called after pyproject.toml
    cfg = sources.load({"image": "auto"}, {}, environ=env)
    assert cfg.settings["image"].source == "pyproject.toml [tool.uvslurm]"
    # no project table: no project layer
    cfg = sources.load({}, {}, environ=env)
    assert cfg.settings["image"].source == str(site)


def test_load_reads_the_process_environment(
    isolated_user: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UVSLURM_IMAGE", "squashfs")
    site = isolated_user / "site-config.toml"
    site.write_text('depot = "/from-site"\n')
    cfg = sources.load(None, {})
    assert cfg.settings["image"].value == "squashfs"
    assert cfg.settings["depot"].source == str(site)


def test_config_files_that_others_could_write_may_not_name_programs(isolated_user: Path) -> None:
    user = _user_file(isolated_user, 'uv = "/bin/true"\n[fingerprint]\ncommands = ["id"]\n')
    assert sources.load(None, {}, environ={}).get("uv") == "/bin/true"
    user.chmod(0o666)
    with pytest.raises(TrustError) as e:
        sources.load(None, {}, environ={})
    assert e.value.message == (
        f"{user} sets uv, fingerprint.commands, which run programs, but {user} is writable by "
        "others (mode 666)"
    )
    assert e.value.hint == "make the file (and its directories) yours and not writable by others"
    # without settings that run programs, such a file is only configuration
    user.write_text('depot = "/d"\n')
    assert sources.load(None, {}, environ={}).get("depot") == "/d"


def test_site_file_may_be_roots(isolated_user: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to own a file as root")
    site = isolated_user / "site-config.toml"
    site.write_text('uv = "/bin/true"\n')
    os.chown(site, 54321, -1)
    with pytest.raises(TrustError):
        sources.load(None, {}, environ={"UVSLURM_SITE_CONFIG": str(site)})
    os.chown(site, 0, -1)
    assert sources.load(None, {}, environ={"UVSLURM_SITE_CONFIG": str(site)}).get("uv") == (
        "/bin/true"
    )


def test_project_settings_that_run_programs_need_trust(isolated_user: Path, tmp_path: Path) -> None:
    pyproject = tmp_path / "p" / "pyproject.toml"
    table = {"uv": "/bin/true", "depot": "/d"}
    with pytest.raises(TrustError) as e:
        sources.load(table, {}, environ={}, pyproject=pyproject)
    assert e.value.message == f"{pyproject} [tool.uvslurm] names programs to run (uv = '/bin/true')"
    assert e.value.hint == f"if you trust them, run `uvslurm trust {pyproject.parent}`"
    trust.allow(pyproject.parent, {"uv": "/bin/true"})
    assert sources.load(table, {}, environ={}, pyproject=pyproject).get("uv") == "/bin/true"
    # trusted for other values only: refused again
    table2 = {"uv": "/bin/true", "fingerprint": {"commands": ["x", "y"]}}
    with pytest.raises(TrustError) as e:
        sources.load(table2, {}, environ={}, pyproject=pyproject)
    assert e.value.message == (
        f"{pyproject} [tool.uvslurm] names programs to run "
        "(uv = '/bin/true'; fingerprint.commands = ['x', 'y'])"
    )
    # without a pyproject path the check is made for ./pyproject.toml
    with pytest.raises(TrustError) as e:
        sources.load({"uv": "x"}, {}, environ={})
    assert e.value.message.startswith("pyproject.toml [tool.uvslurm] names programs to run")
    assert e.value.hint == "if you trust them, run `uvslurm trust .`"


def test_digest_of_an_undecodable_path() -> None:
    root = Path(os.fsdecode(b"/p/\xff"))
    d = trust.digest(root, {"uv": "x"})
    text = json.dumps({"project": str(root), "code": {"uv": "x"}}, sort_keys=True)
    assert d == __import__("hashlib").sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def test_allow_never_writes_through_a_planted_file(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    record = trust.allow(root, {})
    target = tmp_path / "target"
    target.write_text("untouched")
    tmp = record.with_name(f".{record.name}.{os.getpid()}")
    tmp.symlink_to(target)
    with pytest.raises(FileExistsError):
        trust.allow(root, {"uv": "x"})
    assert target.read_text() == "untouched"


def test_site_and_user_files_as_another_user(
    isolated_user: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root's site file may name programs; root's file as the user's own config may not."""
    if os.geteuid() != 0:
        pytest.skip("needs root-owned files and another uid")
    site = isolated_user / "site-config.toml"
    site.write_text('uv = "/bin/true"\n')
    user = _user_file(isolated_user, 'uv = "/bin/false"\n')
    other = 54321
    for p in (isolated_user, *[user.parent, user.parent.parent]):
        os.chown(p, other, -1)
    os.chown(user, 0, -1)
    monkeypatch.setattr(os, "geteuid", lambda: other)
    env = {"UVSLURM_SITE_CONFIG": str(site)}
    with pytest.raises(TrustError) as e:
        sources.load(None, {}, environ=env)
    assert e.value.message == (
        f"{user} sets uv, which run programs, but {user} belongs to root, not to you"
    )
    user.unlink()
    assert sources.load(None, {}, environ=env).get("uv") == "/bin/true"
