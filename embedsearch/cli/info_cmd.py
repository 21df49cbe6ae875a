"""``embedsearch info PATH``: describe a run dir, embedding dir or index dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from embedsearch.cli.app import app


@app.command("info")
def info_command(
    path: Annotated[Path, typer.Argument(help="A run dir, embedding dir or index dir.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON to stdout instead of a table.")
    ] = False,
) -> None:
    """Describe a run dir, embedding dir or index dir: model, fingerprint, dim, rows, failures."""
    from embedsearch.cli.render import stdout, summary_table
    from embedsearch.info import describe

    kind, facts = describe(path)
    if as_json:
        print(json.dumps({"kind": kind, **facts}, default=str))
    else:
        stdout.print(
            summary_table(
                f"{kind}: {path}",
                [(k, v if isinstance(v, (int, float)) else str(v)) for k, v in facts.items()],
            )
        )
