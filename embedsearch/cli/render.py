"""Rendering helpers for the CLI: a stderr console, a rich progress bar, summary tables."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from embedsearch.progress import LineProgress

# Logs and progress go to stderr so that stdout stays machine-readable.
stderr = Console(stderr=True)
stdout = Console(soft_wrap=True)


class _ItemsPerSecondColumn(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Any) -> Any:  # rich's Task
        elapsed = task.finished_time if task.finished else task.elapsed
        speed = task.completed / elapsed if elapsed else None
        return f"{speed:,.1f} it/s" if speed else "- it/s"


class RichProgress:
    """:class:`embedsearch.progress.Progress` drawn as a rich bar with items/s and ETA."""

    def __init__(self, console: Console = stderr) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            _ItemsPerSecondColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: Any = None

    def start(self, description: str, total: int | None) -> None:
        if self._task is None:
            self._progress.start()
        else:
            self._progress.stop_task(self._task)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def stop(self) -> None:
        if self._task is not None:
            self._progress.stop_task(self._task)  # freeze its elapsed time
            self._progress.stop()
            self._task = None


@contextmanager
def progress_bar() -> Iterator[RichProgress | LineProgress]:
    """A :class:`RichProgress` that is always stopped, even on errors; when stderr is not a
    terminal (a log file, CI), a :class:`LineProgress` printing a line every few seconds."""
    bar = RichProgress() if stderr.is_terminal else LineProgress(sys.stderr)
    try:
        yield bar
    finally:
        bar.stop()


def summary_table(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    """Two-column table of ``(label, value)`` rows; floats get thousands separators."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in rows:
        if isinstance(value, float):
            value = f"{value:,.2f}"
        elif isinstance(value, int):
            value = f"{value:,}"
        table.add_row(label, str(value))
    return table
