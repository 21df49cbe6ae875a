"""``embedsearch dedup EMB_DIR|INDEX_DIR|IMAGE_FOLDER --out DIR [--threshold T] [--against OTHER]``.

An image folder goes through :func:`embedsearch.folder_dedup.dedup_image_folder` (pretrain with
the copy-detection preset, embed flip-averaged, dedup with the perceptual-hash stage); the
options marked "image folder" only apply there.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from embedsearch.cli.app import app
from embedsearch.dedup.options import (
    DEFAULT_K,
    DEFAULT_NPROBE,
    DEFAULT_PHASH_DISTANCE,
    Keep,
    Method,
)
from embedsearch.errors import InputError


@app.command("dedup")
def dedup_command(
    path: Annotated[
        Path,
        typer.Argument(
            help="Embedding dir, index dir (its embedding dirs supply the exact vectors), or a "
            "folder of images (pretrains a copy-detection model on it first)."
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
            help="Cosine similarity (of the whitened vectors when whitening; less the "
            "neighbourhood levels with --local-scaling) for near duplicates "
            "[default: from the data, see histogram.txt].",
        ),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            help="Another embedding/index dir: report only pairs across the two "
            "(train/test leakage).",
        ),
    ] = None,
    keep: Annotated[Keep, typer.Option(help="Which member of each group survives.")] = "first",
    method: Annotated[
        Method,
        typer.Option(
            help="knn (FAISS neighbours, non-chaining groups) or semdedup "
            "(k-means + within-cluster pruning).",
        ),
    ] = "knn",
    clusters: Annotated[
        int | None,
        typer.Option(help="semdedup: k-means clusters [default: about sqrt(N)]."),
    ] = None,
    eps: Annotated[
        float | None,
        typer.Option(help="semdedup: remove items with similarity >= 1 - eps to a kept one."),
    ] = None,
    k: Annotated[
        int,
        typer.Option(
            "-k",
            help="Neighbours asked per item before falling back to a range search (sets of up to "
            "20,000 rows, and --against; larger sets keep every pair in the cells they search).",
        ),
    ] = DEFAULT_K,
    nprobe: Annotated[
        int, typer.Option(help="IVF lists searched per item (large sets only).")
    ] = DEFAULT_NPROBE,
    whiten: Annotated[
        bool | None,
        typer.Option(
            "--whiten/--no-whiten",
            help="PCA-whiten the vectors (fit on a sample) before comparing them "
            "[default: when it helps self-made copies of the corpus's images; knn only].",
        ),
    ] = None,
    local_scaling: Annotated[
        bool | None,
        typer.Option(
            help="Compare each pair's score less the two items' neighbourhood levels (how "
            "alike each is to its nearest sampled rows) [default: when it helps self-made "
            "copies of the corpus's images and the threshold is calibrated; knn only].",
        ),
    ] = None,
    phash: Annotated[
        bool | None,
        typer.Option(
            "--phash/--no-phash",
            help="Also pair images whose perceptual hashes (pHash, 64 bits) differ in at most "
            "--phash-distance bits: near-exact copies a model may miss "
            "[default: on for an image folder, off for embedding dirs].",
        ),
    ] = None,
    phash_distance: Annotated[
        int, typer.Option(help="Hamming distance of --phash.")
    ] = DEFAULT_PHASH_DISTANCE,
    model: Annotated[
        str | None,
        typer.Option(
            help="Image folder: embed with this run dir or spec instead of pretraining one.",
        ),
    ] = None,
    pretrain_on: Annotated[
        Path | None,
        typer.Option(
            help="Image folder: pretrain on these images instead (e.g. more photos of the same "
            "kind; better than the folder itself when it is small).",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(help="Image folder: pretraining epochs [default: the preset's steps]."),
    ] = None,
    work: Annotated[
        Path | None,
        typer.Option(
            help="Image folder: where the model and embeddings go [default: OUT.work]; a "
            "finished model there is reused.",
        ),
    ] = None,
    flip_average: Annotated[
        bool,
        typer.Option(
            "--flip-average/--no-flip-average",
            help="Image folder: embed each image and its mirror, averaged (finds mirrored "
            "copies; twice the embedding work).",
        ),
    ] = True,
    output_format: Annotated[
        Literal["table", "json"],
        typer.Option("--format", help="table (on stderr) or json (summary on stdout)."),
    ] = "table",
) -> None:
    """Find exact and near duplicates (or train/test leaks with --against); write keep/remove
    lists."""
    from embedsearch.cli.render import progress_bar, stderr, stdout, summary_table
    from embedsearch.dedup import find_duplicates

    folder_only = {
        "--model": model is not None,
        "--pretrain-on": pretrain_on is not None,
        "--epochs": epochs is not None,
        "--work": work is not None,
        "--no-flip-average": not flip_average,
    }
    folder_result = None
    if is_image_folder(path):
        if against is not None or method != "knn":
            raise InputError("an image folder is deduplicated with --method knn, without --against")
        folder_result = _dedup_folder(
            path,
            out=out,
            work=work,
            model=model,
            pretrain_on=pretrain_on,
            epochs=epochs,
            threshold=threshold,
            keep=keep,
            phash=None if phash is False else phash_distance,
            flip_average=flip_average,
            whiten=whiten,
            local_scaling=local_scaling,
        )
    elif given := [name for name, on in folder_only.items() if on]:
        raise InputError(f"{', '.join(given)}: only for an image folder, and {path} is not one")
    with progress_bar() as bar:
        result = folder_result or find_duplicates(
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
            local_scaling=local_scaling,
            phash=phash_distance if phash else None,
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
                    f"{result.space} ({result.whitening}; local scaling {result.local_scaling})"
                    if result.whitening
                    else result.space,
                ),
                ("pairs (exact)", f"{result.pairs:,} ({result.exact_pairs:,})"),
                *(
                    [("pairs only pHash found", f"{result.phash_pairs:,}")]
                    if result.phash_pairs
                    else []
                ),
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


def is_image_folder(path: Path) -> bool:
    """A folder that is neither an embedding dir nor an index dir."""
    from embedsearch.index.layout import INFO_FILE
    from embedsearch.store.embedding_dir import EmbeddingDir

    return (
        path.is_dir()
        and not EmbeddingDir.is_embedding_dir(path)
        and not (path / INFO_FILE).is_file()
    )


def _dedup_folder(path: Path, **options: Any) -> Any:
    """:func:`~embedsearch.folder_dedup.dedup_image_folder` with ``options``, its steps and
    timings on stderr."""
    from embedsearch.cli.render import progress_bar, stderr
    from embedsearch.folder_dedup import dedup_image_folder

    def notify(line: str) -> None:
        stderr.print(line, markup=False, highlight=False, soft_wrap=True)

    with progress_bar() as bar:
        folder_result = dedup_image_folder(path, progress=bar, notify=notify, **options)
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in folder_result.seconds.items())
    stderr.print(
        f"model {folder_result.model}; embeddings {folder_result.embeddings}; {seconds}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return folder_result.dedup
