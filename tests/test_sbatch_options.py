from __future__ import annotations

import pytest

from uvslurm import sbatch_options as so
from uvslurm.errors import UsageError


@pytest.mark.parametrize(
    ("given", "expected"),
    [("--time", "time"), ("-t", "time"), ("time_min", "time-min"), ("-J", "job-name"),
     ("--cpus-per-task", "cpus-per-task"), ("-G", "gpus"), ("-w", "nodelist")],
)  # fmt: skip
def test_canonical_names_from_simple_slurm_vocabulary(given: str, expected: str) -> None:
    assert so.canonical(given) == expected


def test_unknown_option_names_the_closest_valid_one() -> None:
    with pytest.raises(UsageError) as e:
        so.canonical("--partitoin")
    assert "--partition" in e.value.line()


@pytest.mark.parametrize(
    "value", ["5", "05:00", "1:00:00", "2-0", "2-12:00", "1-00:00:00", "UNLIMITED"]
)
def test_valid_times(value: str) -> None:
    assert so.validate("time", value) == value


@pytest.mark.parametrize("value", ["5minutes", "1:2:3:4", "", "-1", "1h"])
def test_malformed_time_is_refused(value: str) -> None:
    with pytest.raises(UsageError, match="time"):
        so.validate("time", value)


@pytest.mark.parametrize("value", ["0-15", "1,3,5", "0-99:10", "0-15%4", "7"])
def test_valid_arrays(value: str) -> None:
    assert so.validate("array", value) == value


@pytest.mark.parametrize("value", ["1-x", "a", "0-", "1,,2"])
def test_malformed_array_is_refused(value: str) -> None:
    with pytest.raises(UsageError, match="array"):
        so.validate("array", value)


@pytest.mark.parametrize(
    ("value", "ok"), [("16G", True), ("500", True), ("12XB", False), ("G", False)]
)
def test_mem_values(value: str, ok: bool) -> None:
    if ok:
        assert so.validate("mem", value) == value
    else:
        with pytest.raises(UsageError):
            so.validate("mem", value)


def test_values_that_an_sbatch_line_cannot_carry_are_refused() -> None:
    for bad in ("a\nb", 'a"b'):
        with pytest.raises(UsageError):
            so.validate("job-name", bad)


def test_directive_line_parsing_short_long_and_flags() -> None:
    opts = so.parse_directive_line('#SBATCH -N 2 --time=10 -J "my job" --exclusive -c4')
    assert opts == {"nodes": "2", "time": "10", "job-name": "my job", "exclusive": True,
                    "cpus-per-task": "4"}  # fmt: skip


def test_render_quotes_whitespace_for_sbatch() -> None:
    assert so.render("job-name", "my job") == '#SBATCH --job-name="my job"'
    assert so.render("exclusive", True) == "#SBATCH --exclusive"


def test_config_tables_accept_underscores_and_booleans() -> None:
    assert so.normalize({"cpus_per_task": 4, "exclusive": True, "requeue": False}) == {
        "cpus-per-task": "4",
        "exclusive": True,
    }
