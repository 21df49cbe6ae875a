"""``embedsearch dedup EMB_DIR|INDEX_DIR --out DIR [--threshold T] [--against OTHER]``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Literal

import typer

from embedsearch.cli.app import app
from embedsearch.dedup.options import DEFAULT_K, DEFAULT_NPROBE, Keep, Method


@app.command("dedup")
def dedup_command(
    path: Annotated[
        Path,
        typer.Argument(
            help="Embedding dir, or index dir (its embedding dirs supply the exact vectors)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Result dir: pairs.parquet, groups.parquet, keep.txt, remove.txt, histogram.png.",
        ),
    ],
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            "-t",
            help="Cosine similarity (of the whitened vectors when whitening) for near duplicates "
            "[default: from the data, see histogram.txt].",
        ),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="Another embedding/index dir: report only pairs across the two "
            "(train/test leakage).",
        ),
    ] = None,
    keep: Annotated[
        Keep, typer.Option("--keep", help="Which member of each group survives.")
    ] = "first",
    method: Annotated[
        Method,
        typer.Option(
            "--method",
            help="knn (FAISS neighbours, non-chaining groups) or semdedup "
            "(k-means + within-cluster pruning).",
        ),
    ] = "knn",
    clusters: Annotated[
        int | None,
        typer.Option("--clusters", help="semdedup: k-means clusters [default: about sqrt(N)]."),
    ] = None,
    eps: Annotated[
        float | None,
        typer.Option(
            "--eps", help="semdedup: remove items with similarity >= 1 - eps to a kept one."
        ),
    ] = None,
    k: Annotated[
        int,
        typer.Option("-k", help="Neighbours asked per item before falling back to a range search."),
    ] = DEFAULT_K,
    nprobe: Annotated[
        int, typer.Option("--nprobe", help="IVF lists searched per item (large sets only).")
    ] = DEFAULT_NPROBE,
    whiten: Annotated[
        bool | None,
        typer.Option(
            "--whiten/--no-whiten",
            help="PCA-whiten the vectors (fit on a sample) before comparing them "
            "[default: when it helps self-made copies of the corpus's images; knn only].",
        ),
    ] = None,
    output_format: Annotated[
        Literal["table", "json"],
        typer.Option("--format", help="table (on stderr) or json (summary on stdout)."),
    ] = "table",
) -> None:
    """Find exact and near duplicates (or train/test leaks with --against); write keep/remove
    lists."""
    from embedsearch.cli.render import progress_bar, stderr, stdout, summary_table
    from embedsearch.dedup import find_duplicates

    with progress_bar() as bar:
        result = find_duplicates(
            path,
            out=out,
            threshold=threshold,
            against=against,
            keep=keep,
            method=method,
            clusters=clusters,
            eps=eps,
            k=k,
            nprobe=nprobe,
            whiten=whiten,
            progress=bar,
        )
    if output_format == "json":
        stdout.print_json((result.out / "dedup.json").read_text())
        return
    stderr.print(
        summary_table(
            f"dedup → {result.out}",
            [
                ("rows", result.rows),
                ("threshold", f"{result.threshold:.4f}"),
                ("search", result.search),
                (
                    "scores",
                    f"{result.space} ({result.whitening})" if result.whitening else result.space,
                ),
                ("pairs (exact)", f"{result.pairs:,} ({result.exact_pairs:,})"),
                ("groups", result.groups),
                ("to remove", result.to_remove),
                ("kept", result.kept),
                ("seconds", result.seconds),
            ],
        )
    )
    say = functools.partial(stderr.print, markup=False, highlight=False)
    say(f"threshold {result.threshold_words}")
    for number, line in enumerate(result.advice):
        if line.startswith("$ "):  # a command: one line, never wrapped, so it can be copied
            say(f"    {line}", soft_wrap=True)
        else:
            say(f"advice: {line}" if number == 0 else f"  - {line}")
