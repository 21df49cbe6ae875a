"""``embedsearch query INDEX_DIR (--text T | --image PATH | --id ID | --vector F.npy |
--queries FILE)``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from embedsearch.choices import Device
from embedsearch.cli.app import app

if TYPE_CHECKING:
    from embedsearch.index.scores import ScoreScale


@app.command("query")
def query_command(
    index_dir: Annotated[Path, typer.Argument(help="Index dir made by `index`.")],
    text: Annotated[
        str | None, typer.Option(help="Text query (needs a model with a text tower).")
    ] = None,
    image: Annotated[Path | None, typer.Option(help="Image file query.")] = None,
    embedding_id: Annotated[
        int | None, typer.Option("--id", help="Embedding id of an indexed row.")
    ] = None,
    source_dir: Annotated[
        int, typer.Option("--dir", help="With --id: which source dir of the index (0 = first).")
    ] = 0,
    vector: Annotated[
        Path | None,
        typer.Option(help=".npy file with one vector (dim,) or several (n, dim)."),
    ] = None,
    queries: Annotated[
        Path | None,
        typer.Option(help="File with one text or image path per line, searched as a batch."),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Hits per query.")] = 10,
    output_format: Annotated[
        Literal["table", "json", "jsonl", "csv"],
        typer.Option("--format", help="Machine formats go to stdout."),
    ] = "table",
    grid: Annotated[
        Path | None,
        typer.Option(help="Write a contact-sheet PNG of the query and its image hits."),
    ] = None,
    device: Annotated[Device, typer.Option()] = "auto",
    model: Annotated[
        str | None,
        typer.Option(
            help="The model that embeds text/image queries, when the index cannot find its own "
            "(a run dir moved away from an older index): checked by fingerprint.",
        ),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            help="Only rows where this SQL condition holds, over the metadata columns, id and "
            "source (DuckDB syntax), e.g. \"license = 'cc0' AND year >= 2020\".",
        ),
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(help="Leave out hits scoring below this (fewer than -k)."),
    ] = None,
) -> None:
    """Search an index by text, image, id, vector or a file of queries."""
    from embedsearch.cli.render import stderr, stdout
    from embedsearch.index.hit_formats import hits_table, write_grid, write_hits
    from embedsearch.index.query import QuerySpec, run_queries

    check_index_dir(index_dir)

    spec = QuerySpec(
        text=text,
        image=image,
        embedding_id=embedding_id,
        dir=source_dir,
        vector=vector,
        queries=queries,
    )
    notes: list[str] = []
    results = run_queries(
        index_dir,
        spec,
        k=k,
        device=device,
        notes=notes,
        model=model,
        where=where,
        min_score=min_score,
    )
    for note in notes:
        stderr.print(f"note: {note}", markup=False, highlight=False)
    for result in results:
        if result.error is not None:
            stderr.print(f"failed: {result.error}", markup=False, highlight=False)
    answered = [r for r in results if r.error is None]
    if grid is not None:
        write_grid(answered, grid)
        stderr.print(f"grid → {grid}")
    scale = score_scale(index_dir)
    if output_format == "table":
        for result in answered:
            stdout.print(hits_table(result, width=stdout.width, scale=scale))
        if scale.known and any(scale.applies_to(r.kind) for r in answered):
            stdout.print(
                f"pct: % of random pairs of this index that score lower; {scale.footer()}",
                soft_wrap=False,
                highlight=False,
            )
    else:
        write_hits(results, output_format, stdout.file, scale)


def score_scale(index_dir: Path) -> ScoreScale:
    """What a score means in ``index_dir`` (its ``index.json``, read again: a small file)."""
    from embedsearch.index.layout import read_info
    from embedsearch.index.scores import ScoreScale

    info = read_info(index_dir)
    return ScoreScale.of(info.score_percentiles, info.similarity, info.modality)


def check_index_dir(path: Path) -> None:
    """Refuse an embedding dir or a model run dir given as the index, saying what to run."""
    if (path / "index.json").exists():
        return
    # only on the way to an error
    from embedsearch.encoders.locate import is_run_dir
    from embedsearch.errors import InputError
    from embedsearch.store.embedding_dir import EmbeddingDir

    if EmbeddingDir.is_embedding_dir(path):
        raise InputError(
            f"{path} is an embedding dir, not an index dir: build an index of it with "
            f"`embedsearch index {path} --out INDEX_DIR` and query that"
        )
    if is_run_dir(path):
        raise InputError(
            f"{path} is a model run dir, not an index dir: `embedsearch embed IMAGES --model "
            f"{path} --out EMB_DIR`, then `embedsearch index EMB_DIR --out INDEX_DIR`"
        )
