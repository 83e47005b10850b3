"""`uvslurm prepare` runs the real prolog here from an unnamed file (nodeenv.prolog_file), not
as `bash -c`'s argument: one argument of an exec holds at most MAX_ARG_STRLEN (128 KiB on
Linux), and the prolog (116 KB in November 2026) will outgrow it."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ready_lines
from uvslurm import cli, prolog

MAX_ARG_STRLEN = 128 * 1024


def bigger(text: str, size: int = 200_000) -> str:
    """`text` with `size` bytes of comment lines after its first line: the rest of the prolog
    stays at its end, where _uvslurm_load looks for it."""
    first, _, tail = text.partition("\n")
    filler = "# " + "-" * 97 + "\n"
    return f"{first}\n{filler * (size // len(filler))}{tail}"


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "no-memfd"])
def test_a_prolog_bigger_than_one_argument_can_hold_still_prepares(
    memfd: bool,
    project: Path,
    isolated_user: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A cold prepare (which reads the rest of the prolog again, from the file bash runs), then a
    warm one, of a prolog text past 128 KiB; without memfd_create, from a temporary file."""
    big = bigger(prolog.text())
    assert len(big.encode()) > MAX_ARG_STRLEN + 64 * 1024
    # the way `prepare` ran it before: the kernel refuses such an argument
    with pytest.raises(OSError) as e:
        subprocess.run(["bash", "-c", big, "uvslurm-prolog"], capture_output=True)
    assert e.value.errno == errno.E2BIG
    monkeypatch.setattr(prolog, "text", lambda: big)
    if not memfd:  # a Python built against a glibc older than 2.27
        monkeypatch.delattr(os, "memfd_create", raising=False)
    monkeypatch.chdir(project)
    states = []
    for _ in range(2):
        assert cli.main(["prepare", "--no-node-local"]) == 0
        out, err = capfd.readouterr()
        [ready] = ready_lines(err)
        states.append(ready.state)
        venv = Path(out.strip().splitlines()[-1])
        assert venv == ready.venv and venv.is_relative_to(isolated_user / "scratch"), err
        r = subprocess.run([venv / "bin" / "python", "-c", "import six; print(six.__name__)"],
                           capture_output=True, text=True)  # fmt: skip
        assert r.stdout == "six\n", r.stderr
    assert states == ["cold", "warm"]
