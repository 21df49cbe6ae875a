"""Slow: SimCLR pretraining on real-photo crops beats random init at finding transformed copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedsearch.data.copies import make_copy_set, write_copy_set
from embedsearch.encoders import load_encoder
from embedsearch.encoders.simclr import build_backbone


@torch.no_grad()
def copy_recall_at_1(backbone: torch.nn.Module, preprocess, copy_set) -> float:
    """recall@1 of copy -> original (cosine, exact search) with ``backbone`` features."""
    backbone.eval()

    def embed(images: list) -> torch.Tensor:
        return F.normalize(backbone(torch.stack([preprocess(im) for im in images])), dim=1)

    nearest = (embed(copy_set.copies) @ embed(copy_set.corpus).T).argmax(dim=1).numpy()
    return float(np.mean(nearest == copy_set.copy_of))


@pytest.mark.slow
def test_pretraining_beats_random_init_on_copies(tmp_path: Path) -> None:
    from embedsearch.train.simclr import pretrain_simclr

    copy_set = make_copy_set(n_train=768, n_corpus=200, strength="strong", size=48, seed=0)
    write_copy_set(copy_set, tmp_path / "set")
    pretrain_simclr(
        tmp_path / "set" / "train",
        out=tmp_path / "run",
        image_size=64,
        small_stem=False,
        epochs=10,
        batch_size=64,
        optimizer="lars",
        lr=0.6,
        temperature=0.1,
        crop_min_scale=0.3,
        jpeg_prob=0.5,
        threads=2,
        workers=1,
        channels_last=True,
    )
    encoder = load_encoder(str(tmp_path / "run"))  # the run dir, exactly as `embed` loads it
    trained = copy_recall_at_1(encoder.model, encoder.preprocess, copy_set)
    random_init = copy_recall_at_1(
        build_backbone("resnet18", small_stem=False), encoder.preprocess, copy_set
    )
    assert trained >= random_init + 0.1, (trained, random_init)
