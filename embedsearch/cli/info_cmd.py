"""``embedsearch info PATH``: describe a run dir, embedding dir or index dir."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from embedsearch.cli.app import app


@app.command("info")
def info_command(
    path: Path = typer.Argument(..., help="A run dir, embedding dir or index dir."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of a table."),
) -> None:
    """Describe a run dir, embedding dir or index dir: model, fingerprint, dim, rows, shards, failures."""
    from embedsearch.cli.render import stdout, summary_table
    from embedsearch.info import describe

    kind, facts = describe(path)
    if as_json:
        print(json.dumps({"kind": kind, **facts}, default=str))
    else:
        stdout.print(summary_table(f"{kind}: {path}", [(k, v if isinstance(v, (int, float)) else str(v)) for k, v in facts.items()]))
