"""The warm start's memo (prolog section fast.sh): a start in a job whose inputs are those of an
earlier one runs from the venv that one found, without the full path; anything that could change
the venv takes the full path again. And the job's hold that needs no process: gc and rm ask
Slurm whether the job that named itself beside a venv still runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Cluster, log_text, logging_uv, ready, uvslurm, wait_for
from uvslurm import depot, prolog

REMEMBERED = re.compile(r"^uvslurm: fingerprint [0-9a-f]{12} in \d+ ms \(remembered\)$", re.M)
CODE = "import sys; print('prefix=' + sys.prefix)"


def _script(project: Path, root: Path, tmp: Path, *extra: str) -> Path:
    """The job script `uvslurm submit` would send (depot `root`, no node-local copy)."""
    r = uvslurm("submit", "--dry-run", "--no-node-local", *extra, "--", "python", "-c", CODE,
                cwd=project, env={"UVSLURM_DEPOT": str(root)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    path = tmp / "job.sh"
    path.write_text(r.stdout)
    return path


def _start(script: Path, project: Path, job: str = "41", **env: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The job script run by bash as a node runs it, in job `job` (SLURM_* as Slurm sets them)."""
    full = {**os.environ, "SLURM_JOB_ID": job, "SLURM_JOB_NUM_NODES": "1", **env}
    full.pop("SLURM_CLUSTER_NAME", None)
    r = subprocess.run(["bash", str(script)], cwd=project, env=full, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def _remembered(r: subprocess.CompletedProcess[str]) -> bool:
    return bool(REMEMBERED.search(r.stderr))


@pytest.fixture
def warm(project: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(job script, depot, venv): built by a first job, which wrote the memo."""
    root = tmp_path / "depot"
    script = _script(project, root, tmp_path)
    first = _start(script, project)
    assert ready(first.stderr).state == "cold" and not _remembered(first)
    assert (ready(first.stderr).venv.parent / ".memo").is_file()
    return script, root, ready(first.stderr).venv


def test_a_warm_start_in_a_job_is_remembered_and_runs_no_program_but_the_command(
    warm: tuple[Path, Path, Path], project: Path, tmp_path: Path
) -> None:
    script, _, venv = warm
    trace = tmp_path / "trace"
    full = {**os.environ, "SLURM_JOB_ID": "42", "SLURM_JOB_NUM_NODES": "1"}
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), "bash",
                        str(script)], cwd=project, env=full, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _remembered(r), r.stderr
    assert ready(r.stderr).state == "warm" and ready(r.stderr).venv == venv
    assert f"prefix={venv}" in r.stdout
    programs = [m.group(1) for m in re.finditer(r'execve\("([^"]+)"', trace.read_text())]
    # bash, then uv, which starts the command's Python: nothing of the prolog's own
    assert Path(programs[0]).name == "bash" and Path(programs[1]).name == "uv", programs
    assert all(Path(p).name.startswith("python") for p in programs[2:]), programs
    # the job named itself beside the venv: that is its hold (no process, no flock)
    assert (venv / ".uvslurm-job---42").is_file()
    assert sorted((h.cluster, h.job) for h in depot.job_holds(venv)) == [("-", "41"), ("-", "42")]


@pytest.mark.parametrize(
    "change",
    ["modules", "a uv setting", "a PATH directory changed", "uv",
     "lock copied with an old time", "a purged file", "memo a symlink"],
)  # fmt: skip
def test_the_memo_is_not_believed_when_anything_it_stands_for_changed(
    warm: tuple[Path, Path, Path], project: Path, tmp_path: Path, change: str
) -> None:
    script, _, venv = warm
    env: dict[str, str] = {}
    if change == "modules":
        env = {"LOADEDMODULES": "mpich/1.0", "_LMFILES_": "/m/mpich/1.0"}
    elif change == "a uv setting":
        env = {"UV_PYTHON_PREFERENCE": "only-system"}
    elif change == "a PATH directory changed":
        # a directory that was on PATH when the memo was written gets a new entry (a new
        # interpreter could be there now): the interpreter is looked for again
        d = tmp_path / "bin-new"
        d.mkdir()
        env = {"PATH": f"{d}:{os.environ['PATH']}"}
        _start(script, project, **env)  # remembered for this PATH
        time.sleep(0.05)
        (d / "python3.11").write_text("")
    elif change == "uv":
        # the same path, another file (an update in place keeps the package's old time)
        uv = shutil.which("uv")
        assert uv
        copy = tmp_path / "uvbin" / "uv"
        copy.parent.mkdir()
        shutil.copy2(uv, copy)
        text = script.read_text()
        script.write_text(re.sub(r"^UVSLURM_UV=.*$", f"UVSLURM_UV={copy}", text, flags=re.M))
        _start(script, project)
        assert _remembered(_start(script, project))
        shutil.copy2(uv, tmp_path / "uvbin" / "uv.new")
        os.replace(tmp_path / "uvbin" / "uv.new", copy)
    elif change == "lock copied with an old time":
        lock = project / "uv.lock"
        old = lock.stat().st_mtime - 86400
        lock.write_text(lock.read_text() + "\n")
        os.utime(lock, (old, old))
    elif change == "a purged file":
        check = next(ln for ln in (venv / ".uvslurm-ready").read_text().splitlines()
                     if ln.startswith("check="))  # fmt: skip
        (venv / check.removeprefix("check=").split("\x1f")[0]).unlink()
    elif change == "memo a symlink":
        memo = venv.parent / ".memo"
        shutil.copy(memo, tmp_path / "memo")
        memo.unlink()
        memo.symlink_to(tmp_path / "memo")
    r = _start(script, project, **env)
    assert not _remembered(r), r.stderr
    if change == "modules":
        assert ready(r.stderr).venv != venv and ready(r.stderr).state == "cold"
    elif change == "lock copied with an old time":
        assert "changed after submission" in r.stderr
    elif change == "a purged file":
        assert "is incomplete" in r.stderr and ready(r.stderr).state in ("cold", "repaired")
    else:
        assert ready(r.stderr).venv == venv
    if change not in ("memo a symlink", "lock copied with an old time"):
        # the full path remembers the new inputs: the next start with them is answered again
        assert _remembered(_start(script, project, **env))


def test_a_big_lock_is_compared_by_cmp_and_a_change_in_place_is_still_seen(
    project: Path, tmp_path: Path
) -> None:
    """bash compares ~5 KB per ms: a lock the memo knew as over 32 KiB is compared by cmp (one
    process); the answer is the same, so a lock rewritten in place with its old time is caught."""
    lock = project / "uv.lock"
    lock.write_text(lock.read_text() + "# padding\n" * 4000)  # TOML comments, 40 KB
    script = _script(project, tmp_path / "depot", tmp_path)
    first = _start(script, project)
    assert not _remembered(first)
    trace = tmp_path / "trace"
    full = {**os.environ, "SLURM_JOB_ID": "42", "SLURM_JOB_NUM_NODES": "1"}
    full.pop("SLURM_CLUSTER_NAME", None)
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), "bash",
                        str(script)], cwd=project, env=full, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and _remembered(r), r.stderr
    programs = [Path(m.group(1)).name for m in re.finditer(r'execve\("([^"]+)"', trace.read_text())]
    assert programs[:3] == ["bash", "cmp", "uv"], programs
    old = lock.stat().st_mtime - 86400
    lock.write_text(lock.read_text().replace("# padding\n", "# paddinG\n", 1))
    os.utime(lock, (old, old))
    r = _start(script, project, job="43")
    assert not _remembered(r) and "changed after submission" in r.stderr, r.stderr


def test_a_job_that_records_its_run_is_remembered_and_recorded(
    warm: tuple[Path, Path, Path], project: Path, tmp_path: Path
) -> None:
    script, _, venv = warm
    records = tmp_path / "records"
    records.mkdir(mode=0o700)
    text = re.sub(
        r"^UVSLURM_RECORD=.*$", f"UVSLURM_RECORD={records}", script.read_text(), flags=re.M
    )
    script.write_text(text)
    # a requeued job: its earlier end is not this run's
    (records / "43.end").write_text("exit_code=3\n")
    trace = tmp_path / "trace"
    full = {**os.environ, "SLURM_JOB_ID": "43", "SLURM_JOB_NUM_NODES": "1"}
    full.pop("SLURM_CLUSTER_NAME", None)
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), "bash",
                        str(script)], cwd=project, env=full, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _remembered(r) and f"prefix={venv}" in r.stdout
    start = (records / "43.start").read_text()
    assert "ready=warm" in start and f"venv={venv}" in start and "components:\nmodules=" in start
    # the fingerprint as the venv's marker holds it (what its key is the hash of)
    marker = (venv / ".uvslurm-ready").read_text()
    fp = marker[marker.index("\nmodules=") + 1 :].rstrip("\n")
    assert start.split("components:\n")[1].rstrip("\n") == fp
    assert (records / "43.end").read_text().endswith("exit_code=0\n")
    # the shell stays to record the end: bash, uv, the command's Python; nothing else of the
    # prolog's (the command's signals are set back by its own subshell, not by env(1))
    programs = [Path(m.group(1)).name for m in re.finditer(r'execve\("([^"]+)"', trace.read_text())]
    assert programs[:2] == ["bash", "uv"], programs
    assert all(p.startswith("python") for p in programs[2:]), programs


SIGIGN = "print([l for l in open('/proc/self/status') if l.startswith('SigIgn:')][0], end='')"


def test_the_command_of_a_job_that_records_its_run_does_not_ignore_interrupts(
    project: Path, tmp_path: Path
) -> None:
    """A job that records its run starts the command in the background (its shell stays to
    record the end), where bash starts it with SIGINT and SIGQUIT ignored: the command must get
    them back, on the full path and on a warm start from the memo, or a program's Ctrl-C and
    quit handlers (srun's, a checkpointing loop's) never fire."""
    records = tmp_path / "records"
    records.mkdir(mode=0o700)
    r = uvslurm("submit", "--dry-run", "--no-node-local", "--", "python", "-c", SIGIGN,
                cwd=project, env={"UVSLURM_DEPOT": str(tmp_path / "depot")})  # fmt: skip
    assert r.returncode == 0, r.stderr
    script = tmp_path / "job.sh"
    script.write_text(re.sub(r"^UVSLURM_RECORD=.*$", f"UVSLURM_RECORD={records}", r.stdout, flags=re.M))  # fmt: skip
    for job, remembered in (("51", False), ("52", True)):
        # as Slurm starts a batch script: stdin not a terminal
        full = {**os.environ, "SLURM_JOB_ID": job, "SLURM_JOB_NUM_NODES": "1"}
        r = subprocess.run(["bash", str(script)], cwd=project, env=full, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)  # fmt: skip
        assert r.returncode == 0 and _remembered(r) == remembered, r.stderr
        assert (records / f"{job}.end").read_text().endswith("exit_code=0\n")
        ignored = int(r.stdout.split()[1], 16)
        assert ignored & (1 << 1 | 1 << 2) == 0, r.stdout  # bits of signals 2 (INT), 3 (QUIT)


TLS = "import os; print('TLS', os.environ.get('SSL_CERT_DIR'), os.environ.get('SSL_CERT_FILE'))"
# what uv says when it reads an SSL_CERT_DIR that names no directory (it builds its HTTP client,
# and reads the certificates, at every `uv run`)
UV_READ_CERTS = "Invalid `SSL_CERT_DIR`"


def test_uv_runs_without_the_jobs_certificates_and_the_command_gets_them_back(
    project: Path, tmp_path: Path
) -> None:
    """`uv run --no-sync` needs no network, yet reads every certificate SSL_CERT_DIR names (~7 ms
    a start): the prolog leaves both variables out of uv's environment and hands them to the
    command through an env file that never changes. On a warm start from the memo, on the full
    path and in a job that records its run; not when the user has env files of their own; an
    env file that is not ours, or says something else, is passed over, never rewritten."""
    records = tmp_path / "records"
    records.mkdir(mode=0o700)
    root = tmp_path / "depot"
    r = uvslurm("submit", "--dry-run", "--no-node-local", "--", "python", "-c", TLS, cwd=project,
                env={"UVSLURM_DEPOT": str(root)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    script = tmp_path / "job.sh"
    script.write_text(r.stdout)
    recording = tmp_path / "rec.sh"
    recording.write_text(re.sub(r"^UVSLURM_RECORD=.*$", f"UVSLURM_RECORD={records}", r.stdout, flags=re.M))  # fmt: skip
    # built with the certificates as they are (a build may need the network)
    venv = ready(_start(script, project, job="60").stderr).venv
    pdir = venv.parent
    bundle = tmp_path / "my certs.pem"  # (a space: not a plain path, see below)
    tls = {"SSL_CERT_DIR": str(tmp_path / "no-such-dir"), "SSL_CERT_FILE": str(tmp_path / "ca.pem")}
    want = f"TLS {tls['SSL_CERT_DIR']} {tls['SSL_CERT_FILE']}"
    plain = subprocess.run([str(shutil.which("uv")), "run", "--no-sync", "true"], cwd=project,
                           capture_output=True, text=True,
                           env={**os.environ, **tls, "UV_PROJECT_ENVIRONMENT": str(venv)})  # fmt: skip
    assert UV_READ_CERTS in plain.stderr, "the premise: plain `uv run` reads them"
    # (the building start's, for the certificates this machine has)
    for f in pdir.glob(".tls-env-*"):
        f.unlink()
    (pdir / ".memo").unlink()
    for job, path, remembered in (("61", script, False), ("62", script, True), ("63", recording, True)):  # fmt: skip
        r = _start(path, project, job=job, **tls)
        assert _remembered(r) == remembered and UV_READ_CERTS not in r.stderr, r.stderr
        assert want in r.stdout.splitlines(), r.stdout
    assert (pdir / ".tls-env-0").read_text() == "".join(f"{k}={v}\n" for k, v in tls.items())
    assert not (pdir / ".tls-env-1").exists()
    # the user's env files: uv reads theirs, and the certificates as before
    (tmp_path / "user.env").write_text("")
    r = _start(script, project, job="64", UV_ENV_FILE=str(tmp_path / "user.env"), **tls)
    assert UV_READ_CERTS in r.stderr and want in r.stdout.splitlines()
    # not a plain path: as before
    r = _start(script, project, job="65", **{**tls, "SSL_CERT_FILE": str(bundle)})
    assert UV_READ_CERTS in r.stderr and f"TLS {tls['SSL_CERT_DIR']} {bundle}" in r.stdout
    # other certificates: the next name; a file that is a symlink is not read, not replaced
    other = {**tls, "SSL_CERT_DIR": str(tmp_path / "other-dir")}
    (pdir / ".tls-env-1").symlink_to(pdir / ".tls-env-0")
    r = _start(script, project, job="66", **other)
    assert "Invalid `SSL_CERT_DIR`" not in r.stderr and f"TLS {other['SSL_CERT_DIR']} " in r.stdout
    assert (pdir / ".tls-env-2").read_text().startswith(f"SSL_CERT_DIR={other['SSL_CERT_DIR']}\n")
    assert (pdir / ".tls-env-1").is_symlink()
    assert (pdir / ".tls-env-0").read_text().startswith(f"SSL_CERT_DIR={tls['SSL_CERT_DIR']}\n")
    # a depot whose path has a space: uv would split --env-file's value there; uv gets them
    r = uvslurm("submit", "--dry-run", "--no-node-local", "--", "python", "-c", TLS, cwd=project,
                env={"UVSLURM_DEPOT": str(tmp_path / "de pot")})  # fmt: skip
    script.write_text(r.stdout)
    _start(script, project, job="67")
    for job in ("68", "69"):
        r = _start(script, project, job=job, **tls)
        assert UV_READ_CERTS in r.stderr and want in r.stdout.splitlines(), r.stderr
    assert not list((tmp_path / "de pot").glob("*/.tls-env-*"))


def test_default_node_local_on_a_per_job_tmpdir_is_remembered_for_the_next_job(
    project: Path, tmp_path: Path
) -> None:
    """With node-local "auto" and a per-job TMPDIR (gone when the job ends, so a one-task job
    runs from the depot): the memo's inputs hold the path with the job's id as any job's, and
    the note it replays names this job's directory."""
    root = tmp_path / "depot"
    r = uvslurm("submit", "--dry-run", "--", "python", "-c", CODE, cwd=project,
                env={"UVSLURM_DEPOT": str(root)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    script = tmp_path / "job.sh"
    script.write_text(r.stdout)
    for job in ("41", "42", "43"):
        (tmp_path / f"job_{job}").mkdir()
    first = _start(script, project, job="41", TMPDIR=str(tmp_path / "job_41"))
    assert not _remembered(first) and ready(first.stderr).venv.is_relative_to(root)
    for job in ("42", "43"):
        r = _start(script, project, job=job, TMPDIR=str(tmp_path / f"job_{job}"))
        assert _remembered(r), r.stderr
        assert ready(r.stderr).venv == ready(first.stderr).venv
        assert "job_41" not in r.stderr
        if "note:" in first.stderr:
            assert f"job_{job}" in r.stderr
    # a job of several tasks would copy into its own directory: not the same inputs
    r = _start(script, project, job="44", TMPDIR=str(tmp_path / "job_43"), SLURM_TASKS_PER_NODE="4")
    assert not _remembered(r)


def _slow_build(script: Path, tmp_path: Path, seconds: str) -> Path:
    """`script` with a uv that logs its calls and takes `seconds` longer to sync (the log)."""
    uv, log = logging_uv(tmp_path, delay=seconds, slow="sync")
    text = re.sub(r"^UVSLURM_UV=.*$", f"UVSLURM_UV={uv}", script.read_text(), count=1, flags=re.M)
    script.write_text(text)
    return log


def _pdir(script: Path, root: Path) -> Path:
    """The project's directory in the depot (made at submission: a dry run does not)."""
    pid = re.search(r"^UVSLURM_PROJECT_ID=(\S+)$", script.read_text(), re.M)
    assert pid
    pdir = root / pid[1]
    pdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return pdir


def _popen(script: Path, project: Path, job: str, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "SLURM_JOB_ID": job, "SLURM_JOB_NUM_NODES": "1"}
    env.pop("SLURM_CLUSTER_NAME", None)
    return subprocess.Popen(["bash", str(script)], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]  # fmt: skip


def test_starts_with_the_same_inputs_wait_for_the_one_on_the_full_path_and_its_memo(
    project: Path, tmp_path: Path
) -> None:
    """The tasks of an array start together on a new node: one takes the full path, holding a
    pending file; the others wait for it and then start as the memo says (no full path: ~80 ms
    of CPU each on 2 cores, and no turn each at the build's lock)."""
    root = tmp_path / "depot"
    script = _script(project, root, tmp_path)
    log = _slow_build(script, tmp_path, "2")
    pdir = _pdir(script, root)
    first = _popen(script, project, "41")
    # (its inputs are written into it once it holds the lock)
    wait_for(lambda: any(p.stat().st_size for p in pdir.glob(".pending-*")), 30,
             "the first start's pending file")  # fmt: skip
    others = [_popen(script, project, job) for job in ("42", "43", "44")]
    outs = [p.communicate(timeout=120) for p in [first, *others]]
    assert [p.returncode for p in [first, *others]] == [0] * 4, outs
    assert ready(outs[0][1]).state == "cold" and not REMEMBERED.search(outs[0][1])
    for _, err in outs[1:]:
        assert re.search(r"^uvslurm: waited \d+ ms for \S+, a start with the same inputs$", err,
                         re.M), err  # fmt: skip
        assert REMEMBERED.search(err), err
        assert ready(err).venv == ready(outs[0][1]).venv
    calls = log.read_text().splitlines()
    assert sum(c.startswith("sync") for c in calls) == 1, calls
    # nothing left behind
    assert list(pdir.glob(".pending-*")) == []


def test_a_start_alone_on_the_full_path_leaves_no_pending_file(
    project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "depot"
    script = _script(project, root, tmp_path)
    pdir = _pdir(script, root)
    r = _start(script, project)
    assert ready(r.stderr).state == "cold" and "waited" not in r.stderr, r.stderr
    assert (pdir / ".memo").is_file()
    assert list(pdir.glob(".pending-*")) == []


def test_a_pending_file_whose_start_was_killed_makes_nobody_wait(
    project: Path, tmp_path: Path
) -> None:
    """A start killed on its full path (scancel: its processes all go) leaves its pending file
    without a lock: the next start with the same inputs does not wait for it, removes it, and
    takes the full path itself."""
    root = tmp_path / "depot"
    script = _script(project, root, tmp_path)
    _slow_build(script, tmp_path, "30")
    pdir = _pdir(script, root)
    first = _popen(script, project, "41", start_new_session=True)
    wait_for(lambda: any(pdir.glob(".pending-*")), 30, "the first start's pending file")
    (stale,) = pdir.glob(".pending-*")
    os.killpg(first.pid, 9)
    first.communicate(timeout=30)
    assert stale.exists()
    r = _popen(script, project, "42", start_new_session=True)
    wait_for(lambda: not stale.exists(), 20, "the next start to remove the stale pending file")
    os.killpg(r.pid, 9)
    r.communicate(timeout=30)


@pytest.mark.parametrize(
    ("job", "array", "text", "want"),
    [
        ("42", "", "/tmp/pytest-16242/job_42/", "/tmp/pytest-16242/job_<job>/"),
        ("41", "", "/tmp/pytest-16242/job_41/", "/tmp/pytest-16242/job_<job>/"),
        ("42", "", "/x/42/42/4242", "/x/<job>/<job>/4242"),
        ("9", "8_2", "/t/8_2/job_9 /8_22/9", "/t/<task>/job_<job> /8_22/<job>"),
        ("", "", "/tmp/42", "/tmp/42"),
    ],
)
def test_a_path_names_the_job_only_where_its_id_stands_alone(
    job: str, array: str, text: str, want: str
) -> None:
    """The per-job TMPDIR of any job is one input: this job's id where it stands alone (between
    non-digits), never inside a longer number (pytest-16242 holds 42; a job 42 memo must match
    job 43's)."""
    fn = prolog.section_text("fast.sh")
    fn = fn[fn.index("_uvslurm_jobless() {") :]
    fn = fn[: fn.index("\n}\n") + 3]
    a, _, t = array.partition("_")
    env = {"PATH": os.environ["PATH"], "SLURM_JOB_ID": job, "SLURM_ARRAY_JOB_ID": a,
           "SLURM_ARRAY_TASK_ID": t}  # fmt: skip
    code = fn + '_uvslurm_jobless r "$1"; _uvslurm_jobless b "$r" back; printf "%s\\n%s" "$r" "$b"'
    out = subprocess.run(["bash", "-c", code, "-", text], env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out == f"{want}\n{text}"


def test_the_memo_holds_every_variable_the_full_path_reads() -> None:
    """Every variable that the fingerprint, key and choice of the venv read is among the memo's
    inputs, or named below with why it cannot change which venv a job gets."""
    text = prolog.section_text("fast.sh")
    body = text[text.index("\nwhile [") : text.index("  _uvslurm_pdir=", text.index("\nwhile ["))]
    inputs = set(re.findall(r"\$\{?!?([A-Z_]*[A-Z][A-Z0-9_]*)\b", body)) | {
        "TMPDIR",
        "SLURM_TMPDIR",
    }
    harmless = {
        "UVSLURM_CMD",
        "UVSLURM_MODE",
        "UVSLURM_RECORD",
        "UVSLURM_SNAPSHOT",  # the command's own
        "SLURM_JOB_ID",
        "SLURM_ARRAY_JOB_ID",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_CLUSTER_NAME",
        "SLURM_JOB_NODELIST",
        "SLURMD_NODENAME",
        "SLURM_JOB_NUM_NODES",  # records, holds; 1 node
        "EPOCHREALTIME",
        "UID",
        "BASH_SOURCE",
        "PWD",
        "BASH_REMATCH",
        "BASH_EXECUTION_STRING",
        "VIRTUAL_ENV",  # unset before uv runs
        "PYTHONPATH",  # snapshot only (never remembered)
        "UV_PROJECT_ENVIRONMENT",  # set by the prolog itself
        "LC_ALL",  # bash's own locale while it reads the memo, put back before anything runs
        "SSL_CERT_DIR",  # which certificates: the command's, not the venv's; read at every
        "SSL_CERT_FILE",  # start (_uvslurm_tls)
    }
    read = set()
    for name in ("fast.sh", "fingerprint.sh", "key.sh"):
        read |= set(re.findall(r"\$\{?!?([A-Z_]*[A-Z][A-Z0-9_]*)\b", prolog.section_text(name)))
    # every UV_* variable is an input ("${!UV_@}")
    assert {n for n in read - inputs - harmless if not n.startswith("UV_")} == set()


def test_job_holds_count_while_slurm_has_the_job(tmp_path: Path) -> None:
    venv = tmp_path / "v"
    venv.mkdir()
    v = depot.Venv(venv, "job", "", {})
    assert depot._job_hold(v, lambda: ("c", set())) is None
    (venv / ".uvslurm-job-c-7").touch()
    (venv / ".uvslurm-job-other-8").touch()
    assert "job 7 runs from it" in (depot._job_hold(v, lambda: ("c", {"7"})) or "")
    # job 7 ended; cluster other's job 8 cannot be asked about here: held for a while
    assert "cluster other's job 8" in (depot._job_hold(v, lambda: ("c", {"9"})) or "")
    later = time.time() + depot.JOB_HOLD_MAX + 60
    assert depot._job_hold(v, lambda: ("c", {"9"}), now=later) is None
    # no Slurm here: every hold counts for JOB_HOLD_MAX
    assert depot._job_hold(v, lambda: None) is not None
    assert depot._job_hold(v, None, now=later) is None
    # gc removes the holds of this cluster's jobs that ended, never another cluster's
    assert depot.prune_job_holds(v, lambda: None) == 0
    assert depot.prune_job_holds(v, lambda: ("c", {"9"})) == 1
    assert sorted(p.name for p in venv.iterdir()) == [".uvslurm-job-other-8"]


@pytest.mark.slurm
def test_real_jobs_remember_and_hold_their_venv_until_slurm_says_they_ended(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    args = ["--no-node-local", "-w", "n1"]
    for n in ("1", "2"):
        log = tmp_path / f"{n}.log"
        r = uvslurm("submit", "--wait", "-o", str(log), "-e", str(log), *args, "--", "python",
                    "-c", "pass", cwd=project)  # fmt: skip
        assert r.returncode == 0, r.stderr + log_text(log)
    assert not REMEMBERED.search(log_text(tmp_path / "1.log"))
    assert REMEMBERED.search(log_text(tmp_path / "2.log")), log_text(tmp_path / "2.log")
    venv = ready(log_text(tmp_path / "2.log")).venv
    # a long job holds it: gc of venvs unused for 30 days keeps it while Slurm has the job
    started, stop, log = tmp_path / "started", tmp_path / "stop", tmp_path / "3.log"
    code = ("import os, sys, time; open(sys.argv[1], 'w').close()\n"
            "while not os.path.exists(sys.argv[2]): time.sleep(0.1)")  # fmt: skip
    r = uvslurm("submit", "--parsable", "-o", str(log), "-e", str(log), *args, "--", "python",
                "-c", code, str(started), str(stop), cwd=project)  # fmt: skip
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip().split(";")[0]
    try:
        wait_for(started.exists, 120, "the long job's command")
        assert REMEMBERED.search(log_text(log))
        old = time.time() - 90 * 86400
        os.utime(venv / depot.USED, (old, old))
        gc = uvslurm("depot", "gc", cwd=project, check=True)
        assert venv.exists() and f"job {job} runs from it" in gc.stderr.replace("\n", " ")
        # the holds of the two jobs that ended went with that gc
        assert [h.job for h in depot.job_holds(venv)] == [job]
        rows = json.loads(uvslurm("depot", "list", "--json", cwd=project, check=True).stdout)
        assert [row["in_use"] for row in rows if row["path"] == str(venv)] == [True]
    finally:
        stop.touch()
    wait_for(lambda: not subprocess.run(["squeue", "-h", "-j", job], capture_output=True,
                                        text=True).stdout.strip(), 120, "the long job's end")  # fmt: skip
    os.utime(venv / depot.USED, (old, old))
    uvslurm("depot", "gc", cwd=project, check=True)
    assert not venv.exists()
