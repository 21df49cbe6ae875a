"""The library's warnings, shown by the CLI as plain lines on stderr.

The library logs its warnings (an untrained model, a run dir that barely trained, open_clip's
"initialized randomly") to the ``embedsearch`` logger and configures nothing: a host program
decides where they go. The CLI is such a host: it prints each as one line on stderr, beside its
``note:`` and ``error:`` lines, whatever else the process has configured.

Example:
    >>> show_library_warnings()
    >>> show_library_warnings()  # once is enough: a second call adds nothing
    >>> sum(isinstance(h, StderrLines) for h in logging.getLogger("embedsearch").handlers)
    1
"""

from __future__ import annotations

import logging


class StderrLines(logging.Handler):
    """Each record's message as one line on the CLI's stderr console (markup off)."""

    def emit(self, record: logging.LogRecord) -> None:
        from embedsearch.cli.render import stderr

        try:
            stderr.print(record.getMessage(), markup=False, highlight=False, soft_wrap=True)
        except Exception:  # logging must never break a command
            self.handleError(record)


def show_library_warnings() -> None:
    """Attach :class:`StderrLines` to the ``embedsearch`` logger, once per process."""
    library = logging.getLogger("embedsearch")
    if not any(isinstance(h, StderrLines) for h in library.handlers):
        handler = StderrLines(logging.WARNING)
        library.addHandler(handler)
