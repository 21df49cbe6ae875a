"""A tiny progress protocol so library code can report work without importing rich.

Library functions accept ``progress: Progress | None``; the CLI passes a rich
implementation (:mod:`embedsearch.cli.render`) that draws a bar on stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TextIO


class Progress(Protocol):
    """Receives progress of one long task."""

    def start(self, description: str, total: int | None) -> None:
        """Begin a task of ``total`` items (None when unknown)."""

    def advance(self, n: int = 1) -> None:
        """Mark ``n`` more items done."""

    def stop(self) -> None:
        """End the current task."""


class NullProgress:
    """Progress that reports nothing (the default for library calls)."""

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def stop(self) -> None:
        pass


class LineProgress:
    """Progress as one plain line every ``interval`` seconds, for a stderr that is not a terminal.

    A rich bar redrawn into a log file or a CI log writes a line per refresh (many per second);
    this writes ``description: done/total (rate/s)`` at most every ``interval`` seconds, plus
    once at the end of each task.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> p = LineProgress(out, clock=iter(range(0, 1000, 10)).__next__)
        >>> p.start("embed", 3); p.advance(3); p.stop()
        >>> out.getvalue()
        'embed: 3/3 (0.3/s)\\n'
    """

    def __init__(
        self, stream: TextIO, interval: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream, self._interval, self._clock = stream, interval, clock
        self._description: str | None = None
        self._total: int | None = None
        self._done = 0
        self._written: int | None = None  # items done at the last line written
        self._started = self._last = 0.0

    def start(self, description: str, total: int | None) -> None:
        self.stop()
        self._description, self._total, self._done, self._written = description, total, 0, None
        self._started = self._last = self._clock()

    def advance(self, n: int = 1) -> None:
        self._done += n
        now = self._clock()
        if now - self._last >= self._interval:
            self._write(now)

    def stop(self) -> None:
        if self._description is not None and self._written != self._done:
            self._write(self._clock())  # the final count, unless the last line already said it
            self._description = None

    def _write(self, now: float) -> None:
        self._last, self._written = now, self._done
        elapsed = now - self._started
        rate = f"{self._done / elapsed:,.1f}/s" if elapsed > 0 else "-/s"
        total = f"/{self._total}" if self._total is not None else ""
        self._stream.write(f"{self._description}: {self._done}{total} ({rate})\n")
        self._stream.flush()
