"""Human output on stderr, through rich (imported only when something is printed)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any


@cache
def console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    from rich.markup import escape

    console().print(f"[bold red]uvslurm: error:[/] {escape(message)}")


def warn(message: str) -> None:
    from rich.markup import escape

    console().print(f"[yellow]uvslurm: warning:[/] {escape(message)}")


def summary(title: str, rows: Sequence[tuple[str, str]]) -> None:
    """A short key/value block: what was done and where things are. One line per row, never
    cut to the terminal's width: the paths in it are meant to be copied."""
    from rich.markup import escape

    width = max((len(key) for key, _ in rows), default=0)
    console().print(f"[bold green]{escape(title)}[/]")
    for key, value in rows:
        console().print(f"[bold]{escape(key.ljust(width))}[/]  {escape(value)}")


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
