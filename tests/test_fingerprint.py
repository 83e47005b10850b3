"""The fingerprint: stable under irrelevant change, sensitive to every component, explained."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import LMOD_INIT, PROLOG, Cluster, log_text, ready, uvslurm
from uvslurm import fpdiff


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
        "Python: 3.11 → 3.12",
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
    which=st.sampled_from(["LOADEDMODULES", "_LMFILES_", "UVSLURM_PYTHON", "UVSLURM_SYNC_ARGS", "UVSLURM_REBUILD", "MY_FLAG"]),
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
    """CPU, glibc, OS, architecture, Python and uv: each read from the machine itself."""
    import platform

    _, comps = fingerprint({"UVSLURM_PYTHON": "3.11"}, tmp_path / "depot")
    assert comps["cpu"].startswith(f"microarch={archspec_host()} flags="), comps["cpu"]
    glibc = subprocess.run(["getconf", "GNU_LIBC_VERSION"], capture_output=True, text=True)
    assert comps["glibc"] == glibc.stdout.strip()
    osr = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    assert comps["os"] == f"{osr['ID'].strip(chr(34))}-{osr['VERSION_ID'].strip(chr(34))}"
    assert comps["arch"] == platform.machine()
    uv = subprocess.run(["uv", "--version"], capture_output=True, text=True).stdout.split()[1]
    assert comps["uv"] == ".".join(uv.split(".")[:2])
    assert comps["python"] == expected_python(os.environ["PATH"], "3.11")


def archspec_host() -> str:
    import archspec.cpu

    return str(archspec.cpu.host())


def expected_python(path: str, request: str) -> str:
    """What uv finds for `request` on `path`, as the fingerprint names it."""
    exe = subprocess.run(["uv", "python", "find", "--system", request], env={**os.environ, "PATH": path},
                         capture_output=True, text=True, check=True, cwd="/").stdout.strip()  # fmt: skip
    code = "import sys, os; print(sys.implementation.name, '%d.%d.%d' % sys.version_info[:3], os.path.realpath(sys.base_prefix))"  # fmt: skip
    impl, version, prefix = subprocess.run([exe, "-I", "-c", code], capture_output=True, text=True,
                                           check=True).stdout.split()  # fmt: skip
    return f"{impl}-{version} {prefix}"


@pytest.mark.parametrize("fact", ["cpu", "glibc", "uv"])
def test_each_machine_fact_is_part_of_the_key(tmp_path: Path, fact: str) -> None:
    """The machine facts come from their cache when it is there: a node that differs in any
    one of them (another CPU, glibc or uv) gets another fingerprint."""
    depot = tmp_path / "depot"
    fp, comps = fingerprint({}, depot)
    (cache,) = (depot / ".facts").iterdir()
    lines = cache.read_text().splitlines()
    changed = []
    for line in lines:
        key, _, value = line.partition("=")
        if key == fact:
            # the uv line is "<path> uv <version> (...)": another minor version of that binary
            value = value.replace(" uv 0.", " uv 0.9") if fact == "uv" else value + " other"
        changed.append(f"{key}={value}")
    cache.write_text("\n".join(changed) + "\n")
    other, other_comps = fingerprint({}, depot)
    assert other_comps[fact] != comps[fact], (fact, other_comps[fact])
    assert other != fp, f"a different {fact} gave the same fingerprint"


# --- the pieces, one at a time ------------------------------------------------------------

SECTIONS = Path(__file__).resolve().parent.parent / "src" / "uvslurm" / "resources" / "prolog"
# flags Linux adds or hides by kernel and hypervisor, which no compiler targets
KERNEL_FLAGS = "rep_good nopl cpuid tsc_known_freq hypervisor constant_tsc nonstop_tsc xtopology"


def in_prolog(code: str, env: dict[str, str] | None = None) -> str:
    """Run bash `code` with the prolog's functions defined (its sections, not its main)."""
    srcs = " ".join(f"source {shlex.quote(str(SECTIONS / s))};" for s in ("lib.sh", "fingerprint.sh", "build.sh"))  # fmt: skip
    r = subprocess.run(["bash", "-c", f"{srcs} {code}"], capture_output=True, text=True,
                       env={**os.environ, **(env or {})})  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout


def cpu_component(cpuinfo: str, tmp_path: Path, hosttype: str = "x86_64") -> str:
    f = tmp_path / f"cpuinfo-{abs(hash(cpuinfo))}"
    f.write_text(cpuinfo)
    return in_prolog(f'HOSTTYPE={hosttype}; _uvslurm_cpu c {shlex.quote(str(f))}; printf %s "$c"')


def x86_cpuinfo(vendor: str, flags: str) -> str:
    block = f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: 6\nmodel\t\t: 85\nflags\t\t: {flags}\n"
    return block + "\n" + block.replace(": 0", ": 1", 1)


def archspec_choice(vendor: str, flags: str, machine: str = "x86_64", part: str = "") -> str:
    """archspec's own answer for a CPU of this vendor and these flags (its host(), fed them)."""
    from unittest import mock

    from archspec.cpu import detect

    info = detect.partial_uarch(vendor=vendor, features=set(flags.split()), cpu_part=part)
    with mock.patch.object(detect, "_machine", return_value=machine), \
            mock.patch.object(detect, "detected_info", return_value=info):  # fmt: skip
        return str(detect.host.__wrapped__())  # type: ignore[attr-defined]


def test_the_microarchitecture_table_is_archspecs_current_data() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "mt", SECTIONS.parents[3] / "scripts" / "microarch_table.py"
    )
    assert spec and spec.loader
    mt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mt)
    text = (SECTIONS / "fingerprint.sh").read_text()
    assert mt.block(mt._data()) in text, "run `uv run python scripts/microarch_table.py`"


def test_microarchitecture_agrees_with_archspec_for_every_x86_target(tmp_path: Path) -> None:
    """Fed each x86_64 target's own features (plus kernel flags), the prolog names what
    archspec names: one algorithm, in bash and in archspec's Python."""
    import archspec.cpu

    cases = []
    for t in archspec.cpu.TARGETS.values():
        if t.family.name != "x86_64":
            continue
        vendor = t.vendor if t.vendor != "generic" else "GenuineIntel"
        cases.append((vendor, " ".join(sorted(t.features)) + " " + KERNEL_FLAGS))
    cases.append(("AuthenticAMD", _first_cpu_block().get("flags", "")))
    files = []
    for i, (vendor, flags) in enumerate(cases):
        f = tmp_path / f"c{i}"
        f.write_text(x86_cpuinfo(vendor, flags))
        files.append(shlex.quote(str(f)))
    out = in_prolog(
        f'HOSTTYPE=x86_64; for f in {" ".join(files)}; do _uvslurm_cpu c "$f"; echo "${{c%% *}}"; done'
    )
    got = [line.removeprefix("microarch=") for line in out.splitlines()]
    assert got == [archspec_choice(v, fl) for v, fl in cases]
    assert len(set(got)) > 20, got


def test_microarchitecture_agrees_with_archspec_on_aarch64(tmp_path: Path) -> None:
    import archspec.cpu

    for name in ("neoverse_v1", "neoverse_n1", "a64fx", "aarch64"):
        t = archspec.cpu.TARGETS[name]
        impl = {"ARM": "0x41", "Fujitsu": "0x46"}.get(t.vendor, "0x00")
        part = t.cpu_part or "0xfff"
        info = (f"processor\t: 0\nFeatures\t: {' '.join(sorted(t.features))}\n"
                f"CPU implementer\t: {impl}\nCPU architecture: 8\nCPU part\t: {part}\n\n")  # fmt: skip
        vendor = {"0x41": "ARM", "0x46": "Fujitsu"}.get(impl, impl)
        expected = archspec_choice(vendor, " ".join(t.features), "aarch64", part)
        assert cpu_component(info, tmp_path, "aarch64").split()[0] == f"microarch={expected}"


def test_kernel_flags_keep_the_key_and_another_microarchitecture_changes_it(tmp_path: Path) -> None:
    """rep_good, nopl, cpuid, tsc_known_freq... vary with kernels and hypervisors, not with what
    a compiler may use: they leave the CPU component alone. Without avx512 the CPU is another
    microarchitecture: another key. Checked through the fingerprint itself, fed each CPU by its
    facts cache."""
    import archspec.cpu

    sky = " ".join(sorted(archspec.cpu.TARGETS["skylake_avx512"].features))
    plain = cpu_component(x86_cpuinfo("GenuineIntel", sky), tmp_path)
    kernel = cpu_component(x86_cpuinfo("GenuineIntel", "rep_good nopl " + sky + " cpuid tsc_known_freq"), tmp_path)  # fmt: skip
    no512 = " ".join(f for f in sky.split() if not f.startswith("avx512"))
    older = cpu_component(x86_cpuinfo("GenuineIntel", no512), tmp_path)
    assert plain == kernel and plain.startswith("microarch=skylake_avx512 ")
    assert "rep_good" not in kernel and "tsc_known_freq" not in kernel
    assert older.startswith("microarch=skylake ") and older != plain

    depot = tmp_path / "depot"
    fingerprint({}, depot)
    (facts,) = (depot / ".facts").iterdir()

    def key_with(cpu: str) -> tuple[str, dict[str, str]]:
        lines = [
            f"cpu={cpu}" if x.startswith("cpu=") else x for x in facts.read_text().splitlines()
        ]
        facts.write_text("\n".join(lines) + "\n")
        return fingerprint({}, depot)

    (a, _), (b, _), (c, comps) = key_with(plain), key_with(kernel), key_with(older)
    assert a == b and a != c
    saved = tmp_path / "fp.json"
    saved.write_text(json.dumps({"components": {**comps, "cpu": plain}}))
    assert fpdiff.explain(json.loads(saved.read_text())["components"], comps) == [
        "CPU: microarch skylake_avx512 → skylake; flags -avx512bw -avx512cd -avx512dq -avx512f -avx512vl"
    ]


def test_modulepath_alone_does_not_change_the_key(tmp_path: Path) -> None:
    base = {"LOADEDMODULES": "a/1", "_LMFILES_": "/m/a/1.lua", "MODULEPATH": "/m"}
    assert (
        fingerprint({**base, "MODULEPATH": "/m:/other"}, tmp_path)[0]
        == fingerprint(base, tmp_path)[0]
    )


def test_ignored_modules_leave_the_key_alone(tmp_path: Path) -> None:
    """fingerprint.ignore-modules: names or patterns, with or without the version; the
    modulefile of an ignored module goes with it (they pair by position)."""
    base = {"LOADEDMODULES": "gcc/12:mpich/1.0", "_LMFILES_": "/m/gcc/12.lua:/m/mpich/1.0.lua"}
    more = {"LOADEDMODULES": "git/2.40:gcc/12:tmux/3.3:mpich/1.0",
            "_LMFILES_": "/m/git/2.40.lua:/m/gcc/12.lua:/m/tmux/3.3.lua:/m/mpich/1.0.lua"}  # fmt: skip
    ref = fingerprint(base, tmp_path)
    ignored = fingerprint({**more, "UVSLURM_FP_IGNORE": "git tmux/3.*"}, tmp_path)
    assert ignored == ref
    counted = fingerprint({**more, "UVSLURM_FP_IGNORE": "git"}, tmp_path)
    assert counted[0] != ref[0]
    assert counted[1]["modules"] == "gcc/12:mpich/1.0:tmux/3.3"
    assert counted[1]["modulefiles"] == "/m/gcc/12.lua:/m/mpich/1.0.lua:/m/tmux/3.3.lua"
    assert fpdiff.explain(ref[1], counted[1]) == [
        "loaded modules: +tmux/3.3",
        "modulefiles: +/m/tmux/3.3.lua",
    ]
    # a pattern is never a file name of the current directory
    (tmp_path / "gitx").write_text("")
    assert fingerprint({**more, "UVSLURM_FP_IGNORE": "git* tmux"}, tmp_path) == ref


PYENV_311 = Path("/root/.pyenv/versions/3.11.7/bin/python3.11")
SYSTEM_311 = Path("/usr/bin/python3.11")


def two_pythons() -> tuple[Path, Path]:
    """Two CPython 3.11 installations of this machine (Debian's and pyenv's)."""
    if not (PYENV_311.exists() and SYSTEM_311.exists()):
        pytest.skip("needs /usr/bin/python3.11 and pyenv's 3.11.7")
    return SYSTEM_311, PYENV_311


def python_first(tmp_path: Path, exe: Path, name: str) -> str:
    """A PATH whose first directory holds only `exe` (as python3.11 and python3)."""
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    for n in ("python3.11", "python3"):
        if not (d / n).exists():
            (d / n).symlink_to(exe)
    return f"{d}:{os.environ['PATH']}"


def test_the_python_is_the_one_uv_finds_on_this_path(tmp_path: Path) -> None:
    """Two shells whose PATH finds different Pythons for one request get different keys; each
    names the interpreter uv would build the venv with."""
    system, pyenv = two_pythons()
    depot = tmp_path / "depot"
    a = fingerprint({"PATH": python_first(tmp_path, system, "a"), "UVSLURM_PYTHON": "3.11"}, depot)
    b = fingerprint({"PATH": python_first(tmp_path, pyenv, "b"), "UVSLURM_PYTHON": "3.11"}, depot)
    assert a[1]["python"] == "cpython-3.11.2 /usr"
    assert b[1]["python"] == "cpython-3.11.7 /root/.pyenv/versions/3.11.7"
    assert a[0] != b[0]
    assert fpdiff.explain(a[1], b[1]) == [
        "Python: cpython-3.11.2 /usr → cpython-3.11.7 /root/.pyenv/versions/3.11.7"
    ]


def _execs(env: dict[str, str], depot: Path, tmp_path: Path) -> list[str]:
    trace = tmp_path / "trace"
    base = {k: v for k, v in os.environ.items() if not k.startswith("UVSLURM_")}
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", str(trace), "bash", str(PROLOG)],
                   env={**base, "UVSLURM_DEPOT": str(depot), "UVSLURM_MODE": "fingerprint", "UVSLURM_PROJECT": "", **env},
                   check=True, capture_output=True)  # fmt: skip
    return [
        os.path.basename(line.split('execve("', 1)[1].split('"', 1)[0])
        for line in trace.read_text().splitlines()
        if 'execve("' in line and " = -1 " not in line
    ]


def test_the_python_found_is_remembered_until_what_decides_it_changes(tmp_path: Path) -> None:
    """Finding the interpreter takes uv and the interpreter: done once, then remembered per
    request and PATH (no process). A Python that appears in a directory of PATH (its mtime)
    makes uv look again."""
    if not shutil.which("strace"):
        pytest.skip("needs strace")
    system, pyenv = two_pythons()
    depot = tmp_path / "depot"
    empty = tmp_path / "first"
    empty.mkdir()
    env = {"PATH": f"{empty}:{python_first(tmp_path, system, 'sys')}", "UVSLURM_PYTHON": "3.11"}
    assert "uv" in _execs(env, depot, tmp_path)
    # (sha256sum: the fingerprint's hash, outside a project)
    assert _execs(env, depot, tmp_path) == ["bash", "sha256sum"]
    assert fingerprint(env, depot)[1]["python"] == "cpython-3.11.2 /usr"
    (empty / "python3.11").symlink_to(pyenv)
    assert fingerprint(env, depot)[1]["python"] == "cpython-3.11.7 /root/.pyenv/versions/3.11.7"
    # another request on the same PATH is another question
    other = fingerprint({**env, "UVSLURM_PYTHON": "3.99"}, depot)[1]["python"]
    assert other == "none found for '3.99' (uv may download one)"


def test_facts_follow_the_os_release_and_uv_binary_they_come_from(tmp_path: Path) -> None:
    """The facts cache is keyed on what it is read from: another /etc/os-release (a container,
    a mount namespace: here `unshare -m` and a bind mount) or another uv binary gets its own
    facts, and the host's stay as they were."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a mount namespace")
    depot = tmp_path / "depot"
    host = fingerprint({}, depot)
    fake = tmp_path / "os-release"
    fake.write_text('ID="rocky"\nVERSION_ID="9.4"\n')
    base = {k: v for k, v in os.environ.items() if not k.startswith("UVSLURM_")}
    script = f"mount --bind {shlex.quote(str(fake))} /etc/os-release && exec bash {shlex.quote(str(PROLOG))}"
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script],
                       env={**base, "UVSLURM_DEPOT": str(depot), "UVSLURM_MODE": "fingerprint", "UVSLURM_PROJECT": ""},
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    inside = dict(line.split("=", 1) for line in r.stdout.splitlines()[1:])
    assert inside["os"] == "rocky-9.4"
    assert r.stdout.splitlines()[0] != f"fingerprint={host[0]}"
    facts = sorted(p.name for p in (depot / ".facts").iterdir())
    assert len(facts) == 2 and any("-rocky-9.4-" in n for n in facts), facts
    assert fingerprint({}, depot) == host
    # another uv binary (a copy: another inode) has facts of its own
    uv = tmp_path / "uv"
    shutil.copy2(shutil.which("uv") or "", uv)
    assert fingerprint({"UVSLURM_UV": str(uv)}, depot)[0] == host[0]
    assert len(list((depot / ".facts").iterdir())) == 3


def test_uv_counts_by_its_minor_version() -> None:
    out = in_prolog('for v in "uv 0.13.9 (x 2026-01-01)" "uv 0.13.10" "uv 0.14.0" "uv 1.2.3 (y)"; do '
                    '_uvslurm_uvlayout x "$v"; echo "$x"; done')  # fmt: skip
    assert out.split() == ["0.13", "0.13", "0.14", "1"]


def test_gpu_models_of_the_driver(tmp_path: Path) -> None:
    for i, model in enumerate(
        ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB", "NVIDIA H100 80GB HBM3"]
    ):
        d = tmp_path / "gpus" / f"0000:0{i}:00.0"
        d.mkdir(parents=True)
        (d / "information").write_text(f"Model: \t\t {model}\nIRQ:   42\nBus Type:\t PCIe\n")
    out = in_prolog(f'_uvslurm_gpus g {shlex.quote(str(tmp_path / "gpus"))}; printf %s "$g"')
    assert out == "NVIDIA A100-SXM4-40GB, NVIDIA H100 80GB HBM3, NVIDIA H100 80GB HBM3"
    assert in_prolog(f'_uvslurm_gpus g {shlex.quote(str(tmp_path / "none"))}; printf %s "$g"') == ""


def test_diff_names_each_component(modulepath: Path, tmp_path: Path) -> None:
    """`fingerprint --diff` against a saved fingerprint with every machine component changed:
    one line per component, each named."""
    here = lmod_fingerprint(modulepath, "module load mpich/1.0", tmp_path)
    comps = dict(here["components"])  # type: ignore[call-overload]
    old = {**comps, "modules": "mpich/2.0", "python": "cpython-3.12.1 /usr", "uv": "0.12",
           "glibc": "glibc 2.28", "os": "rocky-8.10", "gpu": "NVRM 535; GPUs: NVIDIA A100",
           "cpu": comps["cpu"].replace("microarch=", "microarch=old")}  # fmt: skip
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps({"fingerprint": "x", "components": old}))
    out = in_lmod(
        modulepath,
        "module load mpich/1.0",
        f"fingerprint --diff {shlex.quote(str(saved))}",
        tmp_path,
    )
    labels = [line.split(":", 1)[0] for line in out.splitlines()]
    assert labels == ["loaded modules", "CPU", "glibc", "OS", "Python", "uv", "GPU"], out


# --- real jobs on the dev cluster ---------------------------------------------------------

PY_REPORT = "import platform, sys; print('PY', platform.python_version(), sys.prefix)"


def _job_python(log: Path) -> tuple[str, str]:
    m = re.search(r"^PY (\S+) (\S+)$", log_text(log), re.M)
    assert m, log_text(log)[-2000:]
    return m.group(1), m.group(2)


@pytest.mark.slurm
@pytest.mark.parametrize("first", ["system", "pyenv"])
def test_shells_with_different_pythons_get_their_own_venvs_whichever_runs_first(
    cluster: Cluster, project: Path, tmp_path: Path, first: str
) -> None:
    """Two shells whose PATH finds another CPython 3.11 for the project's request: each job
    runs its shell's Python, in a venv of its own, in either order; run again, each is warm."""
    system, pyenv = two_pythons()
    paths = {"system": python_first(tmp_path, system, "s"), "pyenv": python_first(tmp_path, pyenv, "p")}  # fmt: skip
    expect = {"system": "3.11.2", "pyenv": "3.11.7"}
    order = [first, *(w for w in paths if w != first)]
    venvs: dict[str, str] = {}
    for round_ in ("cold", "warm"):
        for who in order:
            log = tmp_path / f"{who}-{round_}.log"
            r = uvslurm("submit", "--wait", "-w", "n1", "--no-node-local", "-o", str(log), "-e", str(log),
                        "--", "python", "-c", PY_REPORT, cwd=project, env={"PATH": paths[who]})  # fmt: skip
            assert r.returncode == 0, r.stderr + log_text(log)
            version, prefix = _job_python(log)
            assert version == expect[who], (who, log_text(log))
            assert ready(log_text(log)).state == round_
            assert venvs.setdefault(who, prefix) == prefix
    assert venvs["system"] != venvs["pyenv"]


@pytest.mark.slurm
def test_a_job_in_a_mount_namespace_with_another_os_gets_its_own_venv(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    """A job whose mount namespace has another /etc/os-release (`unshare -m` and a bind mount
    inside the job, as a container would) gets a venv of its own; the host's jobs keep theirs."""
    if os.geteuid() != 0:
        pytest.skip("needs root for unshare -m inside the job")
    r = uvslurm("submit", "--dry-run", "--no-node-local", "--", "python", "-c", "print('OSJOB')", cwd=project)  # fmt: skip
    assert r.returncode == 0, r.stderr
    script = tmp_path / "job.sh"
    script.write_text(r.stdout)
    fake = tmp_path / "os-release"
    fake.write_text('ID="rocky"\nVERSION_ID="9.4"\n')
    inner = f"mount --bind {shlex.quote(str(fake))} /etc/os-release && exec bash {shlex.quote(str(script))}"  # fmt: skip
    wrap = f"unshare -m --propagation private bash -c {shlex.quote(inner)}"
    states = []
    for name, how in (("host", ["bash", str(script)]), ("ns", ["--wrap", wrap]), ("host2", ["bash", str(script)])):  # fmt: skip
        log = tmp_path / f"{name}.log"
        argv = ["sbatch", "--wait", "-w", "n1", "-o", str(log), "-e", str(log)]
        argv += how[1:] if how[0] == "--wrap" else [how[1]]
        if how[0] == "--wrap":
            argv.insert(-1, "--wrap")
        done = cluster.run(*argv, cwd=project)
        assert done.returncode == 0, done.stderr + log_text(log)
        assert "OSJOB" in log_text(log)
        states.append(ready(log_text(log)))
    host, ns, host2 = states
    assert (host.state, ns.state, host2.state) == ("cold", "cold", "warm")
    assert ns.venv != host.venv and host2.venv == host.venv
    diff = uvslurm("fingerprint", "--diff", str(ns.venv), cwd=project)
    assert diff.returncode == 0, diff.stderr
    assert "OS: rocky-9.4 → " in diff.stdout


MODULEFILES = {
    "git/2.40.lua": 'setenv("GIT_FAKE", "2.40")\n',
    "gcc/12.lua": 'family("compiler")\nsetenv("CC", "gcc-12")\n',
}


def _lmod_job(project: Path, mp: Path, loads: str, log: Path, *args: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`uvslurm ARGS` in a shell where `module load LOADS` ran (MP first on MODULEPATH)."""
    cmd = (
        f"source {LMOD_INIT} && export MODULEPATH={shlex.quote(str(mp))}:$MODULEPATH && "
        + (f"module load {loads} && " if loads else "")
        + shlex.join([sys.executable, "-m", "uvslurm", *args])
    )
    return subprocess.run(["bash", "-c", cmd], cwd=project, capture_output=True, text=True)


@pytest.mark.slurm
def test_an_ignored_module_reuses_the_venv_and_a_compiler_or_mpi_module_does_not(
    cluster: Cluster, project: Path, tmp_path: Path, isolated_user: Path
) -> None:
    """The site file ignores `git`: a job with git loaded is warm in the venv of a job without
    modules. A compiler (gcc) or an MPI (mpich) gets a venv of its own, and `fingerprint --diff`
    / `--explain` name the loaded modules as what changed."""
    if not LMOD_INIT.exists():
        pytest.skip("Lmod is not installed")
    mp = tmp_path / "modulefiles"
    for name, text in MODULEFILES.items():
        (mp / name).parent.mkdir(parents=True, exist_ok=True)
        (mp / name).write_text(text)
    (isolated_user / "site-config.toml").write_text('[fingerprint]\nignore-modules = ["git"]\n')
    got = {}
    for name, loads in (("none", ""), ("git", "git"), ("gcc", "gcc/12"), ("mpi", "mpich/1.0")):
        log = tmp_path / f"{name}.log"
        r = _lmod_job(project, mp, loads, log, "submit", "--wait", "-w", "n1", "--no-node-local",
                      "-o", str(log), "-e", str(log), "--", "python", "-c", "print('MODJOB')")  # fmt: skip
        assert r.returncode == 0, r.stderr + log_text(log)
        assert "MODJOB" in log_text(log)
        got[name] = ready(log_text(log))
    assert got["none"].state == "cold"
    assert (got["git"].state, got["git"].venv) == ("warm", got["none"].venv)
    assert got["gcc"].state == got["mpi"].state == "cold"
    assert len({got["none"].venv, got["gcc"].venv, got["mpi"].venv}) == 3
    diff = _lmod_job(project, mp, "gcc/12", tmp_path / "x", "fingerprint", "--diff", str(got["none"].venv))  # fmt: skip
    assert diff.stdout.splitlines()[0] == "loaded modules: +gcc/12", diff.stdout + diff.stderr
    diff = _lmod_job(project, mp, "git mpich/1.0", tmp_path / "x", "fingerprint", "--diff", str(got["gcc"].venv))  # fmt: skip
    assert diff.stdout.splitlines()[0] == "loaded modules: gcc/12 → mpich/1.0", diff.stdout
    # a combination no job built yet: --explain says what differs from the last venv used
    explain = _lmod_job(project, mp, "gcc/12 mpich/2.0", tmp_path / "x", "fingerprint", "--explain")  # fmt: skip
    assert explain.returncode == 0, explain.stderr
    assert f"against the last used venv {got['mpi'].venv}:" in explain.stderr, explain.stderr
    assert "  loaded modules: +gcc/12 +mpich/2.0 -mpich/1.0" in explain.stderr or \
        "  loaded modules: -mpich/1.0 +gcc/12 +mpich/2.0" in explain.stderr, explain.stderr  # fmt: skip


@pytest.mark.slurm
def test_a_module_loaded_in_the_batch_script_is_warned_of_once(
    cluster: Cluster, project: Path, tmp_path: Path
) -> None:
    """The prolog of a batch script keys the venv before the script's own lines run: a
    `module load` there is said once in the log (the venv was chosen without it); the job
    goes on."""
    script = project / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH -w n1\nmodule load mpich/1.0\nml mpich/2.0\n"
                      "echo MPICH=$MPICH_VERSION\npython -c \"print('BODY')\"\n")  # fmt: skip
    log = tmp_path / "b.log"
    r = uvslurm("submit", "--wait", "--no-node-local", "-o", str(log), "-e", str(log), str(script), cwd=project)  # fmt: skip
    assert r.returncode == 0, r.stderr + log_text(log)
    text = log_text(log)
    assert "MPICH=2.0" in text and "BODY" in text
    warnings = [line for line in text.splitlines() if "changed the loaded modules" in line]
    assert warnings == [
        "uvslurm: warning: `module` changed the loaded modules after the venv was chosen "
        "(none -> mpich/1.0); the venv was keyed on the modules loaded before: load them "
        "before submitting"
    ], text
