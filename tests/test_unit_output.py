"""output.py, the one place that prints: lines, tables and JSON, as a pipe receives them."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from uvslurm import output


@pytest.fixture(autouse=True)
def fresh_consoles(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Consoles made for this test (40 columns, writing to the captured stdout/stderr)."""
    monkeypatch.setenv("COLUMNS", "40")
    made = output._console
    made.cache_clear()
    yield
    made.cache_clear()


def test_one_console_per_stream() -> None:
    err, out = output.console(), output.console(stdout=True)
    assert err is output.console(False) and out is output.console(True)
    assert (err.stderr, out.stderr) == (True, False)
    # diagnostics are never cut; answers (tables) are laid out to the terminal's width
    assert (err.soft_wrap, out.soft_wrap) == (True, False)
    assert err._highlight is False and out._highlight is False


def test_line_is_plain_text_never_cut(capsys: pytest.CaptureFixture[str]) -> None:
    long = "x " * 30
    output.line("[red]not markup[/] ", ("styled", "bold"), " :smile: 1.5")
    output.line(long)
    output.line(long, stdout=True)
    out, err = capsys.readouterr()
    assert err == f"[red]not markup[/] styled :smile: 1.5\n{long}\n"
    assert out == f"{long}\n"


def test_parts_carry_their_style() -> None:
    t = output._text(["a ", ("b", "red"), ""])
    assert t.plain == "a b"
    assert [(s.start, s.end, s.style) for s in t.spans] == [(2, 3, "red")]


def test_table_folds_or_cuts_and_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    cols = [output.Col("key"), output.Col("value", fold=True), output.Col("note", style="dim")]
    rows: list[list[output.Cell]] = [
        ["[b]", "0123456789" * 2, "abcdefghijklmnopqrstuvwxyz"],
        ["k", ["v", " ", ("(gone)", "red")], "-"],
    ]
    output.table("title [x]", cols, rows)
    out, err = capsys.readouterr()
    assert err == ""
    assert [x.rstrip() for x in out.splitlines()] == [
        "title [x]",
        "┏━━━━━┳━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓",
        "┃ key ┃ value          ┃ note          ┃",
        "┡━━━━━╇━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩",
        "│ [b] │ 01234567890123 │ abcdefghijkl… │",
        "│     │ 456789         │               │",
        "│ k   │ v (gone)       │ -             │",
        "└─────┴────────────────┴───────────────┘",
    ]


def test_table_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    output.table("t", [output.Col("a")], [["1"]], stdout=False)
    out, err = capsys.readouterr()
    assert out == "" and "┃ a ┃" in err and "│ 1 │" in err


def test_styles_reach_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    buf = io.StringIO()
    term = Console(file=buf, force_terminal=True, color_system="standard", width=30)
    monkeypatch.setattr(output, "_console", lambda stdout: term)
    output.table("T", [output.Col("a", style="dim")], [[["x ", ("y", "red")]]])
    output.line(("ok", "green"), " fine")
    got = buf.getvalue().splitlines()
    assert got[0] == "\x1b[3mT      \x1b[0m"  # rich's title style
    assert "\x1b[2mx \x1b[0m\x1b[2;31my\x1b[0m" in got[4]  # the column's and the part's
    assert got[-1] == "\x1b[32mok\x1b[0m fine"


@dataclass
class _Row:
    key: str
    n: int


def test_json_of_plain_values_and_dataclasses(capsys: pytest.CaptureFixture[str]) -> None:
    output.json([_Row("a", 1), {"b": None}])
    assert capsys.readouterr().out == (
        '[\n  {\n    "key": "a",\n    "n": 1\n  },\n  {\n    "b": null\n  }\n]\n'
    )
    with pytest.raises(TypeError):
        output.json(object())


def test_commands_do_not_import_rich_until_they_print() -> None:
    code = (
        "import sys; import uvslurm.cli, uvslurm.output, uvslurm.proc;"
        "from uvslurm.commands import config_cmd, depot, doctor, fingerprint, submit;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout == "[]\n"
