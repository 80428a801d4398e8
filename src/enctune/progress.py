"""Progress bars and messages that respect --quiet and only print on the main process."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True)
_state = {"quiet": False, "hushed": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def is_quiet() -> bool:
    return _state["quiet"]


@contextmanager
def hushed():
    """Bars only: the messages of what runs inside (a nested run's own report) are dropped, its progress shown."""
    before = _state["hushed"]
    _state["hushed"] = True
    try:
        yield
    finally:
        _state["hushed"] = before


def _say(message: str) -> None:
    if not _state["quiet"]:
        _console.print(message, highlight=False, markup=False, soft_wrap=True)  # one line, however long


def info(message: str) -> None:
    if not _state["hushed"]:
        _say(message)


class _Bar:
    def __init__(self, progress: Progress | None, task):
        self._p, self._t = progress, task
        self.done, self.fields = 0, {}

    def advance(self, n: int = 1, **fields) -> None:
        self.done += n
        self.fields.update(fields)
        if self._p is not None:
            self._p.update(self._t, advance=n, **fields)

    def __call__(self, n: int = 1) -> None:
        self.advance(n)


@contextmanager
def bar(description: str, total: int, status: bool = False):
    """A live progress bar on a terminal; one summary line in a log; nothing when quiet."""
    if _state["quiet"]:
        yield _Bar(None, None)
        return
    if not sys.stderr.isatty():
        t0 = time.perf_counter()
        b = _Bar(None, None)
        yield b
        extra = "  " + b.fields["status"] if b.fields.get("status") else ""
        _say(f"{description}: {b.done}/{total} in {time.perf_counter() - t0:.1f} s{extra}")  # a bar, even hushed
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    if status:
        columns.append(TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=_console) as p:
        t = p.add_task(description, total=total, status="")
        yield _Bar(p, t)
