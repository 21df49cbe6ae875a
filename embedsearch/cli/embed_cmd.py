"""``embedsearch embed SOURCE --model SPEC --out EMB_DIR``."""

from __future__ import annotations

from pathlib import Path

import typer

from embedsearch.cli.app import app


@app.command("embed")
def embed_command(
    source: Path = typer.Argument(..., help="Image folder, text file (one document per line), or .csv/.tsv/.jsonl/.parquet table."),
    model: str = typer.Option(..., "--model", "-m", help="Model spec: simclr:resnet18, openclip:ARCH[/PRETRAINED], tiny-clip, or a run dir."),
    out: Path = typer.Option(..., "--out", "-o", help="Embedding dir to create or extend."),
    modality: str | None = typer.Option(None, help="image or text, when it cannot be inferred."),
    text_col: str | None = typer.Option(None, "--text-col", help="Table column holding texts."),
    image_col: str | None = typer.Option(None, "--image-col", help="Table column holding image paths (relative to the table's folder, or absolute)."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Inputs per model batch."),
    workers: int | None = typer.Option(None, "--workers", help="DataLoader workers decoding images (default: 0 on CPU, where the model uses every core; cores-1 on CUDA)."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16 (fp16 on CUDA only)."),
    image_size: int | None = typer.Option(None, "--image-size", help="Input size for backbones without a fixed one (SimCLR specs; default 64)."),
    shard_rows: int = typer.Option(100_000, "--shard-rows", help="Rows per Parquet shard."),
    num_shards: int | None = typer.Option(None, "--num-shards", help="Split the work into N slices (for schedulers other than torchrun)."),
    shard_index: int | None = typer.Option(None, "--shard-index", help="Which slice this process embeds (0-based)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any input failed."),
) -> None:
    """Embed an image or text corpus into Parquet shards (reruns add only what is missing)."""
    from embedsearch.cli.render import progress_bar, stderr, summary_table
    from embedsearch.embedding import embed

    with progress_bar() as bar:
        summary = embed(
            source, model=model, out=out, modality=modality, text_col=text_col, image_col=image_col,
            batch_size=batch_size, workers=workers, device=device, precision=precision,
            image_size=image_size, shard_rows=shard_rows, num_shards=num_shards,
            shard_index=shard_index, progress=bar,
        )
    title = f"embed → {summary.out}" + (f" (rank {summary.rank} of {summary.world_size})" if summary.world_size > 1 else "")
    stderr.print(summary_table(title, [
        ("embedded", summary.embedded),
        ("already present", summary.already_present),
        ("failed", summary.failed),
        ("superseded (changed files)", summary.superseded),
        ("shards written", len(summary.shards_written)),
        ("seconds", summary.seconds),
        ("items/s", summary.items_per_second),
    ]))
    for source_name, reason in summary.failures[:10]:
        stderr.print(f"[yellow]failed[/yellow] {source_name}: {reason}", markup=True, highlight=False)
    if summary.failed > 10:
        stderr.print(f"... and {summary.failed - 10} more, all in {summary.out / 'errors.parquet'}")
    if strict and summary.failed:
        raise typer.Exit(1)
