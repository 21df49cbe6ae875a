"""SimCLR pretraining on a folder of unlabeled images (Chen et al. 2020).

A torchvision ResNet (small-image stem at <= 64 px) plus a projection head
(Linear-BN-ReLU-Linear-BN, output 128) is trained with NT-Xent on two augmented views
per image (:mod:`embedsearch.data.augment`). The run dir stores the backbone as the
embedding model (``embed --model RUN_DIR`` uses features *before* the head) and the
head under the ``head.`` prefix, so ``--init`` can continue training either.

Example:
    >>> summary = pretrain_simclr("photos/", out="runs/simclr", epochs=20)  # doctest: +SKIP
    >>> summary.metrics[-1]["loss"]                                        # doctest: +SKIP
    4.12
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from embedsearch.choices import OptimizerName, SimCLRPreset
from embedsearch.data.augment import SimCLRAugment
from embedsearch.data.decode import DecodeError, load_image
from embedsearch.encoders.rundir import HEAD_PREFIX, RunConfig, init_weights
from embedsearch.encoders.simclr import (
    RESNET_WIDTHS,
    SMALL_STEM_MAX_SIZE,
    build_backbone,
    simclr_config,
)
from embedsearch.errors import InputError, ModelError
from embedsearch.progress import Progress
from embedsearch.train.knn import knn_eval
from embedsearch.train.loop import RunExport, TrainConfig, TrainSummary, TrainTask, train
from embedsearch.train.losses import nt_xent_loss
from embedsearch.train.presets import PRESETS, SimCLRRecipe

PROJECTION_DIM = 128
# The small stem (3x3, no max-pool) pays at <= 32 px: above, the standard stem learns as much per
# minute at a quarter of the cost (benchmarks/RESULTS.md, issue 17).
SMALL_STEM_PAYS = 32
# A corrupt file is replaced by the next readable one; give up after this many in a row.
MAX_SUBSTITUTES = 16


def projection_head(
    width: int, hidden: int | None = None, out: int = PROJECTION_DIM
) -> nn.Sequential:
    """SimCLR's MLP head: Linear-BN-ReLU-Linear-BN (hidden defaults to the backbone width)."""
    hidden = hidden or width
    return nn.Sequential(
        nn.Linear(width, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out, bias=False),
        nn.BatchNorm1d(out, affine=False),
    )


class SimCLRModel(nn.Module):
    """Backbone + projection head; ``forward(views)`` returns the projections."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone: nn.Module = backbone
        self.head: nn.Module = head

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(pixels))


class TwoViewDataset(Dataset):
    """Image files -> ``(view1, view2, failed)``; ``failed`` counts corrupt files skipped.

    Keys are ``(index, item_seed)`` from the training loop's sampler.
    """

    def __init__(self, paths: list[Path], augment: SimCLRAugment) -> None:
        self.paths, self.augment = paths, augment

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        index, seed = key
        for failed in range(MAX_SUBSTITUTES):
            path = self.paths[(index + failed) % len(self.paths)]
            try:
                image = load_image(path, draft_size=self.augment.image_size)
            except DecodeError:
                continue  # corrupt files are skipped and counted, never fatal
            view1, view2 = self.augment.views(image, seed)
            return view1, view2, failed
        raise InputError(f"{MAX_SUBSTITUTES} unreadable images in a row near {self.paths[index]}")


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); one-line errors when unusable."""
    from embedsearch.data.sources import iter_image_files

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of images")
    paths = list(iter_image_files(folder))
    if not paths:
        raise InputError(
            f"{folder} contains no images (looked for .jpg, .png, .webp, ... recursively)"
        )
    return paths


@dataclass
class SimCLRTask(TrainTask):
    """The SimCLR objective for :func:`embedsearch.train.loop.train`.

    Args:
        image_dir: folder of training images.
        arch: resnet18 | resnet34 | resnet50.
        augment: the view augmentation (its ``image_size`` is the model's input size).
        temperature: NT-Xent T.
        small_stem: 3x3 stem without max-pool (default: image_size <= 64).
        head_hidden: width of the head's hidden layer (default: backbone width).
        eval_dir: optional folder of labelled sub-folders for per-epoch kNN accuracy.
    """

    image_dir: Path
    arch: str
    augment: SimCLRAugment
    temperature: float
    seed: int = 0
    small_stem: bool | None = None
    head_hidden: int | None = None
    eval_dir: Path | None = None
    preset: str | None = None
    skipped: int = field(default=0, init=False)
    family = "simclr"

    def __post_init__(self) -> None:
        if self.arch not in RESNET_WIDTHS:
            raise ModelError(
                f"unknown --arch {self.arch!r}: choose one of {', '.join(RESNET_WIDTHS)}"
            )
        if self.small_stem is None:
            self.small_stem = self.augment.image_size <= SMALL_STEM_MAX_SIZE

    def build_model(self) -> nn.Module:
        backbone = build_backbone(self.arch, bool(self.small_stem), seed=self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 1)
            head = projection_head(RESNET_WIDTHS[self.arch], self.head_hidden)
        return SimCLRModel(backbone, head)

    def dataset(self) -> Dataset:
        return TwoViewDataset(list_images(self.image_dir), self.augment)

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        view1, view2, failed = batch
        self.skipped += int(failed.sum())
        n = view1.shape[0]
        # One forward over both views: BN statistics see the whole 2N batch, as in the paper.
        projections = model(torch.cat([view1, view2]))
        return nt_xent_loss(projections[:n], projections[n:], self.temperature)

    def default_lr(self, optimizer: str, batch_size: int) -> float:
        return {"lars": 0.3 * batch_size / 256, "sgd": 0.06 * batch_size / 256, "adamw": 1e-3}[
            optimizer
        ]

    def config(self) -> RunConfig:
        """The embedding model's run config (backbone only)."""
        config = simclr_config(self.arch, self.augment.image_size)
        return replace(config, small_stem=bool(self.small_stem))

    def export(self, model: nn.Module) -> RunExport:
        parts = _simclr_model(model)
        head = {HEAD_PREFIX + k: v for k, v in parts.head.state_dict().items()}
        return RunExport(self.config(), parts.backbone.state_dict(), head)

    def load_init(self, model: nn.Module, run_dir: Path) -> None:
        weights = init_weights(run_dir, "simclr", self.arch)
        parts = _simclr_model(model)
        parts.backbone.load_state_dict(
            {k: v for k, v in weights.items() if not k.startswith(HEAD_PREFIX)}
        )
        head = {k[len(HEAD_PREFIX) :]: v for k, v in weights.items() if k.startswith(HEAD_PREFIX)}
        if head:
            parts.head.load_state_dict(head)

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        stats: dict[str, float] = {}
        if self.eval_dir is not None:
            backbone = _simclr_model(model).backbone
            stats["knn_acc"] = knn_eval(backbone, self.eval_dir, self.config(), device)
        return stats

    def recipe(self) -> dict[str, Any]:
        aug = self.augment
        return {
            "objective": "simclr",
            "preset": self.preset,
            "image_dir": str(self.image_dir.resolve()),
            "loss": "nt_xent",
            "temperature": self.temperature,
            "color_strength": aug.color_strength,
            "crop_scale": list(aug.crop_scale),
            "jpeg_prob": aug.jpeg_prob,
            "blur": aug.blur,
            "projection_dim": PROJECTION_DIM,
            "head_hidden": self.head_hidden or RESNET_WIDTHS[self.arch],
        }

    def epoch_stats(self) -> dict[str, Any]:
        # Counted in the main process (loss runs there), so workers need no shared state.
        skipped, self.skipped = self.skipped, 0
        return {"skipped_images": skipped}


def _simclr_model(model: nn.Module) -> SimCLRModel:
    """The loop hands back the module :meth:`SimCLRTask.build_model` made (never DDP-wrapped)."""
    if not isinstance(model, SimCLRModel):
        raise TypeError(f"expected the SimCLRModel built by the task, got {type(model).__name__}")
    return model


def resolve_recipe(
    preset: SimCLRPreset, images: int, **given: Any
) -> tuple[SimCLRRecipe, int, bool]:
    """The preset with the options the caller gave (None = the preset's) -> (recipe, epochs,
    small stem).

    The stem follows the preset at its own image size; at another size, the small stem only at
    <= 32 px, where the standard stem's stride 4 leaves too little of the image.
    Example:
        >>> recipe, epochs, small = resolve_recipe("general", 2000, image_size=32)
        >>> recipe.image_size, epochs, small
        (32, 30, True)
    """
    if preset not in PRESETS:
        raise InputError(f"unknown --preset {preset!r}: use {', '.join(PRESETS)}")
    base = PRESETS[preset]
    fields = {k: v for k, v in given.items() if v is not None and k in asdict(base)}
    recipe = replace(base, **fields)
    if "batch_size" not in fields and images < recipe.batch_size:
        # A small folder still trains: the largest power-of-two batch it fills.
        recipe = replace(recipe, batch_size=max(2, 2 ** int(math.log2(max(images, 2)))))
    epochs = given.get("epochs") or recipe.epochs_for(images)
    small_stem = given.get("small_stem")
    if small_stem is None:
        same_size = recipe.image_size == base.image_size
        small_stem = base.stem == "small" if same_size else recipe.image_size <= SMALL_STEM_PAYS
    return recipe, epochs, bool(small_stem)


def pretrain_simclr(
    image_dir: str | Path,
    *,
    out: str | Path,
    preset: SimCLRPreset = "general",
    arch: str = "resnet18",
    image_size: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    optimizer: OptimizerName = "lars",
    lr: float | None = None,
    weight_decay: float = 1e-6,
    temperature: float | None = None,
    color_strength: float | None = None,
    crop_min_scale: float | None = None,
    jpeg_prob: float | None = None,
    small_stem: bool | None = None,
    head_hidden: int | None = None,
    eval_dir: str | Path | None = None,
    progress: Progress | None = None,
    notify: Callable[[str], None] | None = None,
    **loop_options: Any,
) -> TrainSummary:
    """Train a SimCLR encoder on ``image_dir``; the run dir at ``out`` works with ``embed --model``.

    Options left at None take the value of ``preset`` (:mod:`embedsearch.train.presets`);
    ``epochs=None`` makes about the preset's number of steps. ``notify`` receives plain lines
    (the estimate of the whole run after its first steps, one line per epoch), which also go
    to ``out/train.log``. ``loop_options`` go to :class:`~embedsearch.train.loop.TrainConfig`
    (``seed``, ``warmup_epochs``, ``device``, ``precision``, ``accumulate``, ``workers``,
    ``threads``, ``sync_bn``, ``channels_last``, ``resume``, ``init``).

    Example:
        >>> pretrain_simclr("photos/", out="runs/a", preset="copy-detection")   # doctest: +SKIP
        TrainSummary(out=PosixPath('runs/a'), epochs=54, ...)
    """
    if image_size is not None and image_size < 16:
        raise InputError(f"--image-size {image_size} is too small; use 16 or more")
    images = len(list_images(image_dir))
    recipe, epochs, small = resolve_recipe(
        preset,
        images,
        image_size=image_size,
        epochs=epochs,
        batch_size=batch_size,
        temperature=temperature,
        color_strength=color_strength,
        crop_min_scale=crop_min_scale,
        jpeg_prob=jpeg_prob,
        small_stem=small_stem,
    )
    if lr is None and optimizer == "lars":
        lr = recipe.lr * recipe.batch_size / PRESETS[preset].batch_size  # linear scaling
    augment = SimCLRAugment(
        recipe.image_size,
        recipe.color_strength,
        (recipe.crop_min_scale, 1.0),
        recipe.jpeg_prob,
    )
    task = SimCLRTask(
        image_dir=Path(image_dir),
        arch=arch,
        augment=augment,
        temperature=recipe.temperature,
        seed=loop_options.get("seed", 0),
        small_stem=small,
        head_hidden=head_hidden,
        eval_dir=Path(eval_dir) if eval_dir is not None else None,
        preset=preset,
    )
    config = TrainConfig(
        out=Path(out),
        epochs=epochs,
        batch_size=recipe.batch_size,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        **loop_options,
    )
    return train(task, config, progress, notify)
