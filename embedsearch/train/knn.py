"""Weighted kNN accuracy of an encoder on a labelled folder (Wu et al. 2018; k = 20, T = 0.07).

The usual self-supervised progress metric: embed every image of ``EVAL_DIR/<label>/*``,
then classify each one by a vote of its k nearest *other* images (leave-one-out), each
neighbour weighted by ``exp(cosine / T)``. Images are read in batches; only the
embeddings (n x dim floats) are kept, so the eval set may be a few tens of thousands.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from embedsearch.data.decode import DecodeError, load_image
from embedsearch.encoders.base import ImagePreprocess
from embedsearch.encoders.rundir import RunConfig
from embedsearch.errors import InputError

KNN_K = 20
KNN_TEMPERATURE = 0.07
EVAL_BATCH = 256


def labelled_images(eval_dir: str | Path) -> list[tuple[Path, int]]:
    """``(path, label index)`` for images in the sub-folders of ``eval_dir`` (one per label)."""
    from embedsearch.data.sources import iter_image_files

    eval_dir = Path(eval_dir)
    labels = sorted(p for p in eval_dir.iterdir() if p.is_dir()) if eval_dir.is_dir() else []
    items = [(path, i) for i, label in enumerate(labels) for path in iter_image_files(label)]
    if len(labels) < 2 or len(items) < 2:
        raise InputError(
            f"--eval-dir {eval_dir} needs sub-folders of images, one per label (at least 2)"
        )
    return items


@torch.no_grad()
def embed_labelled(
    backbone: nn.Module, items: list[tuple[Path, int]], config: RunConfig, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised features and labels of ``items`` (unreadable images are left out)."""
    preprocess = ImagePreprocess.of(config)
    features, labels = [], []
    for start in range(0, len(items), EVAL_BATCH):
        pixels, batch_labels = [], []
        for path, label in items[start : start + EVAL_BATCH]:
            try:
                pixels.append(preprocess(load_image(path)))
            except DecodeError:
                continue
            batch_labels.append(label)
        if pixels:
            out = backbone(torch.stack(pixels).to(device))
            features.append(F.normalize(out.float(), dim=1).cpu())
            labels.extend(batch_labels)
    return torch.cat(features), torch.tensor(labels)


def weighted_knn_accuracy(
    features: torch.Tensor,
    labels: torch.Tensor,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
) -> float:
    """Leave-one-out weighted kNN accuracy of normalised ``features`` with integer ``labels``.

    Example:
        >>> f = F.normalize(torch.eye(4).repeat(5, 1) + 0.01 * torch.randn(20, 4), dim=1)
        >>> weighted_knn_accuracy(f, torch.arange(4).repeat(5), k=3)
        1.0
    """
    n = features.shape[0]
    k = min(k, n - 1)
    classes = int(labels.max()) + 1
    correct = 0
    for start in range(0, n, EVAL_BATCH):
        sims = features[start : start + EVAL_BATCH] @ features.T
        rows = torch.arange(sims.shape[0])
        sims[rows, start + rows] = -float("inf")  # leave the query itself out
        top, index = sims.topk(k, dim=1)
        votes = torch.zeros(sims.shape[0], classes)
        votes.scatter_add_(1, labels[index], (top / temperature).exp())
        correct += int((votes.argmax(1) == labels[start : start + EVAL_BATCH]).sum())
    return correct / n


def knn_eval(
    backbone: nn.Module, eval_dir: str | Path, config: RunConfig, device: torch.device
) -> float:
    """Weighted kNN accuracy (k 20, T 0.07) of ``backbone`` on ``eval_dir``'s labelled folders."""
    features, labels = embed_labelled(backbone, labelled_images(eval_dir), config, device)
    return round(weighted_knn_accuracy(features, labels), 4)
