"""The fingerprint: stable under irrelevant change, sensitive to every component, explained."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PROLOG
from uvslurm import fpdiff

LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")


def fingerprint(env: dict[str, str], depot: Path) -> tuple[str, dict[str, str]]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UVSLURM_", "_LMFILES_", "LOADEDMODULES", "MODULEPATH"))
    }
    out = subprocess.run(
        ["bash", str(PROLOG)],
        env={**base, "UVSLURM_DEPOT": str(depot), "UVSLURM_MODE": "fingerprint", "UVSLURM_PROJECT": "", **env},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lines = out.splitlines()
    comps = dict(line.split("=", 1) for line in lines[1:])
    return lines[0].removeprefix("fingerprint="), comps


def test_diff_says_which_module_changed() -> None:
    a = {"modules": "mpich/1.0:tool/a", "python": "3.11", "env.CC": "gcc"}
    b = {"modules": "mpich/2.0:tool/a", "python": "3.12", "env.CC": ""}
    assert fpdiff.explain(a, b) == [
        "loaded modules: mpich/1.0 → mpich/2.0",
        "requested Python: 3.11 → 3.12",
        "$CC: gcc → (unset)",
    ]
    assert fpdiff.explain(a, a) == []


def test_diff_names_cpu_flags() -> None:
    a = {"cpu": "vendor_id=GenuineIntel cpu_family=6 model=85 flags=sse avx avx512f"}
    b = {"cpu": "vendor_id=AuthenticAMD cpu_family=25 model=1 flags=sse avx"}
    (line,) = fpdiff.explain(a, b)
    assert "GenuineIntel → AuthenticAMD" in line and "-avx512f" in line


_irrelevant = st.dictionaries(
    st.sampled_from(["PWD", "SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID", "OLDPWD", "HOSTNAME_X", "_ModuleTable001_", "LMOD_SHLVL", "TERM", "FOO"]),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20),
    max_size=5,
)  # fmt: skip


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(noise=_irrelevant, order=st.permutations(["a/1.0", "b/2.0", "c/3"]))
def test_irrelevant_environment_and_module_order_do_not_matter(
    tmp_path: Path, noise: dict[str, str], order: list[str]
) -> None:
    ref = {
        "LOADEDMODULES": "a/1.0:b/2.0:c/3",
        "_LMFILES_": "/m/a/1.0:/m/b/2.0:/m/c/3",
        "MODULEPATH": "/m",
    }
    shuffled = {
        "LOADEDMODULES": ":".join(order),
        "_LMFILES_": ":".join(f"/m/{m}" for m in order),
        "MODULEPATH": "/m",
        **noise,
    }
    assert fingerprint(shuffled, tmp_path)[0] == fingerprint(ref, tmp_path)[0]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["LOADEDMODULES", "_LMFILES_", "MODULEPATH", "UVSLURM_PYTHON", "UVSLURM_SYNC_ARGS", "UVSLURM_REBUILD", "MY_FLAG"]),
    value=st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=10),
)  # fmt: skip
def test_every_listed_component_changes_the_fingerprint(
    tmp_path: Path, which: str, value: str
) -> None:
    base = {
        "LOADEDMODULES": "a/1",
        "_LMFILES_": "/m/a/1",
        "MODULEPATH": "/m",
        "UVSLURM_FP_ENV": "MY_FLAG",
        "MY_FLAG": "x",
    }
    if base.get(which) == value:
        value += "0"
    assert fingerprint({**base, which: value}, tmp_path)[0] != fingerprint(base, tmp_path)[0]


def test_modules_can_be_left_out(tmp_path: Path) -> None:
    a = fingerprint({"LOADEDMODULES": "a/1", "UVSLURM_FP_MODULES": "0"}, tmp_path)
    b = fingerprint({"LOADEDMODULES": "b/2", "UVSLURM_FP_MODULES": "0"}, tmp_path)
    assert a[0] == b[0] and a[1]["modules"] == ""


def test_command_outputs_are_components(tmp_path: Path) -> None:
    cmds = "echo one\x1e"
    a = fingerprint({"UVSLURM_FP_COMMANDS": cmds, "X": "1"}, tmp_path)
    assert a[1]["cmd.echo one"] == "one"
    b = fingerprint({"UVSLURM_FP_COMMANDS": "echo two\x1e"}, tmp_path)
    assert a[0] != b[0]


@pytest.fixture
def modulepath(tmp_path: Path) -> Path:
    if not LMOD_INIT.exists():
        pytest.skip("Lmod is not installed")
    mp = tmp_path / "modulefiles"
    for v in ("1.0", "2.0"):
        (mp / "mpich").mkdir(parents=True, exist_ok=True)
        (mp / "mpich" / f"{v}.lua").write_text(f'family("mpi")\nsetenv("MPICH_VERSION", "{v}")\n')
    (mp / "tclmod").mkdir()
    (mp / "tclmod" / "1.0").write_text("#%Module1.0\nsetenv TCLMOD_LOADED 1\n")
    return mp


def in_lmod(mp: Path, commands: str, uvslurm_args: str, tmp_path: Path) -> str:
    """Run `uvslurm ARGS` in a bash with Lmod, MODULEPATH=mp, after module purge + commands."""
    script = (
        f"source {LMOD_INIT} && export MODULEPATH={shlex.quote(str(mp))} && module purge && {commands} && "
        f"{shlex.quote(sys.executable)} -m uvslurm {uvslurm_args}"
    )
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "UVSLURM_DEPOT": str(tmp_path / "depot")})  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout


def lmod_fingerprint(mp: Path, commands: str, tmp_path: Path) -> dict[str, object]:
    return json.loads(in_lmod(mp, commands, "fingerprint --json", tmp_path))  # type: ignore[no-any-return]


def test_real_lmod_resolved_names_order_and_tcl_modules(modulepath: Path, tmp_path: Path) -> None:
    default = lmod_fingerprint(modulepath, "module load mpich", tmp_path)
    explicit = lmod_fingerprint(modulepath, "module load mpich/2.0", tmp_path)
    assert default["fingerprint"] == explicit["fingerprint"], "resolved name, not what was typed"
    assert default["components"]["modules"] == "mpich/2.0"  # type: ignore[index]
    one_two = lmod_fingerprint(modulepath, "module load mpich/1.0 tclmod/1.0", tmp_path)
    two_one = lmod_fingerprint(
        modulepath, "module load tclmod/1.0 && module load mpich/1.0", tmp_path
    )
    assert one_two["fingerprint"] == two_one["fingerprint"]
    assert "tclmod/1.0" in one_two["components"]["modules"]  # type: ignore[index]
    # a swap within a family, and a new default version, both change the key
    swapped = lmod_fingerprint(
        modulepath, "module load mpich/1.0 && module load mpich/2.0", tmp_path
    )
    assert swapped["fingerprint"] == explicit["fingerprint"]
    (modulepath / "mpich" / "3.0.lua").write_text('family("mpi")\n')
    assert (
        lmod_fingerprint(modulepath, "module load mpich", tmp_path)["fingerprint"]
        != explicit["fingerprint"]
    )
    # loading and unloading leaves no trace (Lmod unsets LOADEDMODULES, keeps _ModuleTable*)
    none = lmod_fingerprint(modulepath, "true", tmp_path)
    back = lmod_fingerprint(modulepath, "module load mpich/1.0 && module unload mpich", tmp_path)
    assert none["fingerprint"] == back["fingerprint"]


def test_cli_diff_against_a_saved_fingerprint(modulepath: Path, tmp_path: Path) -> None:
    saved = tmp_path / "fp.json"
    saved.write_text(json.dumps(lmod_fingerprint(modulepath, "module load mpich/1.0", tmp_path)))
    out = in_lmod(
        modulepath,
        "module load mpich/2.0",
        f"fingerprint --diff {shlex.quote(str(saved))}",
        tmp_path,
    )
    assert "loaded modules: mpich/1.0 → mpich/2.0" in out


def _first_cpu_block() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if not line.strip():
            break
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def test_machine_components_come_from_this_machine(tmp_path: Path) -> None:
    """CPU, glibc, OS, architecture and uv version: each read from the machine itself."""
    import platform

    _, comps = fingerprint({}, tmp_path / "depot")
    cpu = _first_cpu_block()
    if "vendor_id" in cpu:
        assert f"vendor_id={cpu['vendor_id']} " in comps["cpu"], comps["cpu"]
        assert f"model={cpu['model']} " in comps["cpu"]
        assert comps["cpu"].endswith(f"flags={cpu['flags']}"), comps["cpu"]
    glibc = subprocess.run(["getconf", "GNU_LIBC_VERSION"], capture_output=True, text=True)
    assert comps["glibc"] == glibc.stdout.strip()
    osr = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    assert comps["os"] == f"{osr['ID'].strip(chr(34))}-{osr['VERSION_ID'].strip(chr(34))}"
    assert comps["arch"] == platform.machine()
    uv = subprocess.run(["uv", "--version"], capture_output=True, text=True).stdout.strip()
    assert comps["uv"] == uv


@pytest.mark.parametrize("fact", ["cpu", "glibc", "os", "uv"])
def test_each_machine_fact_is_part_of_the_key(tmp_path: Path, fact: str) -> None:
    """The machine facts come from the per-boot cache when it is there: a node that differs in
    any one of them (another CPU, glibc, OS or uv) gets another fingerprint."""
    depot = tmp_path / "depot"
    fp, comps = fingerprint({}, depot)
    (cache,) = (depot / ".facts").iterdir()
    lines = cache.read_text().splitlines()
    changed = []
    for line in lines:
        key, _, value = line.partition("=")
        if key == fact:
            # the uv line is "<path> <version>": another version of the same binary
            value = value + " other"
        changed.append(f"{key}={value}")
    cache.write_text("\n".join(changed) + "\n")
    other, other_comps = fingerprint({}, depot)
    assert other_comps[fact] != comps[fact], (fact, other_comps[fact])
    assert other != fp, f"a different {fact} gave the same fingerprint"
