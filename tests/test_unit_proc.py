"""proc.py, the one place that starts processes: real processes, no fakes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uvslurm import proc
from uvslurm.errors import UvslurmError


def test_clean_env_drops_an_active_venv_and_adds_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", "/some/venv")
    monkeypatch.setenv("KEEP", "1")
    env = proc.clean_env(EXTRA="x y")
    assert "VIRTUAL_ENV" not in env
    assert (env["KEEP"], env["EXTRA"]) == ("1", "x y")
    assert os.environ["VIRTUAL_ENV"] == "/some/venv"  # ours is left alone
    assert proc.clean_env() == {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}


def test_call_captures_stdout_and_leaves_stderr_to_the_user(
    capfd: pytest.CaptureFixture[str],
) -> None:
    code, out = proc.call(["sh", "-c", 'echo "out $X"; echo log >&2; exit 75'], env={"X": "y"})
    assert (code, out) == (75, "out y\n")
    assert capfd.readouterr().err == "log\n"
    assert proc.call(["true"]) == (0, "")


def test_run_and_call_keep_only_the_descriptors_passed(tmp_path: Path) -> None:
    """What they pass reads at its own number; another descriptor of ours does not reach it."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "seen").touch()
    kept = os.open(d, os.O_RDONLY)
    other = os.open(d, os.O_RDONLY)
    try:
        ls = ["sh", "-c", 'ls "/dev/fd/$1/"; ls "/dev/fd/$2/" 2>/dev/null || echo closed', "sh"]
        argv = [*ls, str(kept), str(other)]
        assert proc.run(argv, pass_fds=(kept,)) == "seen\nclosed\n"
        assert proc.call(argv, pass_fds=(kept,)) == (0, "seen\nclosed\n")
        assert proc.run(argv) == "closed\n"
    finally:
        os.close(kept)
        os.close(other)


def test_call_of_a_missing_program(tmp_path: Path) -> None:
    with pytest.raises(UvslurmError) as e:
        proc.call([str(tmp_path / "nope")])
    assert e.value.message == f"cannot run {tmp_path / 'nope'}: not found"


def test_cannot_run_says_why_in_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x7fELF not really")
    garbage.chmod(0o755)
    with pytest.raises(UvslurmError) as e:
        proc.run([str(garbage)])
    assert e.value.message == f"cannot run {garbage}: exec format error"


def test_probe_answers_whatever_the_exit_code() -> None:
    p = proc.probe(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert p == proc.Probe(3, "out\n", "err\n")
    assert proc.probe(["sh", "-c", 'printf %s "$X"'], timeout=10, env={"X": "z"}) == proc.Probe(
        0, "z", ""
    )


def test_probe_of_a_slow_or_missing_program_is_none(tmp_path: Path) -> None:
    start = time.monotonic()
    assert proc.probe(["sleep", "5"], timeout=0.2) is None
    assert time.monotonic() - start < 3
    assert proc.probe([str(tmp_path / "nope")], timeout=5) is None


def test_stream_reads_while_the_process_runs() -> None:
    s = proc.Stream(["sh", "-c", "echo 42; echo early >&2; sleep 0.5; echo late >&2; exit 3"])
    assert s.readline() == "42\n"
    assert s.running()
    while s.running():
        time.sleep(0.05)
    assert s.finish() == (3, "early\nlate\n")
    assert s.readline() == ""


def test_stream_of_a_missing_program(tmp_path: Path) -> None:
    with pytest.raises(UvslurmError, match=r"^cannot run .*nope: not found$"):
        proc.Stream([str(tmp_path / "nope"), "--wait"])


def test_exec_replaces_the_process_after_flushing_what_was_printed() -> None:
    code = (
        "import sys; from uvslurm import proc; print('before'); sys.stderr.write('e ');"
        "proc.exec(['/bin/sh', '-c', 'echo replaced $0 $1; echo $$ >&2; exit 7', 'a', 'b'])"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    out, err = p.communicate(timeout=30)
    assert (p.returncode, out) == (7, "before\nreplaced a b\n")
    assert err == f"e {p.pid}\n"  # the same process, now running sh


def test_exec_of_a_missing_program_is_an_error_here(tmp_path: Path) -> None:
    with pytest.raises(UvslurmError) as e:
        proc.exec([str(tmp_path / "srun"), "--pty", "bash"])
    assert e.value.message == f"cannot run {tmp_path / 'srun'}: not found"


def _sbatch(tmp_path: Path, body: str) -> str:
    fake = tmp_path / "sbatch"
    fake.write_text(f"#!/bin/sh\n{body}\n")
    fake.chmod(0o755)
    return str(fake)


def test_submit_wait_reads_sbatch_while_it_waits(tmp_path: Path) -> None:
    from uvslurm import slurm

    sbatch = _sbatch(tmp_path, 'echo "42;cluster"; sleep 0.3; echo "$*" >&2; exit 3')
    seen: list[str] = []
    job = slurm.submit_wait(sbatch, tmp_path / "job.sh", ["a b"], seen.append, stream=False)
    assert (job, seen) == (("42", 3), ["42"])
    refuse = _sbatch(tmp_path, "echo 'sbatch: error: first' >&2; echo 'sbatch: error: last' >&2")
    with pytest.raises(UvslurmError) as e:
        slurm.submit_wait(refuse, tmp_path / "job.sh", [], seen.append, stream=False)
    assert e.value.message == "sbatch refused the job: sbatch: error: last"
    assert seen == ["42"]
