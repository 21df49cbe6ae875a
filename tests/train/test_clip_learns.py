"""Slow: the tiny CLIP learns the synthetic shapes corpus far above chance on held-out pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedsearch.data.shapes import make_shapes_corpus
from embedsearch.train.clip import pretrain_clip


@pytest.mark.slow
def test_tiny_clip_learns_shapes_far_above_chance(tmp_path: Path) -> None:
    corpus = make_shapes_corpus(tmp_path / "shapes", n=800, seed=0)
    result = pretrain_clip(
        corpus.pairs,
        out=tmp_path / "run",
        epochs=8,
        batch_size=32,
        lr=1e-3,
        val_fraction=0.2,
        warmup_epochs=0.5,
        threads=1,
    )
    metrics = result.train.metrics
    chance_at_5 = 5 / result.val_pairs  # 160 held-out pairs: 0.031
    assert metrics[-1]["loss"] < 0.6 * metrics[0]["loss"]
    assert metrics[-1]["eval_text_to_image_r5"] >= 8 * chance_at_5
    assert metrics[-1]["eval_image_to_text_r5"] >= 8 * chance_at_5
    assert metrics[-1]["eval_text_to_image_r5"] > metrics[0]["eval_text_to_image_r5"]
