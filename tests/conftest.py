"""Shared fixtures: isolated user dirs, real uv projects, the real dev cluster."""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEV_CLUSTER = REPO / "scripts" / "dev-cluster"
# one uv cache for every test session on this machine: real downloads, once
UV_CACHE = Path(os.environ.get("UVSLURM_TEST_UV_CACHE", "/var/tmp/uvslurm-test-uv-cache"))

# prints its arguments and where it runs from, so tests can compare them verbatim
TRAIN_PY = """\
import json, os, sys
data = {"argv": sys.argv[1:], "prefix": sys.prefix, "node": os.environ.get("SLURMD_NODENAME")}
out = os.environ.get("UVSLURM_TEST_OUT")
if out:
    with open(out, "w") as f:
        json.dump(data, f)
print("TRAIN " + json.dumps(data))
sys.exit(int(os.environ.get("UVSLURM_TEST_EXIT", "0")))
"""

HOSTILE_NAMES = [
    "sp ace",
    "q'uote",
    'd"quote',
    "$(touch pwned)",
    "`touch pwned`",
    "uni ünï 日本",
    "semi;colon&amp",
]


def _joined_prolog() -> Path:
    """The prolog as job scripts hold it (its sections in src/uvslurm/resources/prolog/,
    joined), in a file of this test process's that tests run with bash or source."""
    from uvslurm import prolog

    d = Path(tempfile.mkdtemp(prefix="uvslurm-test-prolog-"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    d.chmod(0o755)
    path = d / "prolog.sh"
    path.write_text("#!/bin/bash\n" + prolog.text())
    return path


PROLOG = _joined_prolog()
# the prolog's last line before the command, as users and tools grep it
READY = re.compile(r"^uvslurm: ready \((warm|placed|cold|repaired)\) in (\d+) ms: (.*)$", re.M)


@dataclass(frozen=True)
class Ready:
    state: str
    ms: int
    venv: Path


def ready_lines(text: str) -> list[Ready]:
    """Every ready line of a prolog's stderr or a job log, in order."""
    return [Ready(s, int(ms), Path(v)) for s, ms, v in READY.findall(text)]


def ready(text: str) -> Ready:
    """The last ready line (the one before the command); fails the test when there is none."""
    found = ready_lines(text)
    assert found, f"no ready line in:\n{text[-2000:]}"
    return found[-1]


def logging_uv(tmp_path: Path, delay: str = "0", slow: str = "--version") -> tuple[Path, Path]:
    """(a uv that logs its arguments, one line per call, then runs the real one, after `delay`
    seconds when its first argument is `slow`; the log)"""
    real = shutil.which("uv")
    assert real
    log = tmp_path / "uv-calls.txt"
    uv = tmp_path / "logbin" / "uv"
    uv.parent.mkdir()
    uv.write_text(f'#!/bin/bash\necho "$*" >>{log}\n'
                  f'[ "$1" = {slow} ] && sleep {delay}\nexec {real} "$@"\n')  # fmt: skip
    uv.chmod(0o755)
    return uv, log


def prolog_env(project: Path, depot: Path, mode: str = "prepare", **over: str) -> dict[str, str]:
    """The environment the prolog runs with, as `uvslurm prepare` sets it: every input named
    (node-local off, Python 3.11 unless `over` says otherwise), on top of this process's."""
    from uvslurm.nodeenv import project_id

    base = {
        "UVSLURM_PROJECT": str(project),
        "UVSLURM_PROJECT_ID": project_id(str(project)),
        "UVSLURM_DEPOT": str(depot),
        "UVSLURM_MODE": mode,
        "UVSLURM_NODE_LOCAL": "never",
        "UVSLURM_PYTHON": "3.11",
    }
    return {**os.environ, **base, **over}


@pytest.fixture(autouse=True)
def isolated_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Config, state and depot of a fresh user: no test reads or writes the real ones."""
    home = tmp_path / "user"
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
        ("SCRATCH", "scratch"),
    ):
        (home / sub).mkdir(parents=True)
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("UV_CACHE_DIR", str(UV_CACHE))
    # an empty site file: a UVSLURM_SITE_CONFIG that names no file is an error
    (home / "site-config.toml").touch()
    monkeypatch.setenv("UVSLURM_SITE_CONFIG", str(home / "site-config.toml"))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.delenv("UVSLURM_DEPOT", raising=False)
    monkeypatch.delenv("UVSLURM_UV", raising=False)
    monkeypatch.delenv("UVSLURM_NODE_LOCAL", raising=False)
    return home


def make_project(path: Path, deps: tuple[str, ...] = ()) -> Path:
    """A real uv app whose train.py reports its argv and venv, with a real uv.lock."""
    path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE)}
    run = lambda *a: subprocess.run(a, cwd=path, env=env, check=True, capture_output=True)  # noqa: E731
    run("uv", "init", "-q", "--app", "--name", "demo", "--python", "3.11", "--no-workspace", ".")
    for f in ("main.py", "hello.py"):
        (path / f).unlink(missing_ok=True)
    (path / "train.py").write_text(TRAIN_PY)
    if deps:
        run("uv", "add", "-q", "--no-sync", *deps)
    run("uv", "lock", "-q")
    shutil.rmtree(path / ".venv", ignore_errors=True)
    return path


LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")


@pytest.fixture
def modulepath(tmp_path: Path) -> Path:
    """A MODULEPATH of Lmod modules for tests: mpich 1.0 and 2.0 (one family, so loading one
    swaps the other) and a Tcl module, tclmod/1.0. Skips where Lmod is not installed."""
    if not LMOD_INIT.exists():
        pytest.skip("Lmod is not installed")
    mp = tmp_path / "modulefiles"
    for v in ("1.0", "2.0"):
        (mp / "mpich").mkdir(parents=True, exist_ok=True)
        (mp / "mpich" / f"{v}.lua").write_text(f'family("mpi")\nsetenv("MPICH_VERSION", "{v}")\n')
    (mp / "tclmod").mkdir()
    (mp / "tclmod" / "1.0").write_text("#%Module1.0\nsetenv TCLMOD_LOADED 1\n")
    return mp


@pytest.fixture(scope="session")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("template") / "proj", ("six",))


@pytest.fixture
def project(tmp_path: Path, project_template: Path) -> Path:
    """A fresh copy of a locked project (locking once per session keeps tests fast)."""
    dst = tmp_path / "proj"
    shutil.copytree(project_template, dst, ignore=shutil.ignore_patterns(".git", ".venv"))
    return dst


def uvslurm(
    *args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI in a subprocess, as a user would."""
    p = subprocess.run(
        [sys.executable, "-m", "uvslurm", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"uvslurm {args} exited {p.returncode}:\n{p.stderr}")
    return p


@pytest.fixture
def fake_sbatch(tmp_path: Path) -> Path:
    """An sbatch that records a submission (fast unit tests only). Asked for its options
    (--help, --usage, --version) it says nothing: uvslurm then falls back to simple-slurm's."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    calls = tmp_path / "sbatch-calls"
    sb = bindir / "sbatch"
    sb.write_text(
        "#!/bin/sh\ncase $1 in --help|--usage|--version) exit 0;; esac\n"
        f"echo \"$@\" >> '{calls}'\necho 4242\n"
    )
    sb.chmod(sb.stat().st_mode | stat.S_IEXEC)
    return bindir


def missing_files(venv: Path) -> list[str]:
    """Files that a dist-info RECORD of the venv lists but that are not there: what `uv sync
    --check` does not notice after a kill mid-install."""
    missing = []
    site = next(venv.glob("lib/python*/site-packages"))
    for record in site.glob("*.dist-info/RECORD"):
        for line in record.read_text().splitlines():
            path = line.rsplit(",", 2)[0]
            if path and not (site / path).exists():
                missing.append(path)
    return missing


def log_text(path: Path) -> str:
    """A job log as it is now ("" before the job has written it)."""
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for(pred: Callable[[], object], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_for_text(log: Path, text: str, timeout: float) -> None:
    """Wait until a running job's log holds `text`."""
    try:
        wait_for(lambda: text in log_text(log), timeout, f"{text!r} in {log}")
    except AssertionError as e:
        raise AssertionError(f"{e}; it holds:\n{log_text(log)[-2000:]}") from None


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if "__pycache__" not in p.parts}


# a flock(2) that always fails, as on Lustre mounted without -o flock: preloaded into a bindfs
# that forwards locks, it makes every flock through that mount fail (uv's raw syscalls too)
FAILFLOCK_C = "#include <errno.h>\nint flock(int fd, int op) { (void)fd; (void)op; errno = ENOLCK; return -1; }\n"
# what the dev cluster offers (scripts/dev-cluster, DEPOT_FS): shared depots whose file locks
# exclude across nodes, work per node only, or fail
DEPOT_FS = ("coherent", "pernode", "noflock")


@pytest.fixture(scope="session")
def failflock_so(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("needs a C compiler (scripts/dev-cluster up installs gcc)")
    d = tmp_path_factory.mktemp("failflock")
    (d / "failflock.c").write_text(FAILFLOCK_C)
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(d / "failflock.so"),
                    str(d / "failflock.c")], check=True)  # fmt: skip
    return d / "failflock.so"


def _unmount(path: Path) -> None:
    for argv in (["umount", str(path)], ["fusermount3", "-u", str(path)],
                 ["fusermount", "-u", str(path)], ["umount", "-l", str(path)]):  # fmt: skip
        if shutil.which(argv[0]) and subprocess.run(argv, capture_output=True).returncode == 0:
            return


@pytest.fixture
def fs_view(tmp_path: Path, failflock_so: Path) -> Iterator[Callable[[str], Path]]:
    """`fs_view(kind)`: a new FUSE view (bindfs) of one shared directory, tmp_path/"shared", as
    another node sees it. "pernode": flocks through it exclude only each other (BeeGFS's
    default, Lustre -o localflock, NFS -o local_lock=all: two views model two nodes); "noflock":
    every flock through it fails with ENOLCK (Lustre without -o flock)."""
    if not shutil.which("bindfs") or not os.access("/dev/fuse", os.R_OK | os.W_OK):
        pytest.skip("needs bindfs and /dev/fuse (scripts/dev-cluster up installs bindfs)")
    shared = tmp_path / "shared"
    shared.mkdir()
    mounts: list[Path] = []

    def view(kind: str) -> Path:
        mnt = tmp_path / f"view-{len(mounts)}-{kind}"
        mnt.mkdir()
        argv, env = ["bindfs", str(shared), str(mnt)], dict(os.environ)
        if kind == "noflock":
            argv[1:1] = ["--multithreaded", "--enable-lock-forwarding"]
            env["LD_PRELOAD"] = str(failflock_so)
        elif kind != "pernode":
            raise ValueError(kind)
        subprocess.run(argv, env=env, check=True, capture_output=True)
        mounts.append(mnt)
        return mnt

    yield view
    for mnt in mounts:
        _unmount(mnt)


@dataclass
class Cluster:
    env: dict[str, str]

    def run(self, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), env={**os.environ, **self.env}, cwd=cwd, capture_output=True, text=True
        )


def _cluster_env() -> dict[str, str] | None:
    if not DEV_CLUSTER.exists():
        return None
    st = subprocess.run(["bash", str(DEV_CLUSTER), "status"], capture_output=True, text=True)
    if st.returncode != 0:
        return None
    envfile = subprocess.run(
        ["bash", str(DEV_CLUSTER), "envfile"], capture_output=True, text=True
    ).stdout.strip()
    dump = subprocess.run(
        [
            "bash",
            "-c",
            f'source "{envfile}" >/dev/null 2>&1; python3 -c "import json,os; print(json.dumps(dict(os.environ)))"',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    full = json.loads(dump)
    keep = ("SLURM_CONF", "MODULEPATH", "PATH", "LMOD_CMD", "MODULESHOME", "LMOD_DIR", "BASH_ENV",
            "LMOD_PKG", "LMOD_ROOT", "LMOD_VERSION", "LMOD_SETTARG_FULL_SUPPORT", "MANPATH")  # fmt: skip
    env = {k: v for k, v in full.items() if k in keep or k.startswith("BASH_FUNC_")}
    return env


@pytest.fixture(scope="session")
def cluster_env() -> Iterator[dict[str, str]]:
    env = _cluster_env()
    if env is None:
        msg = "the dev cluster is not up (run: scripts/dev-cluster up)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + "; CI must run the real-cluster tests")
        pytest.skip(msg)
    yield env


@pytest.fixture
def cluster(cluster_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Cluster:
    for k, v in cluster_env.items():
        monkeypatch.setenv(k, v)
    return Cluster(cluster_env)


@pytest.fixture
def dev_depot(cluster: Cluster) -> Iterator[Callable[[str], Path]]:
    """`dev_depot(kind)`: a depot path (not created) in a fresh private directory on the dev
    cluster's shared filesystem of that kind (scripts/dev-cluster, DEPOT_FS): "coherent",
    "pernode" or "noflock". Removed after the test."""
    lab = Path(cluster.env["SLURM_CONF"]).parent.parent
    made: list[Path] = []

    def depot(kind: str) -> Path:
        live = lab / "run" / "depot-fs"
        if kind not in (live.read_text().split() if live.exists() else []):
            msg = (
                f"the dev cluster offers no {kind} depot filesystem (DEPOT_FS, scripts/dev-cluster)"
            )
            if os.environ.get("CI") == "true":
                pytest.fail(msg)
            pytest.skip(msg)
        d = Path(tempfile.mkdtemp(dir=lab / "depots" / kind, prefix="test-"))
        made.append(d)
        return d / "uvslurm"

    yield depot
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


_SKIPPED_IN_CI: list[str] = []


# the files whose tests take minutes (real builds of compiled packages), scheduled first: with
# `--dist loadfile` a worker takes a whole file, and one that started last would run on alone
# for its minutes after the other worker finished everything else
LONG_FIRST = ("test_rebuild.py", "test_api_submitit.py", "test_locks.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: the order within a file and among the rest stays


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "never_in_ci(why): the test can never run on the CI machine (a skip there is expected)",
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "never_in_ci" not in report.keywords:
        _SKIPPED_IN_CI.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI=true every skipped test fails the run (a missing tool, a cluster that is not
    up): CI must prove the real thing. A test that can never run there says so with
    @pytest.mark.never_in_ci("why")."""
    if os.environ.get("CI") == "true" and _SKIPPED_IN_CI:
        print(f"\nCI: {len(_SKIPPED_IN_CI)} tests were skipped: {_SKIPPED_IN_CI[:8]}")
        session.exitstatus = 1


def lossy_uv(tmp_path: Path, damage: str) -> Path:
    """A uv whose `uv sync` reports success after damaging six.py in the venv it made."""
    real = shutil.which("uv")
    uv = tmp_path / "lossy-uv"
    uv.write_text(
        "#!/bin/bash\n"
        'if [ "$1" = sync ]; then\n'
        f'  {real} "$@" || exit\n'
        '  f=$(echo "$UV_PROJECT_ENVIRONMENT"/lib/python*/site-packages/six.py)\n'
        f"  {damage}\n"
        "  exit 0\n"
        "fi\n"
        f'exec {real} "$@"\n'
    )
    uv.chmod(0o755)
    return uv


# the dev cluster's "parallel filesystem" (scripts/latencyfs.c), built and mounted by tests
@pytest.fixture(scope="session")
def latencyfs_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True,
                           text=True) if shutil.which("pkg-config") else None  # fmt: skip
    if not cc or flags is None or flags.returncode != 0 or not os.access("/dev/fuse", os.W_OK):
        pytest.skip("needs gcc, pkg-config, libfuse3-dev and /dev/fuse (scripts/dev-cluster up)")
    out = tmp_path_factory.mktemp("latencyfs") / "latencyfs"
    subprocess.run([cc, "-O2", "-Wall", "-Werror", "-o", str(out), str(REPO / "scripts" / "latencyfs.c"), *flags.stdout.split()],
                   check=True)  # fmt: skip
    return out


def latencyfs_stats(mnt: Path) -> dict[str, int]:
    text = (mnt / ".latencyfs-stats").read_text()
    return {k: int(v) for k, v in (line.split() for line in text.splitlines())}


@pytest.fixture
def latencyfs(latencyfs_bin: Path) -> Iterator[Callable[[Path, float], Path]]:
    """`latencyfs(source, ms)`: a new mount of `source` (next to it) that adds `ms` to each
    metadata operation."""
    mounts: list[Path] = []

    def mount(source: Path, ms: float) -> Path:
        mnt = source.parent / f"mnt-{len(mounts)}"
        mnt.mkdir()
        subprocess.run([str(latencyfs_bin), "--latency-us", str(int(ms * 1000)), str(source),
                        str(mnt)], check=True)  # fmt: skip
        mounts.append(mnt)
        return mnt

    yield mount
    for mnt in mounts:
        _unmount(mnt)
