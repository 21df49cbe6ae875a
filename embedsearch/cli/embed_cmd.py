"""``embedsearch embed SOURCE --model SPEC --out EMB_DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedsearch.choices import Device, Modality, Precision
from embedsearch.cli.app import app
from embedsearch.encoders.defaults import DEFAULT_IMAGE_SIZES, UNTRAINED_SPECS


@app.command("embed")
def embed_command(
    source: Annotated[
        Path,
        typer.Argument(
            help="Image folder, text file (one document per line), "
            ".csv/.tsv/.jsonl/.parquet table, or WebDataset tar shards "
            "('data/{00000..00099}.tar', quoted).",
        ),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Model spec: a run dir from `pretrain`, openclip:ARCH/PRETRAINED (tag or "
            f"weights file); untrained (random weights, hits mean nothing): {UNTRAINED_SPECS}.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Embedding dir to create or extend.")],
    modality: Annotated[
        Modality | None, typer.Option(help="What to embed, when it cannot be inferred.")
    ] = None,
    text_col: Annotated[str | None, typer.Option(help="Table column holding texts.")] = None,
    image_col: Annotated[
        str | None,
        typer.Option(
            help="Table column holding image paths (relative to the table's folder, or absolute).",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", help="Inputs per model batch.")
    ] = 64,
    workers: Annotated[
        int | None,
        typer.Option(
            help="DataLoader workers decoding images (default: 0 on CPU, where the model "
            "uses every core; cores-1 on CUDA).",
        ),
    ] = None,
    device: Annotated[Device, typer.Option(help="auto: CUDA when present.")] = "auto",
    precision: Annotated[
        Precision, typer.Option(help="auto: bf16 on CUDA, fp32 on the CPU; fp16 needs CUDA.")
    ] = "fp32",
    image_size: Annotated[
        int | None,
        typer.Option(
            help="Input size for backbones without a fixed one (simclr:ARCH; default "
            f"{DEFAULT_IMAGE_SIZES['simclr']}, as `pretrain simclr`). A run dir uses its own.",
        ),
    ] = None,
    flip_average: Annotated[
        bool,
        typer.Option(
            "--flip-average",
            help="Embed each image and its mirror image and average them (mirror-invariant "
            "vectors for dedup; twice the model work).",
        ),
    ] = False,
    shard_rows: Annotated[int, typer.Option(help="Rows per Parquet shard.")] = 100_000,
    commit_seconds: Annotated[
        float,
        typer.Option(
            help="Also commit the open shard after this many seconds, so a crash loses at most "
            "that much work.",
        ),
    ] = 60.0,
    num_shards: Annotated[
        int | None,
        typer.Option(
            help="Split the work into N slices (for schedulers other than torchrun).",
        ),
    ] = None,
    shard_index: Annotated[
        int | None, typer.Option(help="Which slice this process embeds (0-based).")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any input failed.")] = False,
    prune: Annotated[
        bool | None,
        typer.Option(
            "--prune/--no-prune",
            help="Record the rows of inputs that are gone as deleted (default: for image folders "
            "only; a table or text file needs --prune). An unreadable file is never pruned.",
        ),
    ] = None,
) -> None:
    """Embed an image or text corpus into Parquet shards (reruns add only what is missing)."""
    from embedsearch.cli.render import progress_bar, stderr, summary_table
    from embedsearch.embedding import embed
    from embedsearch.store.embedding_dir import ERRORS

    try:
        with progress_bar() as bar:
            summary = embed(
                source,
                model=model,
                out=out,
                modality=modality,
                text_col=text_col,
                image_col=image_col,
                batch_size=batch_size,
                workers=workers,
                device=device,
                precision=precision,
                image_size=image_size,
                flip_average=flip_average,
                shard_rows=shard_rows,
                commit_seconds=commit_seconds,
                num_shards=num_shards,
                shard_index=shard_index,
                prune=prune,
                progress=bar,
            )
    except KeyboardInterrupt:
        # Caught here, not by click (which prints "Aborted!" and exits 1): committed shards
        # stay and a rerun continues from them.
        stderr.print(f"interrupted: committed rows are kept in {out}; rerun the same command")
        raise typer.Exit(130) from None
    for name in summary.repaired_shards:
        stderr.print(
            f"[yellow]damaged shard[/yellow] {name} set aside; its inputs were embedded again",
            markup=True,
        )
    title = f"embed → {summary.out}" + (
        f" (rank {summary.rank} of {summary.world_size})" if summary.world_size > 1 else ""
    )
    stderr.print(
        summary_table(
            title,
            [
                ("embedded", summary.embedded),
                ("already present", summary.already_present),
                ("failed", summary.failed),
                ("superseded (changed files)", summary.superseded),
                ("deleted (inputs gone)", len(summary.gone.ids) if summary.gone.recorded else 0),
                ("shards written", len(summary.shards_written)),
                ("seconds", summary.seconds),
                ("items/s", summary.items_per_second),
            ],
        )
    )
    if summary.gone.held_back:
        stderr.print(
            f"{len(summary.gone.ids)} rows' inputs are gone but were kept: "
            f"{summary.gone.held_back}; rerun with --prune to delete them"
        )
    for source_name, reason in summary.failures[:10]:
        stderr.print(
            f"[yellow]failed[/yellow] {source_name}: {reason}", markup=True, highlight=False
        )
    if summary.failed > 10:
        stderr.print(f"... and {summary.failed - 10} more, all in {summary.out / ERRORS}")
    if strict and summary.failed:
        raise typer.Exit(1)
