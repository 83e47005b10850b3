"""The one place that prints for people and programs: diagnostics on stderr, answers (tables,
reports, JSON) on stdout, through rich (imported only when something is printed)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, NamedTuple

# a piece of a line or table cell: plain text, or (text, rich style) such as ("(gone)", "red")
Part = str | tuple[str, str]
Cell = Part | list[Part]


class Col(NamedTuple):
    name: str
    style: str = ""
    fold: bool = False  # a long value goes on across lines instead of being cut with "…"


def console(stdout: bool = False) -> Any:
    """stderr's console (diagnostics), or with `stdout` the one for a command's answer."""
    return _console(bool(stdout))


@cache
def _console(stdout: bool) -> Any:
    from rich.console import Console

    # diagnostics are never cut to the terminal's width; answers (tables) are laid out to it
    return Console(stderr=not stdout, highlight=False, soft_wrap=not stdout)


def _text(parts: Sequence[Part]) -> Any:
    from rich.text import Text

    return Text.assemble(*parts)


def line(*parts: Part, stdout: bool = False) -> None:
    """One line, never cut to the terminal's width: paths in it are meant to be copied (and
    grep finds what a pipe receives)."""
    console(stdout).print(_text(parts), soft_wrap=True)


def table(title: str, columns: Sequence[Col], rows: Sequence[Sequence[Cell]], *,
          stdout: bool = True) -> None:  # fmt: skip
    """A table with a title, on stdout unless told."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=escape(title), title_justify="left")
    for c in columns:
        t.add_column(c.name, style=c.style or None, overflow="fold" if c.fold else "ellipsis")
    for row in rows:
        t.add_row(*(_text(cell if isinstance(cell, list) else [cell]) for cell in row))
    console(stdout).print(t)


def json(obj: Any) -> None:
    """An answer for programs on stdout: indented JSON (dataclasses as objects)."""
    import dataclasses
    import json as json_

    print(json_.dumps(obj, indent=2, default=dataclasses.asdict))


def error(message: str) -> None:
    from rich.markup import escape

    console().print(f"[bold red]uvslurm: error:[/] {escape(message)}")


def warn(message: str) -> None:
    from rich.markup import escape

    console().print(f"[yellow]uvslurm: warning:[/] {escape(message)}")


def summary(title: str, rows: Sequence[tuple[str, str]], *, stdout: bool = False) -> None:
    """A short key/value block: what was done and where things are (on stderr; with `stdout`,
    as a command's answer). One line per row, never cut to the terminal's width: the paths in
    it are meant to be copied."""
    from rich.markup import escape

    width = max((len(key) for key, _ in rows), default=0)
    c = console(stdout)
    c.print(f"[bold green]{escape(title)}[/]", soft_wrap=True)
    for key, value in rows:
        c.print(f"[bold]{escape(key.ljust(width))}[/]  {escape(value)}", soft_wrap=True)


class Status:
    """A spinner for long steps (lock, prefetch), silent when stderr is not a terminal."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._status: Any = None

    def __enter__(self) -> Status:
        c = console()
        if c.is_terminal:
            self._status = c.status(self.text)
            self._status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)
