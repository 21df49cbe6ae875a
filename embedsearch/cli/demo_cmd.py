"""``embedsearch demo [--out DIR]``: generate, train, embed, index and search, on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedsearch.cli.app import app


@app.command("demo")
def demo_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for everything the demo makes (new, empty, or an earlier demo).",
        ),
    ] = Path("embedsearch-demo"),
    n: Annotated[
        int, typer.Option("-n", help="Captioned images to generate (10% are held out).")
    ] = 3000,
    epochs: Annotated[int, typer.Option(help="Training epochs of the tiny CLIP.")] = 9,
    seed: Annotated[int, typer.Option(help="Random seed (corpus, training, held-out split).")] = 0,
) -> None:
    """The whole pipeline on a synthetic corpus, no data or network needed (minutes on 2 cores).

    Generates captioned shapes, trains the tiny CLIP from scratch, embeds the images, builds
    an index, searches it by text (table + grid.png) and reports held-out text→image recall.
    """
    from rich.table import Table

    from embedsearch.cli.render import progress_bar, stderr, stdout, summary_table
    from embedsearch.demo import run_demo

    with progress_bar() as bar:
        result = run_demo(out, n=n, epochs=epochs, seed=seed, progress=bar)
    table = Table(
        title="text → image search (green = every attribute in the query matches)",
        title_justify="left",
    )
    table.add_column("query", no_wrap=True)
    # numbers never cut at 80 columns: captions wrap instead
    table.add_column("#", justify="right", no_wrap=True, min_width=1)
    table.add_column("hit caption", justify="left")
    table.add_column("score", justify="right", no_wrap=True, min_width=5)
    table.add_column("match", justify="center", no_wrap=True, min_width=5)
    for query in result.queries:
        for rank, hit in enumerate(query.hits, start=1):
            table.add_row(
                query.text if rank == 1 else "",
                str(rank),
                hit.caption,
                f"{hit.score:.3f}",
                "[green]yes[/green]" if hit.match else "[red]no[/red]",
                end_section=rank == len(query.hits),
            )
    stdout.print(table)
    stdout.print(
        summary_table(
            "demo",
            [
                ("held-out text→image recall@1", f"{result.recall_at_1:.3f}"),
                ("held-out text→image recall@5", f"{result.recall_at_5:.3f}"),
                (
                    "chance recall@5",
                    f"{result.chance_at_5:.3f} (5 of {result.held_out} held-out images)",
                ),
                (
                    "query hits matching every attribute",
                    f"{sum(q.precision for q in result.queries) / len(result.queries):.2f}",
                ),
                (
                    "seconds: corpus/train/embed/index/search",
                    " / ".join(f"{s:.0f}" for s in result.seconds.values()),
                ),
            ],
        )
    )
    stdout.print(
        f"result grid: {result.grid}   (frames: green = every attribute matches, red = some "
        "differ; the legend is under the grid)",
        highlight=False,
    )
    stdout.print(
        f"index:       {result.out / 'index'}   "
        f"(search it: embedsearch query {result.out / 'index'} --text 'a red star')",
        highlight=False,
    )
    stderr.print(
        f"model run dir: {result.out / 'model'} (loss.png, metrics.jsonl)", highlight=False
    )
