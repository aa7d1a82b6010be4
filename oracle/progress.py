"""How long-running work reports its progress, without knowing how it is shown.

Work that can take more than a few seconds (a benchmark, the devnet's key-generation wait,
the owner's activation wait, a database migration) takes a :class:`Progress` and calls it
at each step: the phase it is in and, where known, how much of that phase is done. The
command decides how to show it; :func:`stderr_progress` is how ``mira`` shows it: on a
terminal, rich draws one bar per phase with done/total, the elapsed time and an estimate of
what remains; anywhere else (CI logs, a pipe, a file) each phase is one plain line as it
starts, and the total time one line at the end. stdout is never touched, so ``--json``
output stays exactly one JSON document.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress


class Progress(Protocol):
    def __call__(self, phase: str, done: int | None = None, total: int | None = None) -> None:
        """Now in ``phase`` (a short description; a new text starts a new phase), with
        ``done`` of ``total`` steps of it finished where those are known."""


def no_progress(phase: str, done: int | None = None, total: int | None = None) -> None:
    """The :class:`Progress` of callers that show nothing (tests, libraries)."""


class _Plain:
    """One line per phase on a stream that is not a terminal."""

    def __init__(self, command: str, stream: IO[str]) -> None:
        self.command = command
        self.stream = stream
        self.phase: str | None = None

    def __call__(self, phase: str, done: int | None = None, total: int | None = None) -> None:
        if phase == self.phase:
            return
        self.phase = phase
        size = f" ({total} steps)" if total is not None else ""
        print(f"{self.command}: {phase}{size}", file=self.stream, flush=True)


class _Live:
    """A rich bar per phase on a terminal; a finished phase stays on screen, completed."""

    def __init__(self, bars: RichProgress) -> None:
        self.bars = bars
        self.phase: str | None = None
        self.task: TaskID | None = None

    def __call__(self, phase: str, done: int | None = None, total: int | None = None) -> None:
        if phase != self.phase:
            self._finish()
            self.phase = phase
            self.task = self.bars.add_task(phase, total=total)
        assert self.task is not None
        self.bars.update(self.task, completed=done or 0, total=total)

    def _finish(self) -> None:
        if self.task is not None:
            task = self.bars.tasks[self.task]
            total = task.total if task.total is not None else max(task.completed, 1)
            self.bars.update(self.task, total=total, completed=total)


@contextmanager
def stderr_progress(command: str, stream: IO[str] | None = None) -> Iterator[Progress]:
    """A :class:`Progress` for ``command`` (e.g. ``"mira bench e2e"``) drawn on stderr,
    live on a terminal, plain lines elsewhere; the total time is reported on exit."""
    out = stream if stream is not None else sys.stderr
    started = time.monotonic()
    if out.isatty():
        console = Console(file=out)
        with RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bars:
            live = _Live(bars)
            yield live
            live._finish()
        return
    yield _Plain(command, out)
    print(f"{command}: done in {time.monotonic() - started:.1f} s", file=out, flush=True)
