"""CLIP training on image-caption PAIRS (Radford et al. 2021), on the shared loop.

Any open_clip architecture (or ``tiny``, the project's CPU config ``tiny-clip``: a small
convolutional image tower at 64 px -- a 2-layer ViT at 32 px learned colour but hardly shape or
position, ``benchmarks/RESULTS.md``, issue 20 -- and a 2-layer text transformer) is
trained with the symmetric InfoNCE loss (:mod:`embedsearch.train.clip_loss`) from a
seeded random init, from ``--pretrained`` weights (an open_clip tag or a local file:
fine-tuning), or from an earlier run dir (``--init``). AdamW with beta2 0.98 and no
weight decay on gains, biases and the logit scale, warmup + cosine, bf16 on CUDA,
DDP, resume and Ctrl-C all come from :mod:`embedsearch.train.loop`. Each epoch ends
with image->text and text->image recall@1/5/10 on a held-out split.

Example:
    >>> summary = pretrain_clip("shapes/pairs.csv", out="runs/clip", epochs=10)   # doctest: +SKIP
    >>> summary.metrics[-1]["eval_text_to_image_r5"]                               # doctest: +SKIP
    0.83
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from embedsearch.choices import OptimizerName
from embedsearch.data.decode import DecodeError
from embedsearch.data.pairs import Pairs, PairsReport, load_pairs, split_indices
from embedsearch.data.webdataset import load_pair_image
from embedsearch.encoders import clip_arch
from embedsearch.encoders.base import ImagePreprocess
from embedsearch.encoders.openclip import create_clip_model, openclip_config
from embedsearch.encoders.rundir import init_weights
from embedsearch.errors import InputError, ModelError
from embedsearch.progress import NullProgress, Progress
from embedsearch.train.clip_loss import clip_loss, retrieval_recall
from embedsearch.train.loop import RunExport, TrainConfig, TrainSummary, TrainTask, train

# A corrupt file is replaced by the next readable pair; give up after this many in a row.
MAX_SUBSTITUTES = 16
EVAL_BATCH = 256


class PairsDataset(Dataset):
    """Pairs -> ``(pixels, tokens, failed)``; ``failed`` counts unreadable images replaced.

    Keys are ``(index, item_seed)`` from the loop's sampler (CLIP uses no random
    augmentation here, so the seed is unused). The tokenizer runs in the workers.
    """

    def __init__(self, pairs: Pairs, preprocess: ImagePreprocess, tokenizer: Any) -> None:
        self.pairs, self.preprocess, self.tokenizer = pairs, preprocess, tokenizer

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[torch.Tensor, torch.Tensor, int]:
        index = key[0] if isinstance(key, tuple) else key
        for failed in range(MAX_SUBSTITUTES):
            i = (index + failed) % len(self.pairs)
            try:
                image = load_pair_image(self.pairs.images[i])
            except DecodeError:
                continue  # counted by the caller through ``failed``, never fatal
            return self.preprocess(image), self.tokenizer([self.pairs.captions[i]])[0], failed
        raise InputError(
            f"{MAX_SUBSTITUTES} unreadable images in a row near {self.pairs.images[index]}"
        )


@dataclass
class ClipTask(TrainTask):
    """The CLIP objective for :func:`embedsearch.train.loop.train`.

    Args:
        train_pairs / val_pairs: training pairs and the held-out split (may be empty).
        arch: open_clip architecture name (``tiny-clip`` for the CPU config).
        pretrained: open_clip tag or local weights file to start from (None: random init).
    """

    train_pairs: Pairs
    val_pairs: Pairs
    arch: str
    pretrained: str | None = None
    skipped: int = field(default=0, init=False)
    logit_scale: float | None = field(default=None, init=False)
    family = "openclip"

    def __post_init__(self) -> None:
        # Built here (seeded init, tag or file) because the loop asks for the dataset -- which
        # needs the model's preprocessing, e.g. a pretrained tag's mean/std -- before the model.
        self._template: nn.Module | None
        self._template, self.tokenizer = create_clip_model(self.arch, self.pretrained)
        self._config = openclip_config(self.arch, self._template)
        self.preprocess = ImagePreprocess.of(self._config)

    def build_model(self) -> nn.Module:
        model, self._template = self._template, None  # the loop owns the model from here on
        if model is None:
            raise ModelError("ClipTask.build_model was called twice; create a new task per run")
        return model

    def dataset(self) -> Dataset:
        return PairsDataset(self.train_pairs, self.preprocess, self.tokenizer)

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        pixels, tokens, failed = batch
        self.skipped += int(failed.sum())
        # open_clip's forward returns normalised features and exp(logit_scale); log() recovers
        # the parameter (same gradient) so the loss can clamp the scale at 100.
        image_features, text_features, scale = model(pixels, tokens)[:3]
        return clip_loss(image_features, text_features, scale.log())

    def exclude_from_decay(self, name: str, param: nn.Parameter) -> bool:
        # Gains, biases, class token and the temperature are not shrunk (as in CLIP/open_clip).
        return param.ndim < 2 or "logit_scale" in name

    def default_lr(self, optimizer: str, batch_size: int) -> float:
        if optimizer != "adamw":
            return {"lars": 0.3 * batch_size / 256, "sgd": 0.1 * batch_size / 256}[optimizer]
        return 1e-5 if self.pretrained else 1e-3  # fine-tuning must not wreck pretrained features

    def export(self, model: nn.Module) -> RunExport:
        return RunExport(self._config, model.state_dict())

    def load_init(self, model: nn.Module, run_dir: Path) -> None:
        weights = init_weights(run_dir, "openclip", self.arch)
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:
            raise ModelError(
                f"--init {run_dir}: weights do not fit {self.arch}: {str(e)[:300]}"
            ) from e

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        if len(self.val_pairs) < 2:
            return {}
        data = PairsDataset(self.val_pairs, self.preprocess, self.tokenizer)
        clip: Any = model  # open_clip's CLIP: encode_image/encode_text/logit_scale are its own
        image_parts, text_parts = [], []
        for start in range(0, len(data), EVAL_BATCH):
            items = [data[i] for i in range(start, min(start + EVAL_BATCH, len(data)))]
            pixels = torch.stack([p for p, _, _ in items]).to(device)
            tokens = torch.stack([t for _, t, _ in items]).to(device)
            image_parts.append(nn.functional.normalize(clip.encode_image(pixels).float(), dim=-1))
            text_parts.append(nn.functional.normalize(clip.encode_text(tokens).float(), dim=-1))
        # The learned temperature goes to config.json, not the plot: it would dwarf recall there.
        self.logit_scale = float(clip.logit_scale.exp())
        return retrieval_recall(torch.cat(image_parts), torch.cat(text_parts))

    def recipe(self) -> dict[str, Any]:
        report = self.train_pairs.report
        return {
            "objective": "clip",
            "loss": "symmetric InfoNCE (local loss, gathered with grad)",
            "pairs": self.train_pairs.description,
            "pretrained": self.pretrained,
            "train_pairs": len(self.train_pairs),
            "val_pairs": len(self.val_pairs),
            "pairs_skipped": dict(report.skipped),
            "skipped_images": self.skipped,
            "logit_scale": self.logit_scale,
        }


def heldout_split(pairs: Pairs, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, held-out) indices of ``pairs`` as :func:`pretrain_clip` splits them.

    Keyed by image path and caption, so the split survives row reordering and ``--resume``,
    and evaluation code can rebuild exactly the held-out set training never saw.

    Example:
        >>> train_idx, val_idx = heldout_split(load_pairs("pairs.csv"), 0.2)   # doctest: +SKIP
    """
    keys = [
        f"{image}\t{caption}" for image, caption in zip(pairs.images, pairs.captions, strict=False)
    ]
    return split_indices(len(pairs), val_fraction, seed, keys)


@dataclass
class ClipTrainSummary:
    """What :func:`pretrain_clip` did: the loop's summary plus the PAIRS report and split sizes."""

    train: TrainSummary
    pairs: PairsReport
    train_pairs: int
    val_pairs: int
    skipped_images: int


def pretrain_clip(
    pairs: str | Path,
    *,
    out: str | Path,
    model: str = "tiny",
    pretrained: str | None = None,
    image_col: str | None = None,
    text_col: str | None = None,
    val_fraction: float = 0.1,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float | None = None,
    weight_decay: float = 0.1,
    optimizer: OptimizerName = "adamw",
    progress: Progress | None = None,
    **loop_options: Any,
) -> ClipTrainSummary:
    """Train (or fine-tune) a CLIP model on PAIRS; the run dir at ``out`` works as a model spec.

    ``pairs`` is a table or a captioned image folder (:func:`embedsearch.data.pairs.load_pairs`).
    ``loop_options`` go to :class:`~embedsearch.train.loop.TrainConfig` (``seed``,
    ``warmup_epochs``, ``device``, ``precision``, ``accumulate``, ``workers``, ``threads``,
    ``resume``, ``init``, ``sync_bn`` -- on by default here).

    Example:
        >>> s = pretrain_clip("pairs.csv", out="runs/clip", epochs=1)  # doctest: +SKIP
        >>> s.pairs.summary()                                           # doctest: +SKIP
        '998 of 1,000 pairs used; skipped: 2 empty caption'
    """
    if pretrained and loop_options.get("init"):
        raise InputError("pass either --pretrained or --init, not both")
    loaded = load_pairs(pairs, image_col, text_col, progress=progress or NullProgress())
    train_idx, val_idx = heldout_split(loaded, val_fraction, loop_options.get("seed", 0))
    task = ClipTask(loaded.subset(train_idx), loaded.subset(val_idx), clip_arch(model), pretrained)
    # tiny-clip's convolutional tower has BatchNorm: under torchrun its statistics must span
    # the global batch, or N ranks would train another model than one process on that batch.
    loop_options.setdefault("sync_bn", True)
    config = TrainConfig(
        out=Path(out),
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        **loop_options,
    )
    summary = train(task, config, progress)
    return ClipTrainSummary(summary, loaded.report, len(train_idx), len(val_idx), task.skipped)
