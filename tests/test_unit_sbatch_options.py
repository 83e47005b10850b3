"""sbatch_options.py in-process: the vocabulary, names, value checks, #SBATCH tokens and lines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from uvslurm import sbatch_options as so
from uvslurm.errors import UsageError


def _usage(fn: object, *args: object) -> UsageError:
    with pytest.raises(UsageError) as e:
        fn(*args)  # type: ignore[operator]
    return e.value


def test_vocabulary_from_simple_slurm() -> None:
    v = so.vocabulary()
    assert v["time"] == "t"
    assert v["job-name"] == "J"
    assert v["partition"] == "p"
    assert v["mem"] is None
    assert v["time-min"] is None
    assert v["cpus-per-task"] == "c"
    # names are dashed, and the options uvslurm drives itself are not offered
    assert all("_" not in n for n in v)
    assert not so.RESERVED & set(v)
    assert "" not in v
    assert so.short_map()["t"] == "time"
    assert so.short_map()["N"] == "nodes"
    assert None not in so.short_map()
    assert "mem" not in so.short_map().values()


def test_vocabulary_needs_simple_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    so.simple_slurm_specs.cache_clear()
    monkeypatch.setattr(so, "find_spec", lambda name: None)
    try:
        e = _usage(so.vocabulary)
        assert e.line() == "simple-slurm is not installed; reinstall uvslurm"
    finally:
        monkeypatch.undo()
        so.simple_slurm_specs.cache_clear()
    assert so.vocabulary()["time"] == "t"


def test_closest_option() -> None:
    assert so.closest_option("--partitoin") == "--partition"
    assert so.closest_option("--zzzzzzzzzz") == ""
    # the cutoff: a name that shares little with any option finds none
    assert so.closest_option("--tme") == "--time"
    assert so.closest_option("--qqqq") == ""


@pytest.mark.parametrize(
    ("given", "expected"),
    [("--time", "time"), ("time", "time"), ("-t", "time"), ("--time_min", "time-min"),
     ("-N", "nodes"), ("---nodes", "nodes"), ("nodes", "nodes"), ("-c", "cpus-per-task")],
)  # fmt: skip
def test_canonical(given: str, expected: str) -> None:
    assert so.canonical(given) == expected


def test_canonical_unknown() -> None:
    unknown = "unknown sbatch option '{}' (simple-slurm's list does not know it)"
    e = _usage(so.canonical, "--partitoin")
    assert e.message == unknown.format("--partitoin")
    assert e.hint == "did you mean '--partition'?"
    e = _usage(so.canonical, "--zzzzzzzzzz")
    assert e.hint == "see `sbatch --help`"
    # a single letter without a dash is a long name, not a short one
    e = _usage(so.canonical, "t")
    assert e.message == unknown.format("t")
    # a short letter no option has
    e = _usage(so.canonical, "-j")
    assert e.message == unknown.format("-j")
    # reserved options say what to do instead
    e = _usage(so.canonical, "--wait")
    assert e.line() == (
        "sbatch option '--wait' cannot be used with uvslurm; use `uvslurm submit --wait`"
    )
    assert "uvslurm submit -- CMD" in _usage(so.canonical, "--wrap").hint


def test_flags() -> None:
    assert so.validate("exclusive", True) is True
    assert so.validate("exclusive", "") is True
    assert so.validate("exclusive", None) is True  # type: ignore[arg-type]
    assert so.validate("exclusive", "user") == "user"
    e = _usage(so.validate, "exclusive", False)
    assert e.message == "--exclusive takes no value here"
    assert e.hint == ""


def test_options_with_values() -> None:
    e = _usage(so.validate, "partition", True)
    assert e.message == "--partition needs a value"
    e = _usage(so.validate, "partition", False)
    assert e.message == "--partition needs a value"
    assert so.validate("partition", "gpu") == "gpu"
    assert so.validate("ntasks", 4) == "4"  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "a\nb", "a\x00", "a\u2028b", "a\u2029b", "a\udcffb", "\t"])
def test_unsafe_values(bad: str) -> None:
    e = _usage(so.validate, "comment", bad)
    assert e.message == f"--comment: invalid value {bad!r}"
    assert e.hint == "no empty value, newline or other control character"


def test_printable_unicode_is_fine() -> None:
    assert so.validate("comment", "日本 ünï ok") == "日本 ünï ok"


@pytest.mark.parametrize(
    ("name", "good", "bad", "hint"),
    [
        ("time", ["5", "5:30", "1:02:03", "2-3", "2-3:04", "2-03:04:05", "UNLIMITED",
                  "INFINITE", "unlimited", "infinite"],
         ["5:123", "1:2:3:4", "x", "2-", "-2", "Unlimited", "1:2:345", "2-3:4:5:6"],
         "use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"),
        ("time-min", ["10"], ["ten"], "use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"),
        ("array", ["0-15", "1,3,5", "0-99:10", "0-15%4", "1,2-4:2%3"],
         ["0-15%", "%4", "1,", "a", "1:2", "0-15:"], "use e.g. 0-15, 1,3,5, 0-99:10 or 0-15%4"),
        ("mem", ["16G", "500", "1.5g", "4TB", "10Mb", "8k"], ["G", "1.G", "4X", "1.5.5G", "-1"],
         "use a number with an optional K, M, G or T suffix, e.g. 16G"),
        ("mem-per-cpu", ["4G"], ["4 G"], "use a number with an optional K, M, G or T suffix, e.g. 4G"),
        ("mem-per-gpu", ["4G"], ["x"], "use a number with an optional K, M, G or T suffix, e.g. 4G"),
        ("nodes", ["2", "2-4"], ["2-", "a", "2-4-6", "2,3"], "use a count or a range, e.g. 2 or 2-4"),
        ("ntasks", ["4"], ["4.0", "-4", "four"], "use a whole number"),
        ("cpus-per-task", ["4"], ["4x"], "use a whole number"),
        ("ntasks-per-node", ["4"], ["x4"], "use a whole number"),
    ],
)  # fmt: skip
def test_value_checks(name: str, good: list[str], bad: list[str], hint: str) -> None:
    for value in good:
        assert so.validate(name, value) == value
    for value in bad:
        e = _usage(so.validate, name, value)
        assert e.message == f"--{name}: invalid value '{value}'"
        assert e.hint == hint


def test_unchecked_options_take_any_safe_value() -> None:
    assert so.validate("partition", "any thing#'\"") == "any thing#'\""


def test_normalize() -> None:
    assert so.normalize({"time": "1:00:00", "cpus_per_task": 4, "exclusive": True,
                         "requeue": False, "-J": "x"}) == {
        "time": "1:00:00", "cpus-per-task": "4", "exclusive": True, "job-name": "x"
    }  # fmt: skip
    e = _usage(so.normalize, {"time": "soon"})
    assert e.message == "--time: invalid value 'soon'"
    e = _usage(so.normalize, {"tme": "1"})
    assert e.message.startswith("unknown sbatch option 'tme' ")
    assert so.normalize({}) == {}


def test_parse_directive_args() -> None:
    got = so.parse_directive_args(
        ["--time=10", "--partition", "gpu", "-N", "2", "-c4", "--exclusive", "--exclusive=user"]
    )
    assert got == {
        "time": "10",
        "partition": "gpu",
        "nodes": "2",
        "cpus-per-task": "4",
        "exclusive": "user",
    }


def test_parse_directive_args_details() -> None:
    assert so.parse_directive_args(["--exclusive"]) == {"exclusive": True}
    assert so.parse_directive_args(["--exclusive", "--time=5"]) == {
        "exclusive": True,
        "time": "5",
    }
    assert so.parse_directive_args(["-v", "-t", "5"]) == {"verbose": True, "time": "5"}
    # a value after `=` is taken even when it starts with a dash; the next token is left alone
    assert so.parse_directive_args(["--comment=-x", "-t5"]) == {"comment": "-x", "time": "5"}
    assert so.parse_directive_args(["--comment", "-x"]) == {"comment": "-x"}
    assert so.parse_directive_args([]) == {}
    e = _usage(so.parse_directive_args, ["stray"])
    assert e.message == "unexpected sbatch argument 'stray'"
    # a missing value is an empty value: refused by validate
    e = _usage(so.parse_directive_args, ["--time"])
    assert e.message == "--time: invalid value ''"
    e = _usage(so.parse_directive_args, ["-t"])
    assert e.message == "--time: invalid value ''"
    e = _usage(so.parse_directive_args, ["-t", "soon"])
    assert e.message == "--time: invalid value 'soon'"


def test_parse_directive_line() -> None:
    assert so.parse_directive_line("#SBATCH -t 10 # a comment -N 4") == {"time": "10"}
    assert so.parse_directive_line("#SBATCH --comment='a #SBATCH b'") == {"comment": "a #SBATCH b"}
    e = _usage(so.parse_directive_line, "#SBATCH -J 'open   ")
    assert e.message == "cannot parse '#SBATCH -J 'open': unmatched '"


@pytest.mark.parametrize(
    ("body", "tokens"),
    [
        ("", []),
        ("   ", []),
        (" a  b\tc\nd\ve\ff\rg", ["a", "b", "c", "d", "e", "f", "g"]),
        (" a#b c", ["a"]),
        ("#", []),
        (" 'a b' \"c d\"", ["a b", "c d"]),
        (" ''", [""]),
        (' ""', [""]),
        (" x''y", ["xy"]),
        (" 'it\"s'", ['it"s']),
        (' "it\'s"', ["it's"]),
        (" a\\ b", ["a b"]),
        (" \\#x", ["#x"]),
        (" '\\''", ["'"]),
        (" \\", [""]),
        (" \\\\", ["\\"]),
        (" 'a#b'", ["a#b"]),
        (" a\u00a0b", ["a\u00a0b"]),
        ("a'b c'd e", ["ab cd", "e"]),
    ],
)
def test_directive_tokens(body: str, tokens: list[str]) -> None:
    assert so.directive_tokens(body) == tokens


def test_directive_tokens_unmatched_quotes() -> None:
    e = _usage(so.directive_tokens, ' -J "open', "")
    assert e.message == "cannot parse '-J \"open': unmatched \""
    e = _usage(so.directive_tokens, " -J 'x", "  #SBATCH -J 'x  ")
    assert e.message == "cannot parse '#SBATCH -J 'x': unmatched '"


@pytest.mark.parametrize(
    ("text", "quoted"),
    [("plain", "plain"), ("a b", '"a b"'), ("a\tb", '"a\tb"'), ('a"b', '"a\\"b"'),
     ("a'b", "\"a'b\""), ("a#b", '"a#b"'), ("a\\b", '"a\\\\b"'), ("", ""),
     ('\\"', '"\\\\\\""')],
)  # fmt: skip
def test_quote_directive(text: str, quoted: str) -> None:
    assert so.quote_directive(text) == quoted
    if text:
        assert so.directive_tokens(" " + quoted) == [text]


def test_render() -> None:
    assert so.render("exclusive", True) == "#SBATCH --exclusive"
    assert so.render("time", "10") == "#SBATCH --time=10"
    assert so.render("job-name", "a b") == '#SBATCH --job-name="a b"'
    assert so.render("exclusive", "user") == "#SBATCH --exclusive=user"


def test_canonical_hints_for_short_words() -> None:
    assert _usage(so.canonical, "--ac").hint == "did you mean '--account'?"
    # only leading dashes are stripped
    assert _usage(so.canonical, "--Xtime").message.startswith("unknown sbatch option '--Xtime' ")


def test_normalize_keeps_a_flag_value_from_the_config() -> None:
    assert so.normalize({"exclusive": "user"}) == {"exclusive": "user"}
    assert so.normalize({"exclusive": 1}) == {"exclusive": "1"}


def test_directive_line_without_a_space_after_sbatch() -> None:
    # sbatch reads what follows the 7 characters of "#SBATCH"
    assert so.parse_directive_line("#SBATCH--time=5") == {"time": "5"}


def test_directive_tokens_error_shows_the_body_without_a_line() -> None:
    e = _usage(so.directive_tokens, " -J 'x ")
    assert e.message == "cannot parse '-J 'x': unmatched '"


@pytest.mark.parametrize(
    ("a", "b", "slip"),
    [("partitoin", "partition", True), ("parttion", "partition", True),
     ("partitionn", "partition", True), ("partitiom", "partition", True),
     ("partition", "partition", False), ("segment", "partition", False),
     ("ptrainoit", "partition", False), ("tres-bind", "gres-flags", False)],
)  # fmt: skip
def test_one_slip(a: str, b: str, slip: bool) -> None:
    assert so._one_slip(a, b) is slip


@pytest.fixture
def site_later() -> Iterator[list[int]]:
    """A site whose sbatch knows one more option than simple-slurm; `calls` counts its runs."""
    calls: list[int] = []

    def loader() -> dict[str, so.Spec]:
        calls.append(1)
        return {**so.simple_slurm_specs(), "segment": so.Spec(None, "value")}

    so.use_site(None)
    so.use_site_later(loader)
    yield calls
    so.use_site(None)
    so._loader = None


def test_known_options_and_typos_never_run_the_sites_sbatch(site_later: list[int]) -> None:
    assert so.canonical("--partition") == "partition"
    with pytest.raises(UsageError, match="did you mean '--partition'"):
        so.canonical("--partitoin")
    assert site_later == [] and not so.from_site()


def test_an_option_simple_slurm_lacks_asks_the_site_once(site_later: list[int]) -> None:
    assert so.canonical("--segment") == "segment"
    assert so.from_site() and site_later == [1]
    with pytest.raises(UsageError, match="this site's sbatch does not know it"):
        so.canonical("--no-such-thing")
    assert site_later == [1]


def test_help_asks_the_site(site_later: list[int]) -> None:
    assert so.consult_site(force=True) is True
    assert site_later == [1] and "segment" in so.specs()
