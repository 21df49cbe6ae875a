"""A tiny progress protocol so library code can report work without importing rich.

Library functions accept ``progress: Progress | None``; the CLI passes a rich
implementation (:mod:`embedsearch.cli.render`) that draws a bar on stderr.
"""

from __future__ import annotations

from typing import Protocol


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
