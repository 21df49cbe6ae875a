"""``embedsearch info PATH``: describe a run dir, embedding dir, index dir or dedup dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from embedsearch.cli.app import app

InfoFormat = Literal["table", "json"]


@app.command("info")
def info_command(
    path: Annotated[Path, typer.Argument(help="A run dir, embedding dir, index dir or dedup dir.")],
    output_format: Annotated[
        InfoFormat,
        typer.Option(
            "--format",
            help="table (for people) or json (a typed document with snake_case keys on stdout; "
            "keys in the README).",
        ),
    ] = "table",
    as_json: Annotated[
        bool, typer.Option("--json", hidden=True, help="Same as --format json (kept for scripts).")
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Index dirs: check every byte of the index files against their checksums, "
            "the memory-mapped ones too (opening checks those only for size).",
        ),
    ] = False,
) -> None:
    """Describe a run dir, embedding dir, index dir or dedup result dir.

    Model, fingerprint, dim, rows and failures; for an index its recall and score scale, for a
    dedup dir its threshold and counts.
    """
    if verify:
        from embedsearch.index.layout import verify_index_dir

        verify_index_dir(path)  # FormatError (exit 2, one line) names a damaged file
    if as_json or output_format == "json":
        from embedsearch.info import info_document

        print(json.dumps(info_document(path)))
        return
    from embedsearch.cli.render import stdout, summary_table
    from embedsearch.info import describe

    kind, facts = describe(path)
    stdout.print(
        summary_table(
            f"{kind}: {path}",
            [(k, v if isinstance(v, (int, float)) else str(v)) for k, v in facts.items()],
        )
    )
