"""``embedsearch query INDEX_DIR (--text T | --image PATH | --id ID | --vector F.npy | --queries FILE)``."""

from __future__ import annotations

from pathlib import Path

import typer

from embedsearch.cli.app import app

FORMATS = ("table", "json", "jsonl", "csv")


@app.command("query")
def query_command(
    index_dir: Path = typer.Argument(..., help="Index dir made by `index`."),
    text: str | None = typer.Option(None, "--text", help="Text query (needs a model with a text tower)."),
    image: Path | None = typer.Option(None, "--image", help="Image file query."),
    embedding_id: int | None = typer.Option(None, "--id", help="Embedding id of an indexed row."),
    source_dir: int = typer.Option(0, "--dir", help="With --id: which source dir of the index (0 = first)."),
    vector: Path | None = typer.Option(None, "--vector", help=".npy file with one vector (dim,) or several (n, dim)."),
    queries: Path | None = typer.Option(None, "--queries", help="File with one text or image path per line, searched as a batch."),
    k: int = typer.Option(10, "-k", help="Hits per query."),
    output_format: str = typer.Option("table", "--format", help="table, json, jsonl or csv (machine formats on stdout)."),
    grid: Path | None = typer.Option(None, "--grid", help="Write a contact-sheet PNG of the query and its image hits."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Search an index by text, image, id, vector or a file of queries."""
    from embedsearch.cli.render import stderr, stdout
    from embedsearch.errors import InputError
    from embedsearch.index.query import QuerySpec, run_queries
    from embedsearch.index.render import hits_table, write_hits

    if output_format not in FORMATS:
        raise InputError(f"unknown --format {output_format!r}: use {', '.join(FORMATS)}")
    spec = QuerySpec(text=text, image=image, embedding_id=embedding_id, dir=source_dir, vector=vector,
                     queries=queries)
    results = run_queries(index_dir, spec, k=k, device=device)
    if grid is not None:
        from embedsearch.index.grid import write_grid

        write_grid(results, grid)
        stderr.print(f"grid → {grid}")
    if output_format == "table":
        for result in results:
            stdout.print(hits_table(result, width=stdout.width))
    else:
        write_hits(results, output_format, stdout.file)
