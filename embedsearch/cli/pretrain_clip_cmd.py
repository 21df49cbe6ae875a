"""``embedsearch pretrain clip PAIRS --out RUN_DIR``: train or fine-tune CLIP on image-text pairs"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedsearch.cli.pretrain_cmd import (
    AccumulateOption,
    DeviceOption,
    PrecisionOption,
    ResumeOption,
    ThreadsOption,
    WorkersOption,
    pretrain_app,
    run_training,
)

# Parts of the training loss that ``pretrain_clip`` logs per epoch (metrics.jsonl keys).
LOSS_PARTS = (("loss_contrastive", "contrastive"), ("loss_words", "caption words"))


@pretrain_app.command("clip")
def clip_command(
    pairs: Annotated[
        Path,
        typer.Argument(
            help="CSV/TSV/JSONL/Parquet table of image paths + captions, "
            "an image folder with same-name .txt captions, "
            "or WebDataset tar shards ('data/{00000..00099}.tar', quoted)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Run dir to write (config.json, model.safetensors, metrics.jsonl, loss.png).",
        ),
    ],
    model: Annotated[
        str,
        typer.Option(
            help="tiny (the CPU config tiny-clip) or any open_clip architecture, "
            "e.g. ViT-B-32, RN50."
        ),
    ] = "tiny",
    pretrained: Annotated[
        str | None,
        typer.Option(
            help="Start from an open_clip pretrained tag or a local weights file (fine-tuning)."
        ),
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="Start from the weights of an earlier CLIP run dir.")
    ] = None,
    image_col: Annotated[
        str | None, typer.Option(help="Image path column [default: first of filepath|image|path].")
    ] = None,
    text_col: Annotated[
        str | None, typer.Option(help="Caption column [default: first of caption|text|title].")
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Held-out share of pairs for per-epoch recall@1/5/10.")
    ] = 0.1,
    epochs: Annotated[
        int, typer.Option(help="Total epochs (with --resume: train up to this many).")
    ] = 10,
    batch_size: Annotated[
        int, typer.Option(help="Global batch per optimiser step (all ranks, all micro-batches).")
    ] = 60,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Peak learning rate [default: 1e-3 from scratch, 1e-5 with --pretrained]."
        ),
    ] = None,
    weight_decay: Annotated[
        float, typer.Option(help="AdamW weight decay (gains, biases and logit scale excluded).")
    ] = 0.1,
    warmup_epochs: Annotated[
        float, typer.Option(help="Linear warmup before the cosine decay.")
    ] = 1.0,
    word_loss: Annotated[
        float | None,
        typer.Option(
            help="Weight of the caption-word loss (the image embedding predicts its caption's "
            "words; teaches a CLIP trained from scratch what captions name, such as shape); "
            "0 turns it off, which retrieves better in short runs on few pairs "
            "[default: 1.5 from scratch or --init, 0 with --pretrained].",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (shuffling, held-out split).")] = 0,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    accumulate: AccumulateOption = 1,
    workers: WorkersOption = None,
    threads: ThreadsOption = None,
    resume: ResumeOption = False,
) -> None:
    """Train CLIP on PAIRS; the run dir then works with embed, index and query --text."""
    from embedsearch.cli.render import stderr, summary_table
    from embedsearch.train.clip import pretrain_clip

    result = run_training(
        pretrain_clip,
        pairs,
        out=out,
        model=model,
        pretrained=pretrained,
        image_col=image_col,
        text_col=text_col,
        val_fraction=val_fraction,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        word_loss=word_loss,
        seed=seed,
        warmup_epochs=warmup_epochs,
        device=device,
        precision=precision,
        accumulate=accumulate,
        workers=workers,
        threads=threads,
        resume=resume,
        init=init,
    )
    if result is None:
        return
    summary = result.train
    last = summary.metrics[-1] if summary.metrics else {}
    rows = [
        ("run dir", str(summary.out)),
        ("pairs", result.pairs.summary()),
        ("train / held-out pairs", f"{result.train_pairs:,} / {result.val_pairs:,}"),
        ("epochs", summary.epochs),
        ("steps", summary.steps),
        ("final loss", float(last.get("loss", float("nan")))),
        *[(f"  of which {part}", float(last[key])) for key, part in LOSS_PARTS if key in last],
        ("pairs/s (last epoch)", float(last.get("images_per_s", 0.0))),
    ]
    for key, label in (
        ("eval_text_to_image_r5", "held-out text→image R@5"),
        ("eval_image_to_text_r5", "held-out image→text R@5"),
    ):
        if key in last:
            rows.append((label, float(last[key])))
    if result.skipped_images:
        rows.append(("unreadable images replaced", result.skipped_images))
    stderr.print(summary_table("pretrain clip", rows))
    for example in result.pairs.examples:
        stderr.print(f"skipped {example}", highlight=False)
