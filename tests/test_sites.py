"""What a site's own Slurm says, with real sbatch and srun on the dev cluster: the options its
sbatch lists, sbatch's own --profile, #SBATCH lines in a .py file, srun with the config."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Cluster, uvslurm

pytestmark = pytest.mark.slurm


def _job_info(cluster: Cluster, job: str) -> dict[str, str]:
    out = cluster.run("scontrol", "show", "job", "-o", job).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


@pytest.fixture
def held(cluster: Cluster) -> Iterator[list[str]]:
    """Job ids to cancel after the test (held jobs never run)."""
    jobs: list[str] = []
    yield jobs
    for job in jobs:
        cluster.run("scancel", job)


def test_sbatch_lines_of_a_py_file_are_honoured(
    cluster: Cluster, project: Path, held: list[str]
) -> None:
    (project / "train.py").write_text(
        "#!/usr/bin/env python3\n# a comment, then blank lines\n\n#SBATCH --time=00:07:00\n"
        "#SBATCH --job-name=pyhdr  # sbatch's own comment\nimport sys\n#SBATCH --comment=late\n"
        "print('ran')\n"
    )
    r = uvslurm("submit", "--parsable", "--hold", "train.py", cwd=project)
    assert r.returncode == 0, r.stderr
    held.append(r.stdout.strip())
    info = _job_info(cluster, held[0])
    assert (info["TimeLimit"], info["JobName"]) == ("00:07:00", "pyhdr")
    # sbatch stops at the first line of code: so does uvslurm
    assert info.get("Comment", "(null)") == "(null)"
    # the command line wins over the file, as over a batch script's lines
    r = uvslurm("submit", "--parsable", "--hold", "-t", "00:05:00", "train.py", cwd=project)
    assert r.returncode == 0, r.stderr
    held.append(r.stdout.strip())
    assert _job_info(cluster, held[1])["TimeLimit"] == "00:05:00"


def test_a_bad_sbatch_line_in_a_py_file_names_the_file_and_line(
    cluster: Cluster, project: Path
) -> None:
    (project / "train.py").write_text("#!/usr/bin/env python3\n#SBATCH --tme=5\nprint(1)\n")
    r = uvslurm("submit", "train.py", cwd=project)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "uvslurm: error: train.py, line 2: unknown sbatch option '--tme'; did you mean '--time'?"
    ]


@pytest.mark.parametrize("form", [["--profile=all"], ["--profile", "all"]])
def test_sbatchs_own_profile_reaches_the_job(
    cluster: Cluster, project: Path, tmp_path: Path, form: list[str]
) -> None:
    (project / "train.py").write_text("import os\nprint('PROFILE', os.environ['SLURM_PROFILE'])\n")
    log = tmp_path / "job.log"
    r = uvslurm("submit", "--wait", "-o", str(log), *form, "train.py", cwd=project)
    assert r.returncode == 0, r.stderr + log.read_text()
    # sbatch expands "all" for the job's environment
    assert "PROFILE Energy,Lustre,Network,Task" in log.read_text()


def test_the_old_profile_spelling_is_one_clear_line(cluster: Cluster, project: Path) -> None:
    with (project / "pyproject.toml").open("a") as f:
        f.write('\n[tool.uvslurm.profiles.gpu]\ntime = "5"\n')
    r = uvslurm("submit", "--profile", "gpu", "train.py", cwd=project)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert "--profile: invalid value 'gpu'" in line
    assert "--uvslurm-profile NAME" in line
    # the new spelling selects it
    r = uvslurm("submit", "--dry-run", "--uvslurm-profile", "gpu", "train.py", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --time=5\n" in r.stdout


def _wrapper(tmp_path: Path, extra: str) -> tuple[Path, Path]:
    """A site whose sbatch knows one more option than this Slurm release: the real sbatch
    behind a wrapper whose --help lists `extra` too. Returns (its bin dir, its call log)."""
    real = subprocess.run(["sh", "-c", "command -v sbatch"], capture_output=True, text=True)
    bindir = tmp_path / "sitebin"
    bindir.mkdir()
    calls = tmp_path / "sbatch-calls"
    sb = bindir / "sbatch"
    sb.write_text(
        "#!/bin/bash\n"
        f"echo \"$1\" >> '{calls}'\n"
        'if [ "$1" = --help ]; then\n'
        f"  '{real.stdout.strip()}' --help\n"
        f"  echo '      --{extra}=n      a newer release''s option'\n"
        "  exit 0\n"
        "fi\n"
        f"exec '{real.stdout.strip()}' \"$@\"\n"
    )
    sb.chmod(sb.stat().st_mode | stat.S_IEXEC)
    return bindir, calls


def test_the_sites_own_sbatch_decides_which_options_exist(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    bindir, calls = _wrapper(tmp_path, "segment")
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    # listed by this site's sbatch (and unknown to simple-slurm): accepted, on the command
    # line, through --sbatch-arg and in #SBATCH lines
    (project / "job.sh").write_text("#!/bin/bash\n#SBATCH --segment=4\necho hi\n")
    for args in (["--segment=2", "train.py"], ["--sbatch-arg=--segment=3", "train.py"],
                 ["job.sh"]):  # fmt: skip
        r = uvslurm("submit", "--dry-run", *args, cwd=project, env=env)
        assert r.returncode == 0, r.stderr
        assert re.search(r"^#SBATCH --segment=[234]$", r.stdout, re.M), args
    # its --help was read once, then kept in the cache (per sbatch executable)
    assert calls.read_text().split().count("--help") == 1
    cached = list((Path(os.environ["XDG_CACHE_HOME"]) / "uvslurm" / "sbatch-options").iterdir())
    assert len(cached) == 1
    # a new sbatch (another file) is asked again
    os.utime(bindir / "sbatch", ns=(0, 0))
    r = uvslurm("submit", "--dry-run", "--segment=2", "train.py", cwd=project, env=env)
    assert r.returncode == 0, r.stderr
    assert calls.read_text().split().count("--help") == 2
    # a cache file others could have written is not believed: sbatch is asked again
    for f in cached[0].parent.iterdir():
        f.chmod(0o666)
    r = uvslurm("submit", "--dry-run", "--segment=2", "train.py", cwd=project, env=env)
    assert r.returncode == 0, r.stderr
    assert calls.read_text().split().count("--help") == 3
    # an option this site does not know: refused, with the site's closest option
    r = uvslurm("submit", "--dry-run", "--sgment=2", "train.py", cwd=project, env=env)
    assert r.returncode == 2
    assert r.stderr.strip().endswith("did you mean '--segment'?")
    # the real sbatch of this cluster (22.05) has no --segment nor --tres-bind
    for opt in ("--segment=2", "--tres-bind=gres/gpu:closest"):
        r = uvslurm("submit", "--dry-run", f"--sbatch-arg={opt}", "train.py", cwd=project)
        assert r.returncode == 2, opt
        (line,) = r.stderr.strip().splitlines()
        assert f"unknown sbatch option '{opt.split('=')[0]}' (this site's sbatch" in line
    # options 22.05's sbatch accepts without listing them in --help stay usable
    r = uvslurm("submit", "--dry-run", "--open-mode=append", "--hint=nomultithread",
                "train.py", cwd=project)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --open-mode=append\n" in r.stdout


def test_srun_applies_the_config_and_profile_and_leaves_no_copies(
    cluster: Cluster, project: Path, isolated_user: Path
) -> None:
    with (project / "pyproject.toml").open("a") as f:
        f.write(
            '\n[tool.uvslurm.sbatch]\npartition = "debug"\ntime = "00:09:00"\narray = "1-3"\n'
            '[tool.uvslurm.profiles.tagged]\ncomment = "from-profile"\n'
        )
    show = "scontrol show job -o $SLURM_JOB_ID"
    r = uvslurm("srun", "--uvslurm-profile", "tagged", "--", "bash", "-c", show, cwd=project)
    assert r.returncode == 0, r.stderr
    info = dict(f.split("=", 1) for f in r.stdout.split() if "=" in f)
    assert (info["Partition"], info["TimeLimit"], info["Comment"]) == (
        "debug",
        "00:09:00",
        "from-profile",
    )
    assert "left out: --array (from the config)" in r.stderr
    # srun's own options win over the config's
    r = uvslurm("srun", "-t", "00:08:00", "--", "bash", "-c", show, cwd=project)
    assert r.returncode == 0, r.stderr
    assert "TimeLimit=00:08:00" in r.stdout
    state = isolated_user / "state"
    assert not [p for p in state.rglob("srun-*")], "a copy of the srun script was left behind"
