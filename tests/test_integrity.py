"""The venv a job runs from is the one its uv.lock asks for, and it is whole: the key is made
of contents (never of file times), a venv is published only when every file its RECORDs list is
there at its size, a published venv that lost files is rebuilt, and a build makes the same venv
whatever UV_* variables the submitting shell exported. The prolog run for real (no Slurm)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PROLOG, UV_CACHE, lossy_uv, missing_files, prolog_env, ready

REPO = Path(__file__).resolve().parent.parent


def prolog(project: Path, depot: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PROLOG)], env=prolog_env(project, depot, **env), capture_output=True,
        text=True,
    )  # fmt: skip


def imports(venv: Path, module: str) -> bool:
    return subprocess.run([f"{venv}/bin/python", "-c", f"import {module}"]).returncode == 0


def locked_with(project: Path, tmp_path: Path, dep: str) -> Path:
    """A copy of `project` whose pyproject.toml and uv.lock also have `dep` (as on a laptop)."""
    other = tmp_path / "elsewhere"
    shutil.copytree(project, other)
    env = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE)}
    subprocess.run(["uv", "add", "-q", "--no-sync", dep], cwd=other, env=env, check=True)
    return other


def lock_hash(project: Path) -> str:
    return hashlib.sha256((project / "uv.lock").read_bytes()).hexdigest()


def checks(venv: Path) -> list[str]:
    """The files the venv's ready marker samples (paths in the venv)."""
    for line in (venv / ".uvslurm-ready").read_text().split("\n"):
        if line.startswith("check="):
            return line[len("check=") :].split("\x1f")
    return []


# --- 4: the key is made of contents ----------------------------------------------------------


@pytest.mark.parametrize("how", ["cp -p", "rsync -a"])
def test_a_lock_copied_with_an_old_mtime_gets_its_own_venv(
    project: Path, tmp_path: Path, how: str
) -> None:
    """A uv.lock that arrives older than the remembered keys (rsync -a, scp -p, cp -p, a
    login node whose clock is ahead) is still hashed: the job gets the new lock's venv."""
    depot = tmp_path / "depot"
    first = prolog(project, depot)
    assert ready(first.stderr).state == "cold", first.stderr
    assert ready(prolog(project, depot).stderr).state == "warm"
    other = locked_with(project, tmp_path, "iniconfig")
    old = (project / "uv.lock").stat().st_mtime - 3600
    for name in ("pyproject.toml", "uv.lock"):
        os.utime(other / name, (old, old))
        if how == "rsync -a" and shutil.which("rsync"):
            subprocess.run(["rsync", "-a", str(other / name), str(project / name)], check=True)
        else:
            shutil.copy2(other / name, project / name)
    assert (project / "uv.lock").stat().st_mtime < (
        Path(first.stdout.strip()).parent / ".keys"
    ).stat().st_mtime
    r = prolog(project, depot)
    assert r.returncode == 0, r.stderr
    venv = Path(r.stdout.strip())
    assert ready(r.stderr).state == "cold", r.stderr
    assert venv != Path(first.stdout.strip())
    assert imports(venv, "iniconfig"), "the job ran the previous lock's venv"
    # the venv's name carries the lock's content hash
    assert venv.name.endswith("-" + lock_hash(project)[:8])
    assert ready(prolog(project, depot).stderr).state == "warm"


def test_the_lock_the_node_sees_is_checked_against_the_submitted_one(
    project: Path, tmp_path: Path
) -> None:
    depot = tmp_path / "depot"
    submitted = lock_hash(project)
    same = prolog(project, depot, UVSLURM_LOCK_HASH=submitted)
    assert same.returncode == 0, same.stderr
    assert "warning" not in same.stderr, same.stderr
    # the lock changed between submit and the job's start: one warning line, and the venv of
    # the lock that `uv run --no-sync` will run with
    other = locked_with(project, tmp_path, "iniconfig")
    shutil.copy2(other / "pyproject.toml", project / "pyproject.toml")
    shutil.copy2(other / "uv.lock", project / "uv.lock")
    r = prolog(project, depot, UVSLURM_LOCK_HASH=submitted)
    assert r.returncode == 0, r.stderr
    warnings = [x for x in r.stderr.splitlines() if x.startswith("uvslurm: warning:")]
    assert len(warnings) == 1, r.stderr
    assert submitted[:12] in warnings[0] and lock_hash(project)[:12] in warnings[0]
    assert str(project / "uv.lock") in warnings[0]
    venv = Path(r.stdout.strip())
    assert venv.name.endswith("-" + lock_hash(project)[:8]) and imports(venv, "iniconfig")


def test_remembered_keys_hold_fingerprints_only(project: Path, tmp_path: Path) -> None:
    """What the depot remembers is fingerprint text -> fingerprint hash: nothing there depends
    on the lock or on file times."""
    depot = tmp_path / "depot"
    venv = Path(prolog(project, depot).stdout.strip())
    keys = (venv.parent / ".keys").read_text().split("\n")
    entries = [line.split("\x1e")[0] for line in keys if line]
    assert entries == [venv.name.split("-")[0]]


# --- 5: integrity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        # a new file, never the one uv linked from its cache (truncating that in place would
        # truncate the cache's copy and every venv linked to it)
        ('head -c 100 "$f" >"$f.new" && mv "$f.new" "$f"', "have the wrong size, e.g. six.py"),
        ('rm "$f" && ln -s "$f.gone" "$f"', "are missing, e.g. six.py"),
    ],
    ids=["truncated", "dangling-symlink"],
)
def test_a_truncated_or_dangling_file_is_never_published(
    project: Path, tmp_path: Path, damage: str, says: str
) -> None:
    depot = tmp_path / "depot"
    r = prolog(project, depot, UVSLURM_UV=str(lossy_uv(tmp_path, damage)))
    assert r.returncode == 75, r.stderr
    assert f"files of the new venv {says}" in r.stderr, r.stderr
    assert not list(depot.glob("*/*/.uvslurm-ready"))
    assert not list(depot.glob("*/*/")), "a build directory was left behind"


def test_the_marker_samples_files_of_every_package(project: Path, tmp_path: Path) -> None:
    venv = Path(prolog(project, tmp_path / "depot").stdout.strip())
    sample = checks(venv)
    records = {p for p in sample if p.endswith(".dist-info/RECORD")}
    # six and the project itself (installed editable): each its RECORD and one other file
    assert len(records) == len(list(venv.glob("lib/python*/site-packages/*.dist-info"))) >= 2
    assert len(sample) == 2 * len(records), sample
    for path in sample:
        assert (venv / path).is_file() and (venv / path).stat().st_size > 0, path


@pytest.mark.parametrize("victim", ["RECORD", "other"])
def test_a_depot_venv_that_lost_a_sampled_file_is_rebuilt(
    project: Path, tmp_path: Path, victim: str
) -> None:
    """A scratch purge deletes old files: the venv is no longer taken as ready; the next job
    rebuilds it under the key's lock (state repaired), with one line saying why."""
    depot = tmp_path / "depot"
    venv = Path(prolog(project, depot).stdout.strip())
    six = [p for p in checks(venv) if "/six" in p]  # six's RECORD and one file of its own
    gone = next(p for p in six if p.endswith("/RECORD") == (victim == "RECORD"))
    (venv / gone).unlink()
    r = prolog(project, depot)
    assert r.returncode == 0, r.stderr
    assert ready(r.stderr).state == "repaired", r.stderr
    why = [x for x in r.stderr.splitlines() if gone in x]
    assert len(why) == 1 and why[0].startswith("uvslurm: warning:"), r.stderr
    assert Path(r.stdout.strip()) == venv and (venv / gone).is_file()
    assert missing_files(venv) == [] and imports(venv, "six")
    assert ready(prolog(project, depot).stderr).state == "warm"


def test_a_node_local_copy_that_lost_a_sampled_file_is_placed_again(
    project: Path, tmp_path: Path
) -> None:
    depot, local = tmp_path / "depot", tmp_path / "local"
    local.mkdir()
    first = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local))
    copy = Path(first.stdout.strip())
    assert copy.is_relative_to(local), first.stderr
    gone = next(p for p in checks(copy) if "/six" in p and not p.endswith("/RECORD"))
    (copy / gone).unlink()
    r = prolog(project, depot, UVSLURM_NODE_LOCAL=str(local))
    assert r.returncode == 0, r.stderr
    assert ready(r.stderr).state == "placed", r.stderr
    assert Path(r.stdout.strip()) == copy and (copy / gone).is_file()
    assert len([x for x in r.stderr.splitlines() if gone in x]) == 1, r.stderr


def test_a_venv_without_sampled_files_in_its_marker_is_still_ready(
    project: Path, tmp_path: Path
) -> None:
    """Venvs built before markers sampled files stay warm (nothing to check)."""
    depot = tmp_path / "depot"
    venv = Path(prolog(project, depot).stdout.strip())
    marker = venv / ".uvslurm-ready"
    marker.write_text("".join(x for x in marker.read_text().splitlines(True) if "check=" not in x))
    assert ready(prolog(project, depot).stderr).state == "warm"


@pytest.mark.parametrize(
    "var", ["UV_LINK_MODE=symlink", "UV_NO_INSTALL_PROJECT=1", "UV_VENV_SEED=1", "UV_NO_DEV=1"]
)
def test_uv_variables_of_the_submitting_shell_do_not_change_the_venv(
    project: Path, tmp_path: Path, var: str
) -> None:
    """With UV_LINK_MODE=symlink the venv would be links into uv's cache (broken by a cache
    clean, yet "ready"); the others would change what the venv holds without changing its key.
    The command still gets them: they are cleared for the build's uv only."""
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text() + '\n[dependency-groups]\ndev = ["iniconfig"]\n'
    )
    subprocess.run(["uv", "lock", "-q"], cwd=project, env={**os.environ, "UV_CACHE_DIR": str(UV_CACHE)},
                   check=True)  # fmt: skip
    name, _, value = var.partition("=")
    plain = Path(prolog(project, tmp_path / "plain").stdout.strip())
    r = prolog(project, tmp_path / "depot", **{name: value})
    assert r.returncode == 0, r.stderr
    venv = Path(r.stdout.strip())
    site = next(venv.glob("lib/python*/site-packages"))
    links = [p for p in site.rglob("*") if p.is_symlink()]
    assert links == [], f"links into uv's cache: {links[:3]}"
    assert not (site / "six.py").is_symlink() and (site / "six.py").is_file()

    def dists(v: Path) -> set[str]:
        return {p.name for p in next(v.glob("lib/python*/site-packages")).glob("*.dist-info")}

    assert dists(venv) == dists(plain), "the venv holds other packages than without " + var
    assert imports(venv, "six") and imports(venv, "iniconfig")
    # the job's own commands (here a batch script's body) still see the variable
    body = subprocess.run(
        ["bash", "-c", f'. "$1" && printf %s "${{{name}-unset}}"', "job", str(PROLOG)],
        env=prolog_env(project, tmp_path / "depot", "activate", **{name: value}),
        capture_output=True, text=True,
    )  # fmt: skip
    assert body.returncode == 0 and body.stdout == value, body.stderr


def test_the_cleared_uv_variables_are_declared_once_and_documented() -> None:
    from uvslurm import prolog as prolog_mod

    text = prolog_mod.warm_text(lazy=False)  # every function as bash has it
    declared = re.findall(r"local -a _uvslurm_uvclear=\(([^)]*)\)", text)
    assert len(declared) == 1, "one declaration of the UV_* variables a build clears"
    names = declared[0].split()
    assert "UV_LINK_MODE" in names and "UV_PYTHON" not in names and "UV_CACHE_DIR" not in names
    doc = (REPO / "docs" / "reference" / "env-vars.md").read_text()
    section = doc.split("## Cleared for builds", 1)[1].split("\n## ", 1)[0]
    listed = next(p for p in section.split("\n\n") if p.startswith("`UV_LINK_MODE`"))
    assert re.findall(r"`(UV_[A-Z_]+)`", listed) == names
