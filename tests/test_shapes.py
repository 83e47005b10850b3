"""The shapes of uv projects users have (issue 11, items 1-4 and 9): workspaces from a member
and from the root, PEP 723 scripts, virtual projects with dependency groups, --python, lock
checks as `uv run` makes them, and the prefetch for nodes of another platform. Real uv
everywhere; real jobs on the dev cluster where marked."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import UV_CACHE, Cluster, make_project, ready, uvslurm, wait_for_text
from uvslurm import nodeenv, uvtool
from uvslurm.config import merge
from uvslurm.errors import UsageError, UvslurmError
from uvslurm.project import find_project, script_metadata

slurm = pytest.mark.slurm

SCRIPT = """\
# /// script
# requires-python = ">=3.11"
# dependencies = ["six"]
# ///
import sys

import six

print("PEP723-OK", six.__version__, sys.prefix, sys.argv[1:])
"""


def _uv(*args: str, cwd: Path) -> None:
    env = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE)}
    subprocess.run(["uv", *args], cwd=cwd, env=env, check=True, capture_output=True)


def make_workspace(ws: Path) -> Path:
    """A workspace root `ws` with members alpha and beta, alpha depending on beta."""
    (ws / "packages").mkdir(parents=True)
    (ws / "pyproject.toml").write_text(
        '[project]\nname = "ws"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = []\n\n[tool.uv.workspace]\nmembers = ["packages/*"]\n'
    )
    (ws / ".python-version").write_text("3.11\n")
    for m in ("alpha", "beta"):
        _uv("init", "-q", "--lib", "--vcs", "none", "--no-pin-python", "--name", m,
            "--python", "3.11", f"packages/{m}", cwd=ws)  # fmt: skip
    (ws / "packages/beta/src/beta/__init__.py").write_text('def hello():\n    return "beta"\n')
    (ws / "packages/alpha/src/alpha/__init__.py").write_text(
        'import beta\n\n\ndef hello():\n    return "alpha+" + beta.hello()\n'
    )
    alpha = ws / "packages/alpha/pyproject.toml"
    text = alpha.read_text().replace("dependencies = []", 'dependencies = ["beta"]')
    alpha.write_text(text + "\n[tool.uv.sources]\nbeta = { workspace = true }\n")
    _uv("lock", "-q", cwd=ws)
    return ws


def submit_wait(cwd: Path, log: Path, *args: str) -> str:
    r = uvslurm("submit", "--wait", "-o", str(log), "-e", str(log), *args, cwd=cwd)
    text = log.read_text() if log.exists() else ""
    assert r.returncode == 0, r.stderr + text
    return text


def last_manifest() -> dict[str, object]:
    """The manifest of this test's latest job (each test has its own state directory)."""
    from uvslurm import manifest

    latest = max(manifest.jobs_dir().glob("*.json"), key=lambda f: f.stat().st_mtime)
    doc: dict[str, object] = json.loads(latest.read_text())
    return doc


# --- 1: workspaces ------------------------------------------------------------------------------


def test_a_member_is_found_at_its_workspace_root_and_selected(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    member = find_project(ws / "packages/alpha/src")
    assert (member.root, member.lock, member.member) == (ws, ws / "uv.lock", "alpha")
    assert member.selection(()) == ("--package", "alpha")
    assert member.selection(("--extra", "x")) == ("--package", "alpha", "--extra", "x")
    # the user's choice wins, as with uv run
    assert member.selection(("--package", "beta")) == ("--package", "beta")
    assert member.selection(("--all-packages",)) == ("--all-packages",)
    assert member.python_request() == "3.11"  # the root's .python-version
    (ws / "packages/alpha/.python-version").write_text("3.12\n")
    assert find_project(ws / "packages/alpha").python_request() == "3.12"
    root = find_project(ws)
    assert (root.root, root.member) == (ws, "")
    assert root.selection(()) == ()
    # a member's name reaches the prolog's word-split flags: only a package name does
    alpha = ws / "packages/alpha/pyproject.toml"
    alpha.write_text(alpha.read_text().replace('name = "alpha"', 'name = "a *"'))
    with pytest.raises(UvslurmError) as e:
        find_project(ws / "packages/alpha").selection(())
    assert e.value.message == f"{ws}/packages/alpha/pyproject.toml: 'a *' is not a package name"


def test_workspace_globs_and_excludes_are_uvs(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    for d in ("packages/a", "packages/b", "packages/a/nested", "tools/t"):
        (ws / d).mkdir(parents=True, exist_ok=True)
        (ws / d / "pyproject.toml").write_text(f'[project]\nname = "{Path(d).name}"\n')
    (ws / "pyproject.toml").write_text(
        '[tool.uv.workspace]\nmembers = ["packages/*"]\nexclude = ["packages/b"]\n'
    )
    assert find_project(ws / "packages/a").member == "a"
    # an excluded or unmatched directory is a project of its own; `*` stays in one directory
    for d in ("packages/b", "tools/t", "packages/a/nested"):
        p = find_project(ws / d)
        assert (p.root, p.member) == (ws / d, ""), d


def test_dry_run_of_a_member_names_the_root_and_the_member(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    r = uvslurm("submit", "--dry-run", "--", "python", "-V", cwd=ws / "packages/alpha")
    assert r.returncode == 0, r.stderr
    assert f"UVSLURM_PROJECT={ws}\n" in r.stdout
    assert "UVSLURM_SYNC_ARGS='--package alpha'\n" in r.stdout
    assert "UVSLURM_PYTHON=3.11\n" in r.stdout  # the workspace's .python-version
    r = uvslurm("submit", "--dry-run", "--all-packages", "--python", "3.12", "--", "python", "-V",
                cwd=ws)  # fmt: skip
    assert "UVSLURM_SYNC_ARGS=--all-packages\n" in r.stdout
    assert "UVSLURM_PYTHON=3.12\n" in r.stdout
    # a package the workspace does not have: uv's usage error, before anything is written
    r = uvslurm("submit", "--dry-run", "--package", "gamma", "--", "python", "-V", cwd=ws)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr.strip().splitlines() == [
        f"uvslurm: error: --package gamma: no such package in {ws} (its packages: alpha, beta, "
        "ws); name a workspace member, or drop --package"
    ]
    assert uvslurm("submit", "--dry-run", "--package", "Beta", "--", "true", cwd=ws).returncode == 0


@slurm
def test_workspace_job_from_the_member_and_from_the_root(cluster: Cluster, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    code = 'import alpha, beta; print("WS-OK", alpha.hello())'
    member = submit_wait(ws / "packages/alpha", tmp_path / "m.log", "--", "python", "-c", code)
    assert "WS-OK alpha+beta" in member
    doc = last_manifest()
    assert (doc["project"], doc["workspace"], doc["member"]) == (
        str(ws / "packages/alpha"),
        str(ws),
        "packages/alpha",
    )
    # resubmitted as it was: the member's lock and pyproject.toml are the workspace root's
    (tmp_path / "m.log").unlink()
    r = uvslurm("resubmit", str(doc["job_id"]), "--json", cwd=ws)
    assert r.returncode == 0 and json.loads(r.stdout)["not_reproduced"] == [], r.stdout + r.stderr
    wait_for_text(tmp_path / "m.log", "WS-OK alpha+beta", 120)
    root = submit_wait(ws, tmp_path / "r.log", "--package", "alpha", "--", "python", "-c", code)
    assert "WS-OK alpha+beta" in root
    # one key: the workspace's lock and the same selection, whichever directory submitted
    assert ready(member).venv.name == ready(root).venv.name
    assert ready(root).state in ("warm", "placed")
    assert not list(ws.rglob(".venv")) and sorted(ws.rglob("uv.lock")) == [ws / "uv.lock"]
    # from the root without --package, as `uv run` there: the root project, without the members
    log = tmp_path / "o.log"
    r = uvslurm("submit", "--wait", "-o", str(log), "-e", str(log), "--", "python", "-c", code,
                cwd=ws)  # fmt: skip
    assert r.returncode == 1 and "No module named 'alpha'" in log.read_text()


# --- 2: PEP 723 scripts -------------------------------------------------------------------------


def test_script_metadata_is_read_as_uv_reads_it(tmp_path: Path) -> None:
    meta = script_metadata(SCRIPT, tmp_path / "x.py")
    assert meta == {"requires-python": ">=3.11", "dependencies": ["six"]}
    assert script_metadata("# /// scripts\n# x = 1\n# ///\n", tmp_path / "x.py") is None
    assert script_metadata("print(1)\n", tmp_path / "x.py") is None


def test_a_script_takes_no_uv_selection_and_is_locked_with_uv_lock_script(tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    (d / "job.py").write_text(SCRIPT)
    r = uvslurm("submit", "--dry-run", "--extra", "x", "job.py", cwd=d)
    assert r.returncode == 2 and "PEP 723 script" in r.stderr, r.stderr
    r = uvslurm("submit", "--dry-run", "--locked", "job.py", cwd=d)
    assert r.returncode == 1
    assert f"no job.py.lock beside {d / 'job.py'}; run `uv lock --script job.py`" in r.stderr
    _uv("lock", "-q", "--script", "job.py", cwd=d)
    r = uvslurm("submit", "--dry-run", "--locked", "job.py", "a b", cwd=d)
    assert r.returncode == 0, r.stderr
    assert f"UVSLURM_SCRIPT={d / 'job.py'}\n" in r.stdout
    assert f"UVSLURM_PROJECT={d / 'job.py'}\n" in r.stdout
    assert f"# What:  runs `uv run --script {d / 'job.py'} 'a b'` in the script's venv" in r.stdout
    (d / "job.py").write_text(SCRIPT.replace('["six"]', '["six", "idna"]'))
    r = uvslurm("submit", "--dry-run", "--locked", "job.py", cwd=d)
    assert r.returncode == 1 and "job.py.lock beside" in r.stderr and "out of date" in r.stderr


@slurm
def test_pep723_script_job_builds_once_in_the_depot(cluster: Cluster, tmp_path: Path) -> None:
    d = tmp_path / "s p'$(touch pwned)"  # every path in the job script is quoted
    d.mkdir()
    (d / "my job.py").write_text(SCRIPT)
    first = submit_wait(d, tmp_path / "1.log", "my job.py", "a b", "$(touch pwned)")
    assert (d / "my job.py.lock").is_file(), "locked with uv lock --script"
    r1 = ready(first)
    assert r1.state == "cold"
    assert f"PEP723-OK 1.17.0 {r1.venv} ['a b', '$(touch pwned)']" in first
    depot = tmp_path / "user/scratch/uvslurm"
    assert (depot / nodeenv.project_id(str(d / "my job.py"))).is_dir()
    # the interpreter in the fingerprint is the one uv finds from the script's directory
    (marker,) = (depot / nodeenv.project_id(str(d / "my job.py"))).glob("*/.uvslurm-ready")
    assert "\npython=cpython-3." in marker.read_text(), marker.read_text()
    doc = last_manifest()
    assert doc["project"] == str(d / "my job.py") and doc["workspace"] == str(d)
    (tmp_path / "1.log").unlink()
    r = uvslurm("resubmit", str(doc["job_id"]), "--json", cwd=d)
    assert r.returncode == 0 and json.loads(r.stdout)["not_reproduced"] == [], r.stdout + r.stderr
    wait_for_text(tmp_path / "1.log", "PEP723-OK 1.17.0", 120)
    second = submit_wait(d, tmp_path / "2.log", "my job.py")
    assert ready(second).state in ("warm", "placed")
    assert "built " not in second
    assert sorted(p.name for p in d.iterdir()) == ["my job.py", "my job.py.lock"]
    assert not list(tmp_path.rglob("pwned"))


# --- 3: virtual projects, groups, --python ------------------------------------------------------


def make_virtual(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "pyproject.toml").write_text('[dependency-groups]\ndev = ["six"]\ntools = ["idna"]\n')
    (path / ".python-version").write_text("3.11\n")
    _uv("lock", "-q", cwd=path)
    return path


def test_selection_flags_in_uvs_spelling() -> None:
    assert nodeenv.sync_args(
        ["e"], True, ["g"], True, packages=["p"], only_groups=["o"], no_groups=["n"],
        all_packages=True, all_groups=True, no_default_groups=True,
    ) == ("--package", "p", "--extra", "e", "--group", "g", "--only-group", "o",
          "--no-group", "n", "--all-packages", "--all-extras", "--all-groups", "--no-dev",
          "--no-default-groups")  # fmt: skip
    with pytest.raises(UsageError) as e:
        nodeenv.sync_args(only_groups=["a b"])
    assert e.value.message == "--only-group: invalid name 'a b'"


def _interpreters() -> list[str]:
    """Two interpreters of different versions that jobs on this machine can run."""
    found: dict[str, str] = {}
    for exe in ["/usr/bin/python3.11", *sorted(map(str, Path("/root/.pyenv/versions").glob(
            "3.1[1-9]*/bin/python3")))]:  # fmt: skip
        if os.access(exe, os.X_OK):
            v = subprocess.run([exe, "-c", "import sys; print(sys.version.split()[0])"],
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
            found.setdefault(v.rsplit(".", 1)[0], exe)
    return list(found.values())[:2]


@slurm
def test_virtual_project_with_groups_and_python(cluster: Cluster, tmp_path: Path) -> None:
    proj = make_virtual(tmp_path / "virt")
    code = ("import importlib.util as u, sys; print('HAS', bool(u.find_spec('six')), "
            "bool(u.find_spec('idna')), sys.version_info[:2])")  # fmt: skip
    default = submit_wait(proj, tmp_path / "d.log", "--", "python", "-c", code)
    assert "HAS True False" in default, default  # the default group: dev
    tools = submit_wait(
        proj, tmp_path / "t.log", "--only-group", "tools", "--", "python", "-c", code
    )
    assert "HAS False True" in tools, tools
    assert ready(tools).venv.name != ready(default).venv.name
    pythons = _interpreters()
    if len(pythons) < 2:
        pytest.skip("this machine has one usable Python version")
    shown = []
    for i, py in enumerate(pythons):
        text = submit_wait(proj, tmp_path / f"p{i}.log", "--python", py, "--", "python", "-c", code)
        shown.append((text.split("HAS True False ", 1)[1].splitlines()[0], ready(text).venv.name))
        # uv run is told the interpreter too: no "incompatible environment" against .python-version
        assert "incompatible" not in text, text
    assert shown[0][0] != shown[1][0], "each job ran the interpreter asked for"
    assert shown[0][1] != shown[1][1], "the interpreter is part of the key"


# --- 4: lock semantics --------------------------------------------------------------------------


def test_locked_and_frozen_together_are_refused_everywhere(project: Path) -> None:
    for cmd in (["submit", "--dry-run", "train.py"], ["prepare"], ["srun", "--", "true"]):
        r = uvslurm(cmd[0], "--locked", "--frozen", *cmd[1:], cwd=project)
        assert r.returncode == 2, r.stderr
        assert "--locked and --frozen cannot be used together" in r.stderr


def test_dry_run_locked_refuses_a_missing_or_stale_lock(project: Path) -> None:
    assert uvslurm("submit", "--dry-run", "--locked", "train.py", cwd=project).returncode == 0
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace('"six', '"idna", "six'))
    r = uvslurm("submit", "--dry-run", "--locked", "train.py", cwd=project)
    assert r.returncode == 1 and "out of date" in r.stderr and r.stdout == "", r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    (project / "uv.lock").unlink()
    r = uvslurm("submit", "--dry-run", "--locked", "train.py", cwd=project)
    assert r.returncode == 1 and f"no uv.lock in {project}" in r.stderr
    assert not (project / "uv.lock").exists(), "a dry run writes nothing"


def test_prepare_relocks_a_stale_lock_or_refuses_it_with_locked(project: Path) -> None:
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace('"six', '"idna", "six'))
    r = uvslurm("prepare", "--locked", cwd=project)
    assert r.returncode == 1 and "out of date" in r.stderr
    assert "idna" not in (project / "uv.lock").read_text()
    r = uvslurm("prepare", cwd=project)
    assert r.returncode == 0, r.stderr
    assert 'name = "idna"' in (project / "uv.lock").read_text()
    venv = Path(r.stdout.strip().splitlines()[-1])
    assert list(venv.glob("lib/python*/site-packages/idna")), "the new dependency is installed"


# --- 9: other platforms -------------------------------------------------------------------------


def test_foreign_platforms() -> None:
    assert uvtool.foreign_platforms({"x86_64"}, "x86_64", ()) == []
    assert uvtool.foreign_platforms({"x86_64", "aarch64"}, "x86_64", ()) == [
        "aarch64-unknown-linux-gnu"
    ]
    assert uvtool.foreign_platforms({"arm64", "ppc64le"}, "aarch64", ()) == [
        "powerpc64le-unknown-linux-gnu"
    ]
    assert nodeenv.platforms(merge([("f", {"platforms": ["aarch64-manylinux_2_28"]})])) == (
        "aarch64-manylinux_2_28",
    )
    with pytest.raises(UsageError):
        nodeenv.platforms(merge([("f", {"platforms": ["x86_64 $(x)"]})]))
    # the setting says what Slurm cannot (glibc), and wins
    assert uvtool.foreign_platforms({"aarch64"}, "x86_64", ("x86_64-manylinux_2_17",)) == [
        "x86_64-manylinux_2_17"
    ]


FAKE_SCONTROL = """#!/bin/bash
# the dev cluster's scontrol, but its nodes say they are aarch64 machines
if [ "$1 $2 $3" = "--oneliner show node" ]; then
  "{real}" "$@" | sed 's/Arch=[^ ]*/Arch=aarch64/'
else
  exec "{real}" "$@"
fi
"""


@slurm
def test_submit_fills_the_cache_for_aarch64_nodes(cluster: Cluster, tmp_path: Path) -> None:
    proj = make_project(tmp_path / "arm", ("markupsafe",))
    real = shutil.which("scontrol", path=cluster.env["PATH"])
    assert real
    fake = tmp_path / "bin" / "scontrol"
    fake.parent.mkdir()
    fake.write_text(FAKE_SCONTROL.replace("{real}", real))
    fake.chmod(0o755)
    cache = tmp_path / "fresh-cache"  # only what submit fetched
    env = {"UV_CACHE_DIR": str(cache), "PATH": f"{fake.parent}:{cluster.env['PATH']}"}
    log = tmp_path / "j.log"
    r = uvslurm("submit", "--wait", "-o", str(log), "-e", str(log), "--", "python", "-c",
                "import markupsafe", cwd=proj, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr + log.read_text()
    copy = re.search(r"^script\s+(\S+)$", r.stderr, re.M)
    assert copy, r.stderr
    job_script = Path(copy[1]).read_text()
    assert "UVSLURM_PLATFORMS=aarch64-unknown-linux-gnu\n" in job_script
    reqs = tmp_path / "req.txt"
    uv_env = {**os.environ, "UV_CACHE_DIR": str(cache)}
    subprocess.run(["uv", "export", "-q", "--frozen", "--no-emit-project", "-o", str(reqs)],
                   cwd=proj, env=uv_env, check=True)  # fmt: skip
    target = tmp_path / "arm-target"
    p = subprocess.run(
        ["uv", "pip", "install", "--offline", "--python-platform", "aarch64-unknown-linux-gnu",
         "--python", sys.executable, "--target", str(target), "-r", str(reqs)],
        env=uv_env, capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert list(target.glob("markupsafe/_speedups.*aarch64*.so")), "aarch64 wheels, from the cache"
    # and what the node runs: uv sync of the lock, offline, for that platform
    p = subprocess.run(
        ["uv", "sync", "-q", "--offline", "--frozen", "--python-platform",
         "aarch64-unknown-linux-gnu"],
        cwd=proj, env={**uv_env, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "arm-venv")},
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr


def test_platform_prefetch_is_stamped_while_the_cache_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = make_project(tmp_path / "arm", ("markupsafe",))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "fresh-cache"))
    project, depot, lock = find_project(proj), tmp_path / "depot", (proj / "uv.lock").read_bytes()
    uv = shutil.which("uv")
    assert uv
    calls: list[list[str]] = []
    real_run = uvtool.proc.run

    def run(argv: list[str], **kw: object) -> str:
        calls.append(argv)
        return real_run(argv, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(uvtool.proc, "run", run)
    fetch = lambda: uvtool.prefetch_platform(  # noqa: E731
        uv, project, (), depot, (), lock, "aarch64-unknown-linux-gnu", python="3.11"
    )
    fetch()
    assert [a[1:3] for a in calls] == [["export", "--frozen"], ["pip", "install"]]
    fetch()
    assert len(calls) == 2, "the stamp holds: nothing ran"
    subprocess.run([uv, "cache", "clean", "-q", "markupsafe"], check=True)
    fetch()
    assert len(calls) == 4, "the cache lost what the stamp records: fetched again"
    assert [len(p.name) for p in (depot / ".prefetch").iterdir()] == [24], "the stamp alone"


NODES = """\
NodeName=a1 Arch=aarch64 CoresPerSocket=72 OS=Linux 5.14.0 #1 SMP Partitions=gh200,all State=IDLE
NodeName=x1 Arch=x86_64 CoresPerSocket=16 OS=Linux 6.1.0 #1 SMP Partitions=cpu,all State=IDLE
NodeName=new Arch=(null) CoresPerSocket=1 OS=(null) Partitions=gh200 State=UNKNOWN
"""
PARTITIONS = """\
PartitionName=cpu AllowGroups=ALL Default=YES Nodes=x1
PartitionName=gh200 AllowGroups=ALL Default=NO Nodes=a1,new
PartitionName=all AllowGroups=ALL Default=NO Nodes=a1,x1
"""


def test_node_arches_of_the_partitions_a_job_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    from uvslurm import proc, slurm

    answers = {"node": NODES, "partition": PARTITIONS}
    monkeypatch.setattr(proc, "run", lambda argv, **kw: answers[argv[-1]])
    assert slurm.node_arches(["gh200"]) == {"aarch64"}
    assert slurm.node_arches(["cpu", "gh200"]) == {"aarch64", "x86_64"}
    assert slurm.node_arches(["all"]) == {"aarch64", "x86_64"}
    assert slurm.node_arches([]) == {"x86_64"}  # the default partition

    def fails(argv: list[str], **kw: object) -> str:
        raise proc.CommandFailed(argv, 1, "slurm_load_node error")

    monkeypatch.setattr(proc, "run", fails)
    assert slurm.node_arches(["gh200"]) == set()


def test_a_py_target_need_not_be_utf8_to_be_read_for_metadata(tmp_path: Path) -> None:
    from uvslurm import pipeline

    (tmp_path / "old.py").write_bytes(b"# -*- coding: latin-1 -*-\n# caf\xe9\nprint(1)\n")
    target = pipeline.resolve_target(pipeline.Request(target="old.py"), tmp_path)
    assert target.inline is None and target.command == (str(tmp_path / "old.py"),)
    (tmp_path / "new.py").write_bytes(SCRIPT.encode() + b"# caf\xe9\n")
    target = pipeline.resolve_target(pipeline.Request(target="new.py"), tmp_path)
    assert target.inline == {"requires-python": ">=3.11", "dependencies": ["six"]}


def test_a_script_others_could_change_is_refused_like_such_a_project(tmp_path: Path) -> None:
    d = tmp_path / "shared"
    d.mkdir()
    (d / "job.py").write_text(SCRIPT)
    d.chmod(0o777)  # another user could swap job.py.lock, or the script's [tool.uvslurm]
    r = uvslurm("submit", "--dry-run", "job.py", cwd=d)
    assert r.returncode == 1 and r.stdout == ""
    assert f"not using the script in {d}: {d} is writable by others" in r.stderr, r.stderr
    assert f"run `uvslurm trust {d}`" in r.stderr
    d.chmod(0o755)
    assert uvslurm("submit", "--dry-run", "job.py", cwd=d).returncode == 0
