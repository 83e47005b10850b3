"""Two real users on one node: a shared, world-writable node-local directory and per-user depots.

The users (uvs-victim, uvs-attacker) are created here with useradd and removed afterwards. Each
submits real jobs through sbatch as itself (runuser, no root in the job), with its own HOME,
$SCRATCH (hence depot), XDG dirs and uv cache. The shared node-local directory is a sticky
1777 directory like /tmp, given to the jobs as `node-local` (the dev cluster's per-job TMPDIR
is private to each job, so it would prove nothing here).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import uvslurm as uvslurm_pkg
from conftest import prolog_env, ready
from uvslurm.nodeenv import prolog_argv, prolog_file

VICTIM, ATTACKER = "uvs-victim", "uvs-attacker"
NETWORK_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "UV_INDEX",
                "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INSECURE_HOST")  # fmt: skip


@dataclass
class User:
    name: str
    uid: int
    home: Path
    env: dict[str, str]

    @property
    def depot(self) -> Path:
        return self.home / "scratch" / "uvslurm"

    def run(
        self, *argv: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """ARGV as this user, with exactly this user's environment (nothing of root's) and the
        usual umask 022 (sbatch passes it on to the job)."""
        assigns = [f"{k}={v}" for k, v in {**self.env, **(env or {})}.items()]
        return subprocess.run(
            ["runuser", "-u", self.name, "--", "env", "-i", *assigns, *argv],
            cwd=cwd, capture_output=True, text=True, timeout=timeout, umask=0o022,
        )  # fmt: skip

    def submit(self, project: Path, log: Path, node_local: str, *args: str) -> str:
        """`uvslurm submit --wait` as this user; the job log's text (the job must succeed)."""
        r = self.run(
            "uvslurm", "submit", "--wait", "-o", str(log), "-e", str(log), *args, "train.py",
            cwd=project, env={"UVSLURM_NODE_LOCAL": node_local},
        )  # fmt: skip
        text = log.read_text() if log.exists() else ""
        assert r.returncode == 0, f"{self.name}'s job failed ({r.returncode}):\n{r.stderr}\n{text}"
        return text

    def venv_key(self, project: Path) -> str:
        """The name of the node-local copy a job of this user on PROJECT will use,
        <project id>-<key> (what an attacker could work out)."""
        r = self.run("uvslurm", "fingerprint", "--json", cwd=project)
        assert r.returncode == 0, r.stderr
        venv = Path(json.loads(r.stdout)["venv"])
        return f"{venv.parent.name}-{venv.name}"


def ready_venv(log_text: str) -> tuple[str, Path]:
    last = ready(log_text)
    return last.state, last.venv


def program_prefix(log_text: str) -> Path:
    """sys.prefix as train.py saw it: the venv the program really ran from."""
    line = next(x for x in log_text.splitlines() if x.startswith("TRAIN "))
    return Path(json.loads(line[len("TRAIN ") :])["prefix"])


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, str]]:
    """Everything observable about ROOT and what is under it, without following links."""
    out = {}
    paths = [root]
    if root.is_dir() and not root.is_symlink():
        paths += sorted(root.rglob("*"))
    for p in paths:
        st = p.lstat()
        link = os.readlink(p) if p.is_symlink() else ""
        out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, link)
    return out


def _sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True)


def _ensure_user(name: str, home: Path) -> int:
    """Create NAME (home HOME, not created by useradd), or reuse it if an earlier run left it."""
    if _sh("id", "-u", name).returncode == 0:
        subprocess.run(["usermod", "--home", str(home), name], check=True, capture_output=True)
    else:
        group = ["-g", name] if _sh("getent", "group", name).returncode == 0 else ["--user-group"]
        subprocess.run(
            ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/bash",
             *group, name],
            check=True, capture_output=True,
        )  # fmt: skip
    return int(_sh("id", "-u", name).stdout)


def _python_for(user: str) -> str | None:
    """An interpreter USER may run, of this interpreter's version (for our site-packages)."""
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable)]
    candidates += [f"{d}/{minor}" for d in ("/usr/local/bin", "/usr/bin", "/bin")]
    for c in candidates:
        if os.path.exists(c) and _sh("runuser", "-u", user, "--", c, "-c", "").returncode == 0:
            return c
    return None


@pytest.fixture(scope="module")
def users(cluster_env: dict[str, str], project_template: Path) -> Iterator[dict[str, User]]:
    if os.geteuid() != 0 or not (shutil.which("useradd") and shutil.which("runuser")):
        pytest.skip("needs root with useradd and runuser to create real users")
    uv = shutil.which("uv", path=cluster_env.get("PATH"))
    assert uv, "uv not found"
    # /var/tmp, not pytest's tmp dir: that one is root's alone (0700)
    base = Path(tempfile.mkdtemp(prefix="uvslurm-multiuser-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        made: dict[str, User] = {}
        bin_dir = base / "bin"
        bin_dir.mkdir(mode=0o755)
        shutil.copy2(uv, bin_dir / "uv")  # root's uv may live where users cannot reach it
        for name in (VICTIM, ATTACKER):
            home = base / name
            uid = _ensure_user(name, home)
            made[name] = User(name, uid, home, {})
        python = _python_for(VICTIM)
        if python is None:
            pytest.skip(f"no python{sys.version_info.minor} that a non-root user may run")
        # the CLI as a user runs it: this checkout's uvslurm and its dependencies
        src = Path(uvslurm_pkg.__file__).resolve().parent.parent
        site = sysconfig.get_paths()["purelib"]
        boot = (f"import runpy, sys; sys.path[:0] = [{str(src)!r}, {site!r}]; "
                "runpy.run_module('uvslurm', run_name='__main__', alter_sys=True)")  # fmt: skip
        launcher = bin_dir / "uvslurm"
        launcher.write_text(f'#!/bin/sh\nexec {shlex.quote(python)} -c {shlex.quote(boot)} "$@"\n')
        launcher.chmod(0o755)
        # how this machine reaches the package index (proxy, CA bundle, index), for everyone
        network = {k: v for k, v in os.environ.items()
                   if k.lower().endswith("_proxy") or k in NETWORK_VARS}  # fmt: skip
        for user in made.values():
            home = user.home
            # a uv cache of its own, empty: `submit` fetches the project's one small wheel into
            # it (the session's shared cache is root's, and too big to copy)
            for sub in ("scratch", "config", "state", "cache", "logs", "uv-cache"):
                (home / sub).mkdir(parents=True)
            subprocess.run(["chown", "-R", f"{user.name}:", str(home)], check=True)
            # a world-readable $SCRATCH (as on many sites): only the depot's own mode protects it
            for d in (home, home / "scratch"):
                d.chmod(0o755)
            user.env = {
                "HOME": str(home), "USER": user.name, "LOGNAME": user.name, "LANG": "C.UTF-8",
                "PATH": f"{bin_dir}:{os.path.dirname(python)}:/usr/local/bin:/usr/bin:/bin",
                "SLURM_CONF": cluster_env["SLURM_CONF"], "SCRATCH": str(home / "scratch"),
                "XDG_CONFIG_HOME": str(home / "config"), "XDG_STATE_HOME": str(home / "state"),
                "XDG_CACHE_HOME": str(home / "cache"), "UV_CACHE_DIR": str(home / "uv-cache"),
                "UVSLURM_SITE_CONFIG": "/dev/null",
                **network,
            }  # fmt: skip
        check = made[VICTIM].run("uvslurm", "--version", cwd=made[VICTIM].home)
        if check.returncode != 0:
            pytest.skip(f"a non-root user cannot run this checkout's uvslurm: {check.stderr}")
        # the victim's project (a locked uv app), in its home
        proj = made[VICTIM].home / "proj"
        shutil.copytree(project_template, proj, ignore=shutil.ignore_patterns(".git", ".venv"))
        subprocess.run(["chown", "-R", f"{VICTIM}:", str(proj)], check=True)
        yield made
    finally:
        for name in (VICTIM, ATTACKER):
            _sh("env", f"SLURM_CONF={cluster_env['SLURM_CONF']}", "scancel", "-u", name)
            _sh("userdel", name)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def shared_tmp(users: dict[str, User]) -> Callable[[str], Path]:
    """A fresh directory shared by every user, as /tmp is: root's, mode 1777."""

    def make(name: str) -> Path:
        d = Path(tempfile.mkdtemp(prefix=f"shared-{name}-", dir=users[VICTIM].home.parent))
        d.chmod(0o1777)
        return d

    return make


def _plant(attacker: User, path: Path, key: str, link_to: Path | None = None) -> None:
    """As ATTACKER: a world-writable directory at PATH (or a symlink there to LINK_TO) holding
    what looks like a ready venv for KEY, whose python would leave a PWNED file if it ran."""
    script = """
    set -e
    path=$1 key=$2 link_to=$3 dir=$1
    if [ -n "$link_to" ]; then ln -s "$link_to" "$path"; dir=$link_to; fi
    [ -d "$dir" ] || mkdir "$dir"
    chmod 777 "$dir"
    mkdir -p "$dir/$key/bin"
    : >"$dir/$key/.uvslurm-ready"
    printf '#!/bin/sh\\ntouch "%s/PWNED-by-$(id -un)"\\nexec python3 "$@"\\n' "$dir" >"$dir/$key/bin/python"
    chmod -R a+rwX "$dir/$key"
    """
    r = attacker.run("bash", "-c", script, "plant", str(path), key, str(link_to or ""),
                     cwd=attacker.home)  # fmt: skip
    assert r.returncode == 0, r.stderr


@pytest.mark.slurm
@pytest.mark.slow
def test_each_user_gets_a_private_node_local_dir_and_its_own_depot(
    users: dict[str, User], shared_tmp: Callable[[str], Path]
) -> None:
    """(c) every per-user directory the prolog creates in a shared /tmp is 0700 and its user's;
    (d) two users running the same project (same project path, same key) share nothing: each
    builds in its own depot, which the other can neither read nor write."""
    victim, attacker = users[VICTIM], users[ATTACKER]
    proj = victim.home / "proj"
    shared = shared_tmp("private")
    v_log = victim.submit(proj, victim.home / "logs" / "private.log", str(shared))
    _, v_venv = ready_venv(v_log)
    victim_depot_before = snapshot(victim.depot)
    # the attacker runs the victim's project (readable to it): refused until the attacker
    # trusts it, then the same key in another depot
    refused = attacker.run("uvslurm", "submit", "--dry-run", "train.py", cwd=proj)
    assert refused.returncode == 1 and "belongs to uvs-victim, not to you" in refused.stderr
    assert attacker.run("uvslurm", "trust", str(proj), cwd=attacker.home).returncode == 0
    a_log = attacker.submit(proj, attacker.home / "logs" / "same-project.log", str(shared))
    a_state, a_venv = ready_venv(a_log)
    assert a_state == "cold", f"the attacker's first job must build its own venv:\n{a_log}"
    assert f"built {attacker.depot}/" in a_log, a_log
    assert v_venv.name == a_venv.name, "same project, node and lock: the same key"
    for user, venv, log in ((victim, v_venv, v_log), (attacker, a_venv, a_log)):
        assert venv.parent == shared / f"uvslurm-{user.uid}", log
        assert program_prefix(log) == venv, log
    assert snapshot(victim.depot) == victim_depot_before, "another user's job touched the depot"
    assert str(victim.depot) not in a_log and f"uvslurm-{victim.uid}" not in a_log, a_log

    # (c) the per-user directories the prolog made in the shared directory: nothing else
    assert sorted(os.listdir(shared)) == sorted(f"uvslurm-{u.uid}" for u in users.values())
    for user in users.values():
        st = (shared / f"uvslurm-{user.uid}").lstat()
        assert stat.S_ISDIR(st.st_mode), user.name
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.uid, 0o700), user.name

    # (d) modes: the victim's depot is the victim's alone; nothing in it is writable by others
    root = victim.depot.stat()
    assert (root.st_uid, stat.S_IMODE(root.st_mode)) == (victim.uid, 0o700), oct(root.st_mode)
    for p in [victim.depot, *victim.depot.rglob("*")]:
        st = p.lstat()
        assert st.st_uid == victim.uid, p
        # uv makes its (empty) lock files 0666 on purpose; only the depot's mode guards them
        if not stat.S_ISLNK(st.st_mode) and not (p.name == ".lock" and st.st_size == 0):
            assert not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH), f"{p} is writable by others"
    # and the attacker, trying for real, can neither read nor write anything of it
    depot_venv = next(victim.depot.glob(f"*/{v_venv.name[-21:]}"))
    keys = depot_venv.parent / ".keys"
    assert keys.is_file()
    probe = """
import json, os, sys
depot, venv, keys = sys.argv[1:]
def attempt(f):
    try:
        f()
        return True
    except OSError:
        return False
print(json.dumps({
    "list depot": attempt(lambda: os.listdir(depot)),
    "list venv": attempt(lambda: os.listdir(venv)),
    "read pyvenv.cfg": attempt(lambda: open(os.path.join(venv, "pyvenv.cfg")).read()),
    "read keys": attempt(lambda: open(keys).read()),
    "write keys": attempt(lambda: open(keys, "a").write("x")),
    "create in venv": attempt(lambda: open(os.path.join(venv, "evil.pth"), "w")),
    "create in depot": attempt(lambda: os.mkdir(os.path.join(depot, "evil"))),
}))
"""
    r = attacker.run("python3", "-c", probe, str(victim.depot), str(depot_venv), str(keys),
                     cwd=attacker.home)  # fmt: skip
    assert r.returncode == 0, r.stderr
    allowed = {what for what, ok in json.loads(r.stdout).items() if ok}
    assert allowed == set(), f"the attacker could {sorted(allowed)} in the victim's depot"
    assert snapshot(victim.depot) == victim_depot_before


@pytest.mark.slurm
@pytest.mark.slow
def test_directory_planted_in_shared_tmp_is_never_used(
    users: dict[str, User], shared_tmp: Callable[[str], Path]
) -> None:
    """(a) The attacker creates the victim's uvslurm-<uid> first (world-writable, holding a fake
    ready venv for the victim's very key). The victim's job succeeds from its depot, says why,
    and neither writes into nor runs anything from the attacker's directory."""
    victim, attacker = users[VICTIM], users[ATTACKER]
    proj = victim.home / "proj"
    shared = shared_tmp("planted")
    key = victim.venv_key(proj)
    lure = shared / f"uvslurm-{victim.uid}"
    _plant(attacker, lure, key)
    assert lure.lstat().st_uid == attacker.uid
    before = snapshot(lure)
    log = victim.submit(proj, victim.home / "logs" / "planted.log", str(shared))
    _, venv = ready_venv(log)
    assert f"{venv.parent.name}-{venv.name}" == key, "the fake venv was planted for another key"
    assert venv.is_relative_to(victim.depot), log
    assert program_prefix(log) == venv
    assert re.search(rf"^uvslurm: warning: {re.escape(str(lure))}\b.*not using it", log, re.M), log
    assert snapshot(lure) == before, "the victim's job wrote into the attacker's directory"
    assert not list(shared.parent.rglob("PWNED*")), "the victim ran the attacker's python"
    assert os.listdir(shared) == [lure.name]


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.parametrize("owner", [ATTACKER, VICTIM])
def test_symlink_planted_in_shared_tmp_is_never_followed(
    users: dict[str, User], shared_tmp: Callable[[str], Path], owner: str
) -> None:
    """(b) The attacker plants uvslurm-<victim uid> as a symlink: to a directory of its own
    (world-writable, with a fake ready venv for the victim's key), or to a private 0700
    directory of the victim, which passes every owner and mode check once followed."""
    victim, attacker = users[VICTIM], users[ATTACKER]
    proj = victim.home / "proj"
    shared = shared_tmp("symlink")
    key = victim.venv_key(proj)
    lure = shared / f"uvslurm-{victim.uid}"
    if owner == ATTACKER:
        target = attacker.home / f"evil-{shared.name}"
        _plant(attacker, lure, key, link_to=target)
    else:
        target = victim.home / f"precious-{shared.name}"
        r = victim.run("bash", "-c", 'mkdir -m 700 "$1" && echo data >"$1/file"', "_", str(target),
                       cwd=victim.home)  # fmt: skip
        assert r.returncode == 0, r.stderr
        r = attacker.run("ln", "-s", str(target), str(lure), cwd=attacker.home)
        assert r.returncode == 0, r.stderr
    assert lure.is_symlink() and lure.lstat().st_uid == attacker.uid
    before = snapshot(target)
    log = victim.submit(proj, victim.home / "logs" / f"symlink-{owner}.log", str(shared))
    _, venv = ready_venv(log)
    assert venv.is_relative_to(victim.depot), log
    assert f"{venv.parent.name}-{venv.name}" == key
    assert program_prefix(log) == venv
    assert re.search(rf"^uvslurm: warning: {re.escape(str(lure))}\b.*not using it", log, re.M), log
    assert snapshot(target) == before, "the victim's job followed the planted symlink"
    assert os.readlink(lure) == str(target) and os.listdir(shared) == [lure.name]
    assert not list(shared.parent.rglob("PWNED*")), "the victim ran the attacker's python"


def test_a_depot_the_prolog_creates_is_private(project: Path, tmp_path: Path) -> None:
    depot = tmp_path / "scratch" / "uvslurm"
    env = prolog_env(project, depot)
    with prolog_file() as fd:
        r = subprocess.run(prolog_argv(fd), pass_fds=(fd,), env=env, capture_output=True,
                           text=True, umask=0o022)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(depot.stat().st_mode) == 0o700, oct(depot.stat().st_mode)
    assert (depot / ".uvslurm-depot").is_file(), "a depot the prolog makes carries the marker"


def test_a_depot_uvslurm_creates_is_private(project: Path, tmp_path: Path) -> None:
    """`prepare` (like `submit` and `srun`) creates a missing depot 0700, parents as usual."""
    depot = tmp_path / "scratch" / "deeper" / "uvslurm"
    r = subprocess.run([sys.executable, "-m", "uvslurm", "prepare", "--no-node-local"],
                       cwd=project, env={**os.environ, "UVSLURM_DEPOT": str(depot)},
                       capture_output=True, text=True, umask=0o022)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(depot.stat().st_mode) == 0o700
    assert stat.S_IMODE(depot.parent.stat().st_mode) == 0o755
    # an existing depot keeps its mode (a site may have set one up on purpose)
    shared = tmp_path / "site-depot"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    r = subprocess.run([sys.executable, "-m", "uvslurm", "prepare", "--no-node-local"],
                       cwd=project, env={**os.environ, "UVSLURM_DEPOT": str(shared)},
                       capture_output=True, text=True, umask=0o022)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755


# --- the threat model, class by class (docs/reliability.md, "Threat model"), with real users
# and real jobs: each attack fails, and the victim's job runs its own code or stops clearly.


def _queue(user: User) -> str:
    r = user.run("squeue", "-h", "-u", user.name, "-o", "%i", cwd=user.home)
    return r.stdout.strip()


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, (r.returncode, r.stderr)
    assert lines[0].startswith("uvslurm: error: ") and "Traceback" not in r.stderr
    return lines[0]


@pytest.mark.slurm
def test_threat_1_a_planted_pyproject_above_runs_nothing_as_the_victim(
    users: dict[str, User], shared_tmp: Callable[[str], Path]
) -> None:
    victim, attacker = users[VICTIM], users[ATTACKER]
    shared = shared_tmp("planted-project")
    pwned = shared / "PWNED"
    script = f"""
    set -e
    mkdir -m 777 "$1/group" && cp -r "$2/." "$1/group/"
    printf '\\n[tool.uvslurm]\\nuv = "/bin/sh"\\nfingerprint.commands = ["touch {pwned}"]\\n' >>"$1/group/pyproject.toml"
    chmod -R a+rwX "$1/group"
    """
    r = attacker.run("bash", "-c", script, "_", str(shared), str(victim.home / "proj"),
                     cwd=attacker.home)  # fmt: skip
    assert r.returncode == 0, r.stderr
    mine = shared / "group" / "mine"
    assert victim.run("mkdir", "-m", "755", str(mine), cwd=victim.home).returncode == 0
    for argv in (["env"], ["prepare"], ["fingerprint"], ["submit", "--wait", "--", "python", "-V"],
                 ["srun", "--", "python", "-V"]):  # fmt: skip
        r = victim.run("uvslurm", *argv, cwd=mine)
        line = _one_error_line(r)
        assert f"not using the project in {shared / 'group'}" in line, line
        assert "belongs to uvs-attacker" in line or "writable by others" in line, line
    doctor = victim.run("uvslurm", "doctor", cwd=mine)
    assert "fail configuration: not using the project" in doctor.stdout, doctor.stdout
    # the shell hook, in a real interactive bash of the victim's: unset, nothing run
    hook = victim.run("uvslurm", "shell-hook", "bash", cwd=victim.home).stdout
    hook = re.sub(r"[^\s(]+ -m uvslurm", "uvslurm", hook)  # the launcher on the victim's PATH
    steps = (f"{hook}\ncd {shlex.quote(str(victim.home / 'proj'))} && _uvslurm_hook && "
             'echo "venv=${UV_PROJECT_ENVIRONMENT:-unset}"\n'
             f"cd {shlex.quote(str(mine))} && _uvslurm_hook && "
             'echo "venv=${UV_PROJECT_ENVIRONMENT:-unset}"')  # fmt: skip
    r = victim.run("bash", "-c", steps, cwd=mine)
    assert len(r.stdout.strip().splitlines()) == 2, r.stdout + r.stderr
    own, planted = r.stdout.strip().splitlines()
    assert own.startswith(f"venv={victim.depot}/") and "/shell-" in own, r.stdout + r.stderr
    assert planted == "venv=unset", r.stdout + r.stderr
    assert not pwned.exists(), "a command of the planted pyproject ran as the victim"
    assert _queue(victim) == "", "something was submitted"


@pytest.mark.slurm
@pytest.mark.slow
def test_threat_2_two_checkouts_on_one_node_each_run_their_own_code(
    users: dict[str, User], shared_tmp: Callable[[str], Path]
) -> None:
    victim = users[VICTIM]
    shared = shared_tmp("checkouts")
    a, b = victim.home / "proj", victim.home / "proj-clone"
    r = victim.run("bash", "-c", 'rm -rf "$2" && cp -r "$1" "$2" && echo "WHO = \'clone\'" >"$2/src/demo/__init__.py" && '
                   'echo "WHO = \'original\'" >"$1/src/demo/__init__.py"', "_", str(a), str(b),
                   cwd=victim.home)  # fmt: skip
    assert r.returncode == 0, r.stderr
    seen = {}
    for proj in (a, b):
        log = victim.home / "logs" / f"checkout-{proj.name}.log"
        r = victim.run("uvslurm", "submit", "--wait", "-w", "n1", "-o", str(log), "-e", str(log),
                       "--", "python", "-c", "import demo, sys; print('WHO', demo.WHO, sys.prefix)",
                       cwd=proj, env={"UVSLURM_NODE_LOCAL": str(shared)})  # fmt: skip
        text = log.read_text() if log.exists() else ""
        assert r.returncode == 0, r.stderr + text
        seen[proj.name] = next(x for x in text.splitlines() if x.startswith("WHO "))
    assert seen["proj"].split()[1] == "original" and seen["proj-clone"].split()[1] == "clone", seen
    assert seen["proj"].split()[2] != seen["proj-clone"].split()[2]


@pytest.mark.slurm
def test_threat_3_gc_and_rm_never_touch_files_uvslurm_did_not_make(
    users: dict[str, User],
) -> None:
    victim = users[VICTIM]
    scratch = victim.home / "scratch"
    r = victim.run("bash", "-c", 'mkdir -p "$1/data/x/y" "$1/ab-0123456789/run" && echo 1 >"$1/data/x/y/f" && '
                   'echo 1 >"$1/results.lock" && echo 1 >"$1/ab-0123456789/run/old.lock"', "_",
                   str(scratch), cwd=victim.home)  # fmt: skip
    assert r.returncode == 0, r.stderr
    before = snapshot(scratch)
    env = {"UVSLURM_DEPOT": str(scratch)}
    for argv in (["depot", "gc", "--older-than", "0"], ["depot", "rm", "ab-0123456789"],
                 ["submit", "--", "python", "-V"]):  # fmt: skip
        line = _one_error_line(victim.run("uvslurm", *argv, cwd=victim.home / "proj", env=env))
        assert f"{scratch} is not a uvslurm depot" in line, line
    assert snapshot(scratch) == before and _queue(victim) == ""


@pytest.mark.slurm
@pytest.mark.slow
def test_threat_4_a_depot_another_user_made_first_is_never_used(
    users: dict[str, User], shared_tmp: Callable[[str], Path]
) -> None:
    """The victim's depot sits in a shared scratch (sticky, like /tmp). After a purge, the
    attacker recreates it (0777) with a "ready" venv for the victim's key before the victim's
    next job: submit refuses it, and a job script resubmitted with plain sbatch stops (75)."""
    victim, attacker = users[VICTIM], users[ATTACKER]
    shared = shared_tmp("depots")
    depot = shared / "victim-depot"
    proj = victim.home / "proj"
    env = {"UVSLURM_DEPOT": str(depot), "UVSLURM_NODE_LOCAL": "never"}
    log = victim.home / "logs" / "depot-1.log"
    r = victim.run("uvslurm", "submit", "--wait", "-o", str(log), "-e", str(log), "train.py",
                   cwd=proj, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    _, venv = ready_venv(log.read_text())
    script = victim.home / "resubmit.sh"
    r = victim.run("uvslurm", "submit", "--dry-run", "-o", str(log), "-e", str(log), "train.py",
                   cwd=proj, env=env)  # fmt: skip
    script.write_text(r.stdout)
    assert victim.run("rm", "-rf", str(depot), cwd=victim.home).returncode == 0  # a purge
    _plant(attacker, depot, str(venv.relative_to(depot)))
    assert depot.lstat().st_uid == attacker.uid
    line = _one_error_line(victim.run("uvslurm", "submit", "train.py", cwd=proj, env=env))
    assert f"the depot is not safe to use: {depot} belongs to uvs-attacker" in line, line
    assert _queue(victim) == ""
    log2 = victim.home / "logs" / "depot-2.log"
    r = victim.run("sbatch", "--wait", "-o", str(log2), "-e", str(log2), str(script),
                   cwd=proj, env=env)  # fmt: skip
    text = log2.read_text()
    assert r.returncode == 75, text
    assert f"uvslurm: error: the depot {depot} is not a directory of yours" in text, text
    assert "TRAIN " not in text
    assert not list(shared.rglob("PWNED*")), "the victim ran the attacker's python"


@pytest.mark.slurm
@pytest.mark.slow
def test_threat_5_a_held_uv_lock_in_the_shared_tmp_does_not_hang_the_victim(
    users: dict[str, User], shared_tmp: Callable[[str], Path]
) -> None:
    victim, attacker = users[VICTIM], users[ATTACKER]
    shared = shared_tmp("uvlock")
    proj = victim.home / "proj"
    probe = attacker.home / "probe"
    # the attacker works out uv's lock file names for the victim's project, then holds them
    r = attacker.run("bash", "-c", 'mkdir -p "$1" && TMPDIR="$1" uv run --no-sync --project "$2" true; '
                     'ls "$1"', "_", str(probe), str(proj), cwd=attacker.home)  # fmt: skip
    names = [n for n in r.stdout.split() if n.startswith("uv-") and n.endswith(".lock")]
    assert names, f"uv took no lock in TMPDIR: the premise is gone ({r.stdout} {r.stderr})"
    holder = subprocess.Popen(
        ["runuser", "-u", ATTACKER, "--", "bash", "-c",
         'cd "$1"; for n in "${@:2}"; do touch "$n"; chmod 666 "$n"; exec {fd}<>"$n"; flock "$fd"; done; '
         'echo held; exec sleep 600', "_", str(shared), *names],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        log = victim.home / "logs" / "uvlock.log"
        r = victim.run("uvslurm", "submit", "--wait", "-o", str(log), "-e", str(log), "train.py",
                       cwd=proj, env={"TMPDIR": str(shared)}, timeout=240)  # fmt: skip
        assert r.returncode == 0, r.stderr + (log.read_text() if log.exists() else "")
        prep = victim.run("uvslurm", "prepare", "--no-node-local", cwd=proj,
                          env={"TMPDIR": str(shared)}, timeout=240)  # fmt: skip
        assert prep.returncode == 0, prep.stderr
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # runuser, and the sleep holding the locks
        holder.wait()
    private = shared / f"uvslurm-{victim.uid}"
    assert stat.S_IMODE(private.lstat().st_mode) == 0o700 and private.lstat().st_uid == victim.uid


@pytest.mark.slurm
@pytest.mark.slow
def test_threat_6_a_hostile_file_name_cannot_inject_sbatch_lines_or_shell(
    users: dict[str, User],
) -> None:
    victim = users[VICTIM]
    proj = victim.home / "proj"
    name = 'evil"\n#SBATCH --time=1\ntouch PWNED\n"x'
    r = victim.run("bash", "-c", 'cp "$1/train.py" "$1/$2.py"', "_", str(proj), name,
                   cwd=proj)  # fmt: skip
    assert r.returncode == 0, r.stderr
    log = victim.home / "logs" / "inject.log"
    comment = 'run#5 it\'s "quoted" \\ back'
    r = victim.run("uvslurm", "submit", "--parsable", "-t", "7", f"--comment={comment}",
                   "--hold", "-o", str(log), "-e", str(log), f"{name}.py", cwd=proj)  # fmt: skip
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    try:
        show = victim.run("scontrol", "show", "job", job, cwd=proj).stdout
    finally:
        victim.run("scancel", job, cwd=proj)
    assert f"Comment={comment}" in show, show
    assert 'JobName=evil"_#SBATCH --time=1_touch PWNED_"x' in show, show
    assert "TimeLimit=00:07:00" in show, "an option after the job name was dropped"
    assert not (proj / "PWNED").exists()


@pytest.mark.slurm
def test_threat_7_an_unexpanded_depot_is_refused_everywhere(users: dict[str, User]) -> None:
    victim = users[VICTIM]
    proj = victim.home / "proj-unset"
    r = victim.run("bash", "-c", 'cp -r "$1" "$2" && printf \'\\n[tool.uvslurm]\\ndepot = "$UNSET_X/venvs"\\n\' >>"$2/pyproject.toml"',
                   "_", str(victim.home / "proj"), str(proj), cwd=victim.home)  # fmt: skip
    assert r.returncode == 0, r.stderr
    for argv in (["submit", "--", "python", "-V"], ["prepare"], ["env"]):
        line = _one_error_line(victim.run("uvslurm", *argv, cwd=proj))
        assert "depot = '$UNSET_X/venvs' (from " in line and "$UNSET_X is not set" in line, line
    doctor = victim.run("uvslurm", "doctor", cwd=proj)
    assert doctor.returncode == 1 and "fail depot: depot = '$UNSET_X/venvs'" in doctor.stdout
    assert not (proj / "$UNSET_X").exists() and _queue(victim) == ""
