"""``embedsearch pretrain simclr``: self-supervised training on a folder of images.

The ``pretrain`` group is :data:`pretrain_app`; other objectives add their command to
it from their own module (``pretrain_clip_cmd.py`` imports ``pretrain_app``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from embedsearch.choices import (
    Device,
    OptimizerName,
    Precision,
    ResnetArch,
    SimCLRPreset,
    Stem,
)
from embedsearch.cli.app import app

pretrain_app = typer.Typer(
    name="pretrain",
    help="Train an encoder on your own data (SimCLR on images, CLIP on image-text pairs).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(pretrain_app, name="pretrain")
T = TypeVar("T")

# Options of the shared training loop, declared once for every `pretrain` objective.
DeviceOption = Annotated[Device, typer.Option(help="auto: CUDA when present.")]
PrecisionOption = Annotated[
    Precision, typer.Option(help="auto: bf16 on CUDA, fp32 on the CPU; fp16 needs CUDA.")
]
AccumulateOption = Annotated[
    int, typer.Option(help="Micro-batches per optimiser step (gradient accumulation).")
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        help="DataLoader worker processes [default: none on CPUs with < 4 cores "
        "(augment in-process), else cores / 4; cores - 1 on CUDA]."
    ),
]
ThreadsOption = Annotated[
    int | None, typer.Option(help="Torch compute threads [default: torch's choice].")
]
ResumeOption = Annotated[
    bool, typer.Option("--resume", help="Continue from OUT/checkpoint exactly.")
]


def run_training(train: Callable[..., T], *args: Any, **options: Any) -> T | None:
    """``train(*args, progress=<a bar>, **options)``; None on ranks other than the first (they
    report nothing). Ctrl-C exits 130, saying where the checkpoint to ``--resume`` from is."""
    from embedsearch.cli.render import progress_bar, stderr
    from embedsearch.train.distributed import is_main_process
    from embedsearch.train.loop import TrainingInterrupted

    try:
        with progress_bar() as bar:
            result = train(*args, progress=bar, **options)
    except TrainingInterrupted as e:
        if e.checkpoint is not None:
            stderr.print(f"interrupted: checkpoint saved to {e.checkpoint}; continue with --resume")
        raise typer.Exit(130) from None
    return result if is_main_process() else None


SMALL_STEM: dict[str, bool | None] = {"auto": None, "small": True, "standard": False}


def _preset_help() -> str:
    from embedsearch.train.presets import PRESETS, minutes_for

    parts = []
    for name, r in PRESETS.items():
        parts.append(
            f"{name}: {r.image_size} px, {r.stem} stem, ~{r.steps} steps of {r.batch_size} "
            f"(~{minutes_for(r):.0f} min on 2 CPU cores whatever the folder size), "
            f"temperature {r.temperature}, crops >= {r.crop_min_scale}, JPEG p {r.jpeg_prob}"
        )
    return (
        "Recipe every option below defaults to. "
        + "; ".join(parts)
        + ". Use copy-detection to find copies and near duplicates (what `dedup FOLDER` uses)."
    )


def _size_help() -> str:
    from embedsearch.train.presets import images_per_second

    costs = ", ".join(
        f"{stem} stem {size} px ~{images_per_second(size, stem == 'small'):.0f}"
        for stem, size in (("standard", 64), ("standard", 96), ("standard", 128), ("small", 32))
    )
    return (
        "Training and embedding input size in pixels [default: the preset's]. Cost on 2 CPU "
        f"cores, resnet18, training images/s: {costs}."
    )


@pretrain_app.command("simclr")
def simclr_command(
    image_dir: Annotated[
        Path, typer.Argument(help="Folder of training images (searched recursively).")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Run dir to write (config.json, model.safetensors, ...)."),
    ],
    preset: Annotated[SimCLRPreset, typer.Option(help=_preset_help())] = "general",
    arch: Annotated[ResnetArch, typer.Option(help="Backbone.")] = "resnet18",
    image_size: Annotated[int | None, typer.Option(help=_size_help())] = None,
    stem: Annotated[
        Stem,
        typer.Option(
            help="ResNet stem: small (3x3, no pool; 16x the cost of standard at one size), "
            "standard; auto: the preset's at its size, else small at <=32 px."
        ),
    ] = "auto",
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Total epochs [default: about the preset's steps]; with --resume: train up to "
            "this many."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Global batch per optimiser step, all ranks [default: the preset's]."),
    ] = None,
    optimizer: Annotated[OptimizerName, typer.Option(help="Optimiser.")] = "lars",
    lr: Annotated[
        float | None,
        typer.Option(help="Peak learning rate [default: lars: the preset's, scaled by batch]."),
    ] = None,
    weight_decay: Annotated[
        float, typer.Option(help="Weight decay (BN and bias excluded).")
    ] = 1e-6,
    warmup_epochs: Annotated[
        float, typer.Option(help="Linear warmup before the cosine decay.")
    ] = 1.0,
    temperature: Annotated[
        float | None, typer.Option(help="NT-Xent temperature [default: the preset's].")
    ] = None,
    color_strength: Annotated[
        float | None,
        typer.Option(help="Colour jitter strength s, 0 disables it [default: the preset's]."),
    ] = None,
    crop_min_scale: Annotated[
        float | None,
        typer.Option(help="Smallest crop area of the random resized crop [default: the preset's]."),
    ] = None,
    jpeg_prob: Annotated[
        float | None,
        typer.Option(help="Probability of JPEG re-encoding a view [default: the preset's]."),
    ] = None,
    head_hidden: Annotated[
        int | None,
        typer.Option(
            help="Projection head hidden width [default: backbone width; the paper uses 2048]."
        ),
    ] = None,
    eval_dir: Annotated[
        Path | None, typer.Option(help="Labelled sub-folders for per-epoch weighted kNN accuracy.")
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Random seed (model init, shuffling, augmentations).")
    ] = 0,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    accumulate: AccumulateOption = 1,
    workers: WorkersOption = None,
    threads: ThreadsOption = None,
    sync_bn: Annotated[
        bool, typer.Option("--sync-bn", help="Synchronise BatchNorm across ranks (DDP).")
    ] = False,
    resume: ResumeOption = False,
    init: Annotated[
        Path | None, typer.Option(help="Start from the weights of an earlier SimCLR run dir.")
    ] = None,
) -> None:
    """Pretrain a SimCLR ResNet on IMAGE_DIR; use the run dir with `embed --model RUN_DIR`.

    Prints an estimate of the whole run after its first steps; OUT/train.log gets it and one
    line per epoch.
    """
    from embedsearch.cli.render import stderr, summary_table
    from embedsearch.train.simclr import pretrain_simclr

    def notify(line: str) -> None:
        # A terminal shows the per-epoch bars; a log file gets every line.
        if line.startswith("estimate") or not stderr.is_terminal:
            stderr.print(line, markup=False, highlight=False, soft_wrap=True)

    summary = run_training(
        pretrain_simclr,
        image_dir,
        out=out,
        preset=preset,
        notify=notify,
        arch=arch,
        image_size=image_size,
        small_stem=SMALL_STEM[stem],
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        temperature=temperature,
        color_strength=color_strength,
        crop_min_scale=crop_min_scale,
        jpeg_prob=jpeg_prob,
        head_hidden=head_hidden,
        eval_dir=eval_dir,
        seed=seed,
        warmup_epochs=warmup_epochs,
        device=device,
        precision=precision,
        accumulate=accumulate,
        workers=workers,
        threads=threads,
        sync_bn=sync_bn,
        resume=resume,
        init=init,
    )
    if summary is None:
        return
    last = summary.metrics[-1] if summary.metrics else {}
    rows = [
        ("run dir", str(summary.out)),
        ("epochs", summary.epochs),
        ("steps", summary.steps),
        ("final loss", float(last.get("loss", float("nan")))),
        ("images/s (last epoch)", float(last.get("images_per_s", 0.0))),
        ("training seconds", summary.seconds),
    ]
    if "eval_knn_acc" in last:
        rows.append(("kNN accuracy", float(last["eval_knn_acc"])))
    stderr.print(summary_table("pretrain simclr", rows))
