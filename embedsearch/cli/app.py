"""The Typer application and the error boundary shared by every command.

Each command module registers itself on :data:`app`; :func:`main` turns library
errors into one line on stderr and exit code 2 (``--debug`` keeps the traceback).
Nothing heavy is imported here so that ``embedsearch --help`` answers instantly.
"""

from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(
    name="embedsearch",
    help="Make unlabeled image and text collections searchable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_DEBUG_ENV = "EMBEDSEARCH_DEBUG"


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Make unlabeled image and text collections searchable."""
    if debug:
        os.environ[_DEBUG_ENV] = "1"


def _register_commands() -> None:
    """Import every ``embedsearch/cli/*_cmd.py``; importing one registers its command(s)."""
    import importlib
    import pkgutil

    import embedsearch.cli as cli_package

    for module in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if module.name.endswith("_cmd"):
            importlib.import_module(f"embedsearch.cli.{module.name}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``embedsearch`` console script."""
    from embedsearch.errors import EmbedsearchError
    from embedsearch.runtime import prefer_huge_pages

    prefer_huge_pages()  # before any command imports torch: fewer page faults in every model call
    _register_commands()
    try:
        app(args=argv, standalone_mode=True)
    except EmbedsearchError as e:
        if os.environ.get(_DEBUG_ENV) or "--debug" in (argv or sys.argv):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


_register_commands()
