"""CLIP training on image-caption PAIRS (Radford et al. 2021), on the shared loop.

Any open_clip architecture (or ``tiny``, the project's CPU config ``tiny-clip``: a small
convolutional image tower at 64 px -- a 2-layer ViT at 32 px learned colour but hardly shape or
position, ``benchmarks/RESULTS.md``, issue 20 -- and a 2-layer text transformer) is
trained with the symmetric InfoNCE loss (:mod:`embedsearch.train.clip_loss`) from a
seeded random init, from ``--pretrained`` weights (an open_clip tag or a local file:
fine-tuning), or from an earlier run dir (``--init``). Unless fine-tuning, the caption-word
loss (:mod:`embedsearch.train.caption_words`) is added, so that the image tower learns every
word its captions use, not only the easiest to see. tiny-clip starts at temperature 1/7
instead of CLIP's 1/14.3: a softer softmax spreads the gradient over all negatives instead
of the hardest few, which on the shapes corpus kept colour first among the attributes
(issue 20). AdamW with beta2 0.98 and no
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
from embedsearch.train.caption_words import ClipWithCaptionWords, clip_of, word_head_for
from embedsearch.train.clip_loss import clip_loss, retrieval_recall
from embedsearch.train.loop import RunExport, TrainConfig, TrainSummary, TrainTask, train

# A corrupt file is replaced by the next readable pair; give up after this many in a row.
MAX_SUBSTITUTES = 16
EVAL_BATCH = 256
# Weight of the caption-word loss beside the contrastive one when training from scratch
# (:mod:`embedsearch.train.caption_words`; measured on the shapes corpus, issue 20).
WORD_LOSS_FROM_SCRATCH = 1.5
# With the caption-word loss an image learns its words whatever its batch holds, so smaller
# batches (more steps for the same CPU time) teach shape faster, at colour's expense: on the
# shapes corpus batch 64 stayed under shape 0.6, batch 48 under colour 0.9, 56-60 met both
# (RESULTS.md, issue 20).
BATCH_SIZE = 60


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
        word_loss: weight of the caption-word loss (0: contrastive loss only).
    """

    train_pairs: Pairs
    val_pairs: Pairs
    arch: str
    pretrained: str | None = None
    word_loss: float = 0.0
    skipped: int = field(default=0, init=False)
    logit_scale: float | None = field(default=None, init=False)
    # This epoch's summed contrastive and word losses, for its metrics record: detached
    # tensors, so that keeping them never waits for an accelerator.
    _contrastive_sum: Any = field(default=0.0, init=False)
    _words_sum: Any = field(default=0.0, init=False)
    _steps: int = field(default=0, init=False)
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
        if self.word_loss <= 0:
            return model
        head = word_head_for(self.tokenizer, self.train_pairs.captions, self._config.dim)
        return ClipWithCaptionWords(model, head)

    def dataset(self) -> Dataset:
        return PairsDataset(self.train_pairs, self.preprocess, self.tokenizer)

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        pixels, tokens, failed = batch
        self.skipped += int(failed.sum())
        # open_clip's forward returns normalised features and exp(logit_scale); log() recovers
        # the parameter (same gradient) so the loss can clamp the scale at 100.
        outputs = model(pixels, tokens)
        image_features, text_features, scale = outputs[:3]
        contrastive = clip_loss(image_features, text_features, scale.log())
        words = self.word_loss * outputs[3] if self.word_loss > 0 else contrastive.new_zeros(())
        self._contrastive_sum = self._contrastive_sum + contrastive.detach()
        self._words_sum = self._words_sum + words.detach()
        self._steps += 1
        return contrastive + words

    def epoch_stats(self) -> dict[str, Any]:
        # The loop's "loss" is their sum; the word loss (weighted) dwarfs the contrastive one
        # early on, so both are logged to tell how retrieval itself is doing.
        steps, self._steps = self._steps, 0
        contrastive, self._contrastive_sum = self._contrastive_sum, 0.0
        words, self._words_sum = self._words_sum, 0.0
        if not steps:
            return {}
        return {"loss_contrastive": float(contrastive) / steps, "loss_words": float(words) / steps}

    def exclude_from_decay(self, name: str, param: nn.Parameter) -> bool:
        # Gains, biases, class token and the temperature are not shrunk (as in CLIP/open_clip).
        return param.ndim < 2 or "logit_scale" in name

    def default_lr(self, optimizer: str, batch_size: int) -> float:
        if optimizer != "adamw":
            return {"lars": 0.3 * batch_size / 256, "sgd": 0.1 * batch_size / 256}[optimizer]
        return 1e-5 if self.pretrained else 1e-3  # fine-tuning must not wreck pretrained features

    def export(self, model: nn.Module) -> RunExport:
        return RunExport(self._config, clip_of(model).state_dict())  # no word head: plain CLIP

    def load_init(self, model: nn.Module, run_dir: Path) -> None:
        weights = init_weights(run_dir, "openclip", self.arch)
        try:
            clip_of(model).load_state_dict(weights)
        except RuntimeError as e:
            raise ModelError(
                f"--init {run_dir}: weights do not fit {self.arch}: {str(e)[:300]}"
            ) from e

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        if len(self.val_pairs) < 2:
            return {}
        data = PairsDataset(self.val_pairs, self.preprocess, self.tokenizer)
        clip: Any = clip_of(model)  # open_clip's CLIP: encode_image/encode_text/logit_scale
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
            "word_loss": self.word_loss,
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
    batch_size: int = BATCH_SIZE,
    lr: float | None = None,
    weight_decay: float = 0.1,
    optimizer: OptimizerName = "adamw",
    word_loss: float | None = None,
    progress: Progress | None = None,
    **loop_options: Any,
) -> ClipTrainSummary:
    """Train (or fine-tune) a CLIP model on PAIRS; the run dir at ``out`` works as a model spec.

    ``pairs`` is a table or a captioned image folder (:func:`embedsearch.data.pairs.load_pairs`).
    ``loop_options`` go to :class:`~embedsearch.train.loop.TrainConfig` (``seed``,
    ``warmup_epochs``, ``device``, ``precision``, ``accumulate``, ``workers``, ``threads``,
    ``resume``, ``init``, ``sync_bn`` -- on by default here). ``word_loss`` weighs the
    caption-word loss (:mod:`embedsearch.train.caption_words`); None: 1.5 when training from
    scratch or ``init``, 0 when fine-tuning ``pretrained`` weights, whose towers already see.

    Example:
        >>> s = pretrain_clip("pairs.csv", out="runs/clip", epochs=1)  # doctest: +SKIP
        >>> s.pairs.summary()                                           # doctest: +SKIP
        '998 of 1,000 pairs used; skipped: 2 empty caption'
    """
    if pretrained and loop_options.get("init"):
        raise InputError("pass either --pretrained or --init, not both")
    if word_loss is None:
        word_loss = 0.0 if pretrained else WORD_LOSS_FROM_SCRATCH
    if word_loss < 0:
        raise InputError(f"--word-loss must be 0 (off) or more, not {word_loss}")
    loaded = load_pairs(pairs, image_col, text_col, progress=progress or NullProgress())
    train_idx, val_idx = heldout_split(loaded, val_fraction, loop_options.get("seed", 0))
    task = ClipTask(
        loaded.subset(train_idx),
        loaded.subset(val_idx),
        clip_arch(model),
        pretrained,
        word_loss,
    )
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
