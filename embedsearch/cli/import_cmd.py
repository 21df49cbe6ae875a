"""``embedsearch import SOURCE --model external:NAME --out EMB_DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedsearch.choices import Modality
from embedsearch.cli.app import app


@app.command("import")
def import_command(
    source: Annotated[
        Path,
        typer.Argument(
            help="Vectors made elsewhere: a .npy array (rows, dim), a .parquet/.csv/.tsv/.jsonl "
            "table with a vector column, or another embedding dir."
        ),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="external:NAME, a label for the model that made the vectors (text and image "
            "queries need a loadable model, so only --id and --vector queries work).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Embedding dir to create or extend.")],
    dim: Annotated[
        int | None, typer.Option(help="Refuse rows of another length than this.")
    ] = None,
    normalize: Annotated[
        bool,
        typer.Option(
            "--normalize",
            help="L2-normalise every row (scores become cosines). Without it rows are stored as "
            "given; the manifest says whether they are unit-length.",
        ),
    ] = False,
    modality: Annotated[Modality, typer.Option(help="What the vectors embed.")] = "image",
    vector_col: Annotated[
        str | None,
        typer.Option(help="Table column of vectors (default: embedding/vector)."),
    ] = None,
    source_col: Annotated[
        str | None,
        typer.Option(help="Table column naming each row (default: source)."),
    ] = None,
    sources: Annotated[
        Path | None,
        typer.Option(help="With a .npy: text file naming each row, one a line."),
    ] = None,
    ids: Annotated[
        Path | None,
        typer.Option(help="With a .npy: the rows' own ids (.npy or text), kept as input_id."),
    ] = None,
) -> None:
    """Bring vectors computed by another tool in as an embedding dir (reruns add what is new)."""
    from embedsearch.cli.render import progress_bar, stderr, summary_table
    from embedsearch.data.vector_import import import_vectors

    with progress_bar() as bar:
        summary = import_vectors(
            source,
            out=out,
            model=model,
            dim=dim,
            normalize=normalize,
            modality=modality,
            vector_col=vector_col,
            source_col=source_col,
            sources_file=sources,
            ids_file=ids,
            progress=bar,
        )
    stderr.print(
        summary_table(
            f"import → {summary.out}",
            [
                ("imported", summary.imported),
                ("already present", summary.already_present),
                ("superseded (changed vectors)", summary.superseded),
                ("dim", summary.dim),
                ("normalized", "yes" if summary.normalized else "no (stored as given)"),
            ],
        )
    )
