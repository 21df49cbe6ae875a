"""``embedsearch make-corpus shapes --out DIR -n N``: the seeded synthetic captioned corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedsearch.cli.app import app

corpus_app = typer.Typer(
    name="make-corpus",
    help="Generate a synthetic corpus for trying the pipeline without data or network.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(corpus_app, name="make-corpus")


@corpus_app.command("shapes")
def shapes_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to create (must not exist or be empty).")
    ],
    n: Annotated[int, typer.Option("-n", help="Number of captioned images.")] = 2000,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed and n give the same corpus.")
    ] = 0,
    image_size: Annotated[int, typer.Option(help="Image side in pixels.")] = 64,
) -> None:
    """Coloured shapes of several kinds, sizes and positions, with paraphrased captions.

    Writes DIR/images/NNNNN.png with same-name .txt captions and DIR/pairs.csv
    (filepath, caption, shape, color, size, position, background): ready for
    `pretrain clip DIR/pairs.csv` and `embed DIR/pairs.csv --image-col filepath`.
    """
    from embedsearch.cli.render import progress_bar, stderr, summary_table
    from embedsearch.data.shapes import make_shapes_corpus

    with progress_bar() as bar:
        corpus = make_shapes_corpus(out, n, seed=seed, image_size=image_size, progress=bar)
    stderr.print(
        summary_table(
            "make-corpus shapes",
            [
                ("folder", str(corpus.root)),
                ("images", corpus.n),
                ("pairs table", str(corpus.pairs)),
                ("seed", str(corpus.seed)),
            ],
        )
    )
