from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "tab\there", "nul\x00", "", "esc\x1b[0m"])
def test_values_that_an_sbatch_line_cannot_carry_are_refused(bad: str) -> None:
    with pytest.raises(UsageError, match=r"^--job-name: invalid value"):
        so.validate("job-name", bad)


# what Slurm's own #SBATCH tokenizer treats specially: quotes of both kinds, backslash, '#',
# whitespace; each must come back verbatim (tests/test_jobs.py checks this with real sbatch)
SLURM_SPECIAL = ["run#5", "it's", 'say "hi"', "back\\slash", "a b", "#", "'", '"', "\\", "x\\\"#'y"]


@pytest.mark.parametrize("value", SLURM_SPECIAL)
def test_render_quotes_what_slurm_would_read_differently(value: str) -> None:
    line = so.render("comment", so.validate("comment", value))  # type: ignore[arg-type]
    assert "\n" not in line
    assert so.parse_directive_line(line) == {"comment": value}


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1))
def test_any_printable_value_survives_the_slurm_tokenizer(value: str) -> None:
    line = so.render("comment", so.validate("comment", value))  # type: ignore[arg-type]
    assert so.directive_tokens(line.split("#SBATCH", 1)[1]) == [f"--comment={value}"]


def test_slurm_tokenizer_follows_sbatch_not_posix_shell() -> None:
    # an unquoted '#' ends the line; '\'' quotes as '"' does; a backslash escapes in quotes too
    assert so.directive_tokens(" --comment=run#5 -t 10") == ["--comment=run"]
    assert so.directive_tokens(" -J 'a b' -t 10") == ["-J", "a b", "-t", "10"]
    assert so.directive_tokens(' -J "a\\"b"') == ["-J", 'a"b']
    with pytest.raises(UsageError, match="unmatched"):
        so.directive_tokens(" -J 'open")


def test_directive_line_parsing_short_long_and_flags() -> None:
    opts = so.parse_directive_line('#SBATCH -N 2 --time=10 -J "my job" --exclusive -c4')
    assert opts == {"nodes": "2", "time": "10", "job-name": "my job", "exclusive": True,
                    "cpus-per-task": "4"}  # fmt: skip


def test_render_quotes_whitespace_for_sbatch() -> None:
    assert so.render("job-name", "my job") == '#SBATCH --job-name="my job"'
    assert so.render("job-name", "plain") == "#SBATCH --job-name=plain"
    assert so.render("exclusive", True) == "#SBATCH --exclusive"


def test_config_tables_accept_underscores_and_booleans() -> None:
    assert so.normalize({"cpus_per_task": 4, "exclusive": True, "requeue": False}) == {
        "cpus-per-task": "4",
        "exclusive": True,
    }
