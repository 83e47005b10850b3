"""fpdiff.py in-process: reading another fingerprint and saying why it differs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from uvslurm import fpdiff
from uvslurm.errors import UvslurmError


def test_load_other_from_a_ready_marker(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".uvslurm-ready").write_text(
        "key=abc\nproject=/p\nsize_kb=12\nbuilt_on=n1\nmodules=gcc/12:mpi\narch=x86_64\n"
        "no separator\nempty=\ncpu=a=b\n"
    )
    assert fpdiff.load_other(str(venv)) == {
        "modules": "gcc/12:mpi",
        "arch": "x86_64",
        "empty": "",
        "cpu": "a=b",
    }


def test_load_other_from_saved_json(tmp_path: Path) -> None:
    f = tmp_path / "fp.json"
    f.write_text(json.dumps({"fingerprint": "x", "components": {"arch": "x86_64", "n": 3}}))
    assert fpdiff.load_other(str(f)) == {"arch": "x86_64", "n": "3"}


@pytest.mark.parametrize("text", ["{not json", json.dumps({"no": "components"}), "[1]"])
def test_load_other_broken_file(tmp_path: Path, text: str) -> None:
    f = tmp_path / "fp.json"
    f.write_text(text)
    with pytest.raises(UvslurmError) as e:
        fpdiff.load_other(str(f))
    assert e.value.message.startswith(f"cannot read a fingerprint from {f}: ")
    assert e.value.hint == ""


def test_load_other_unreadable_marker(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / ".uvslurm-ready").mkdir(parents=True)
    with pytest.raises(UvslurmError) as e:
        fpdiff.load_other(str(venv))
    assert "not a saved" in e.value.message
    (venv / ".uvslurm-ready").rmdir()
    (venv / ".uvslurm-ready").write_bytes(b"\xff\xfe")
    with pytest.raises(UvslurmError) as e:
        fpdiff.load_other(str(venv))
    assert e.value.message.startswith(f"cannot read a fingerprint from {venv}: ")


def test_load_other_nothing_there(tmp_path: Path) -> None:
    for ref in (tmp_path / "missing", tmp_path):
        with pytest.raises(UvslurmError) as e:
            fpdiff.load_other(str(ref))
        assert e.value.message == (
            f"{ref}: not a saved `uvslurm fingerprint --json` file nor a venv of the depot"
        )
        assert e.value.hint == "pass a file or a venv directory (see `uvslurm depot list`)"


def test_explain_nothing_differs() -> None:
    assert fpdiff.explain({"arch": "x"}, {"arch": "x"}) == []
    assert fpdiff.explain({}, {}) == []
    assert fpdiff.explain({"a": ""}, {}) == []


def test_explain_plain_components_in_order() -> None:
    other = {"python": "3.11", "uv": "0.8", "same": "1", "os": ""}
    here = {"uv": "0.9", "python": "3.12", "same": "1", "os": "rhel9", "glibc": "2.34"}
    assert fpdiff.explain(other, here) == [
        "Python: 3.11 → 3.12",
        "uv: 0.8 → 0.9",
        "OS: (none) → rhel9",
        "glibc: (none) → 2.34",
    ]
    assert fpdiff.explain({"custom": "a"}, {}) == ["custom: a → (none)"]


@pytest.mark.parametrize(
    ("key", "label"),
    [("modulepath", "modulepath"), ("arch", "CPU architecture"), ("gpu", "GPU"),
     ("sync", "uv selection flags"), ("rebuild", "rebuild packages")],
)  # fmt: skip
def test_explain_labels(key: str, label: str) -> None:
    assert fpdiff.explain({key: "a"}, {key: "b"}) == [f"{label}: a → b"]


def test_explain_module_lists() -> None:
    assert fpdiff.explain({"modules": "gcc/12:mpi/4"}, {"modules": "gcc/13:mpi/4"}) == [
        "loaded modules: gcc/12 → gcc/13"
    ]
    assert fpdiff.explain({"modules": "a:b"}, {"modules": "a:c:d"}) == ["loaded modules: -b +c +d"]
    assert fpdiff.explain({"modulefiles": "a"}, {"modulefiles": "a:b"}) == ["modulefiles: +b"]
    assert fpdiff.explain({"modules": "a::b"}, {"modules": "b:a"}) == ["loaded modules: a::b → b:a"]
    assert fpdiff.explain({}, {"modules": "a:b"}) == ["loaded modules: +a +b"]
    assert fpdiff.explain({"modules": ":"}, {"modules": ""}) == ["loaded modules: : → (none)"]
    assert fpdiff.explain({"modules": ""}, {"modules": ":"}) == ["loaded modules: (none) → :"]


def test_explain_cpu() -> None:
    a = "vendor_id=GenuineIntel cpu_family=6 model=85 flags=sse avx avx2"
    b = "vendor_id=GenuineIntel cpu_family=6 model=106 flags=sse avx avx512f"
    assert fpdiff.explain({"cpu": a}, {"cpu": b}) == ["CPU: model 85 → 106; flags avx2 → avx512f"]
    c = "vendor_id=AuthenticAMD cpu_family=25 model=1 flags=sse"
    assert fpdiff.explain({"cpu": a}, {"cpu": c}) == [
        "CPU: vendor_id GenuineIntel → AuthenticAMD; cpu_family 6 → 25; model 85 → 1; "
        "flags -avx -avx2"
    ]
    assert fpdiff.explain({"cpu": "model=1"}, {"cpu": "vendor_id=X model=1"}) == [
        "CPU: vendor_id - → X"
    ]
    # words before the first field, and a field-less change
    assert fpdiff.explain({"cpu": "junk"}, {"cpu": "other"}) == ["CPU: changed"]
    assert fpdiff.explain({"cpu": "flags=a"}, {"cpu": "flags=a b"}) == ["CPU: flags +b"]
    assert fpdiff.explain({"cpu": "flags=a b"}, {"cpu": "model=3"}) == [
        "CPU: model - → 3; flags -a -b"
    ]


def test_explain_env() -> None:
    assert fpdiff.explain({"env.CUDA": "11"}, {"env.CUDA": "12"}) == ["$CUDA: 11 → 12"]
    assert fpdiff.explain({"env.X": ""}, {"env.X": "1"}) == ["$X: (unset) → 1"]
    assert fpdiff.explain({"env.X": "1"}, {}) == ["$X: 1 → (unset)"]


def test_explain_cpu_fields_missing_or_equal_on_one_side() -> None:
    assert fpdiff.explain({"cpu": "vendor_id=X model=1"}, {"cpu": "model=1"}) == [
        "CPU: vendor_id X → -"
    ]
    assert fpdiff.explain({"cpu": "model=3"}, {"cpu": "model=3 flags=a"}) == ["CPU: flags +a"]
    assert fpdiff.explain({"cpu": "model=1 flags=a b"}, {"cpu": "model=2 flags=a b"}) == [
        "CPU: model 1 → 2"
    ]
    # a value may hold '='
    assert fpdiff.explain({"cpu": "model=1=2"}, {"cpu": "model=1=3"}) == ["CPU: model 1=2 → 1=3"]


def test_explain_microarchitecture() -> None:
    a = "microarch=zen2 flags=sse avx avx2"
    b = "microarch=zen3 flags=sse avx avx2 vaes"
    assert fpdiff.explain({"cpu": a}, {"cpu": b}) == ["CPU: microarch zen2 → zen3; flags +vaes"]
    # against a fingerprint made before microarchitectures were named
    old = "vendor_id=AuthenticAMD cpu_family=23 model=49 flags=sse avx avx2"
    assert fpdiff.explain({"cpu": old}, {"cpu": a}) == [
        "CPU: microarch - → zen2; vendor_id AuthenticAMD → -; cpu_family 23 → -; model 49 → -"
    ]


def _job_venv(pdir: Path, key: str, comps: dict[str, str], used: float) -> Path:
    venv = pdir / key
    venv.mkdir(parents=True)
    lines = "".join(f"{k}={v}\n" for k, v in comps.items())
    (venv / ".uvslurm-ready").write_text(f"key={key}\nproject=/nowhere\nsize_kb=1\n{lines}")
    (venv / ".uvslurm-used").write_text("")
    os.utime(venv / ".uvslurm-used", (used, used))
    return venv


def test_latest_sibling_is_the_last_used_job_venv_of_the_project(tmp_path: Path) -> None:
    pdir = tmp_path / "depot" / "proj-0123456789"
    new = pdir / "aaaaaaaaaaaa-bbbbbbbb"
    assert fpdiff.latest_sibling(str(new)) is None
    _job_venv(pdir, "111111111111-bbbbbbbb", {"python": "cpython-3.11.2 /usr"}, 1000)
    last = _job_venv(pdir, "222222222222-bbbbbbbb", {"python": "cpython-3.12.1 /usr"}, 2000)
    other = tmp_path / "depot" / "other-0123456789"
    _job_venv(other, "333333333333-bbbbbbbb", {"python": "x"}, 3000)
    assert fpdiff.latest_sibling(str(new)) == (last, {"python": "cpython-3.12.1 /usr"})
    # the key's own venv is not its own predecessor
    assert fpdiff.latest_sibling(str(last))[0] != last  # type: ignore[index]
