"""The Typer application and the error boundary shared by every command.

Each command module registers itself on :data:`app`; :func:`main` turns library
errors into one line on stderr and exit code 2 (``--debug``, before or after the command,
prints the traceback too; the exit code stays 2). Nothing heavy is imported here so that
``embedsearch --help`` answers instantly.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer
from typer import _click  # the click Typer vendors
from typer.core import TyperGroup


class HelpGroup(TyperGroup):
    """A command group whose ``--help`` lists each command's whole first sentence, wrapped.

    Click cuts the descriptions to what fits one line of the terminal ("Find exact and near
    duplicates (or train/test leaks with...") at 80 columns; wrapping keeps them readable.
    """

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    name="embedsearch",
    help="Make unlabeled image and text collections searchable.",
    cls=HelpGroup,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

DEBUG_FLAG = "--debug"
COMPLETION_VAR = "_EMBEDSEARCH_COMPLETE"  # click's name for it: _{PROG_NAME}_COMPLETE


def _print_version(asked: bool) -> None:
    if asked:
        from embedsearch import __version__

        print(f"embedsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, DEBUG_FLAG, help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Make unlabeled image and text collections searchable."""
    # main() takes --debug out of the arguments wherever it stands; declared here for --help.


def _split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug`` (anywhere before a ``--``), and whether it was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [a for a in argv[:end] if a != DEBUG_FLAG] + argv[end:]
    return kept, len(kept) != len(argv)


def _register_commands() -> None:
    """Import every ``embedsearch/cli/*_cmd.py``; importing one registers its command(s)."""
    import importlib
    import pkgutil

    import embedsearch.cli as cli_package

    for module in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if module.name.endswith("_cmd"):
            importlib.import_module(f"embedsearch.cli.{module.name}")
    finish_commands(app)


def finish_commands(group: typer.Typer, path: str = "") -> None:
    """Give every command of ``group`` (and of its sub-groups) its examples as the epilog of its
    ``--help`` (:data:`embedsearch.cli.examples.EXAMPLES`), and every sub-group the wrapping
    command list of :class:`HelpGroup`; commands keep an epilog of their own."""
    from embedsearch.cli.examples import EXAMPLES

    for command in group.registered_commands:
        name = f"{path}{command.name}"
        if not command.epilog and name in EXAMPLES:
            command.epilog = EXAMPLES[name]
    for sub in group.registered_groups:
        sub.cls = HelpGroup
        if sub.typer_instance is not None:
            finish_commands(sub.typer_instance, f"{path}{sub.name} ")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``embedsearch`` console script.

    Every failure the user can act on ends as one line on stderr: ``error: …`` with exit 2
    (library errors, usage errors, I/O errors naming their file), or ``interrupted`` with
    exit 130 on Ctrl-C. Anything else is a bug and keeps its traceback.
    """
    from embedsearch.runtime import prefer_huge_pages

    prefer_huge_pages()  # before any command imports torch: fewer page faults in every model call
    _register_commands()
    args, debug = _split_debug(list(sys.argv[1:] if argv is None else argv))
    sys.exit(run_app(args, debug))


def run_app(args: list[str], debug: bool = False) -> int:
    """Run the Typer app on ``args`` and return the exit code (see :func:`main`).

    The click machinery runs here rather than in Typer's standalone mode, which would
    print a multi-line usage panel for a bad option and turn Ctrl-C into a silent 130.
    """
    from typer._click.exceptions import NoArgsIsHelpError

    from embedsearch.cli.failures import user_message
    from embedsearch.cli.library_log import show_library_warnings

    show_library_warnings()  # the library logs its warnings; the CLI prints them on stderr
    command = typer.main.get_command(app)
    if COMPLETION_VAR in os.environ:  # the shell asks for completions: click answers and exits
        command.main(args, prog_name="embedsearch")
    try:
        with command.make_context("embedsearch", args) as ctx:
            command.invoke(ctx)
    except typer.Exit as e:  # --help, and commands that end with a given code
        return int(e.exit_code or 0)
    except (KeyboardInterrupt, typer.Abort):
        print("interrupted", file=sys.stderr)
        return 130
    except NoArgsIsHelpError as e:  # a bare command group: show its help, as Typer would
        e.show()
        return 2
    except Exception as e:  # user_message() knows the errors users cause; the rest re-raise
        message = user_message(e)
        if message is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


_register_commands()
