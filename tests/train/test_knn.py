"""Weighted kNN accuracy (the --eval-dir metric)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from embedsearch.errors import InputError
from embedsearch.train.knn import labelled_images, weighted_knn_accuracy


def test_leave_one_out_never_votes_for_itself() -> None:
    # Ten near-identical points, one labelled differently: it can only be outvoted by the others.
    features = F.normalize(torch.ones(10, 4) + 0.01 * torch.randn(10, 4), dim=1)
    labels = torch.tensor([0] * 9 + [1])
    assert weighted_knn_accuracy(features, labels, k=5) == pytest.approx(0.9)


def test_weights_favour_closer_neighbours() -> None:
    # Query 0's nearest neighbour (label 1) is much closer than two farther label-0 points.
    features = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.05], [0.3, 1.0], [0.3, 1.0]]), dim=1)
    labels = torch.tensor([1, 1, 0, 0])
    assert weighted_knn_accuracy(features, labels, k=3, temperature=0.07) == 1.0


def test_eval_dir_run_logs_knn_accuracy(tmp_path: Path) -> None:
    from PIL import Image

    from embedsearch.train.simclr import pretrain_simclr

    for label, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        (tmp_path / "eval" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (20, 20), tuple(c + 8 * i for c in colour)).save(
                tmp_path / "eval" / label / f"{i}.png"
            )
    summary = pretrain_simclr(
        tmp_path / "eval",
        out=tmp_path / "run",
        image_size=16,
        epochs=1,
        batch_size=8,
        workers=0,
        threads=1,
        eval_dir=tmp_path / "eval",
    )
    # Flat red vs flat blue images are separable by any encoder: every image's neighbours agree.
    assert summary.metrics[-1]["eval_knn_acc"] == 1.0


def test_eval_dir_needs_labelled_subfolders(tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    with pytest.raises(InputError, match="one per label"):
        labelled_images(tmp_path / "flat")
