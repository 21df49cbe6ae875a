"""SimCLR training on CUDA (bf16 autocast, channels_last, fp16 GradScaler); skipped without GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embedsearch.encoders import load_encoder

pytestmark = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@needs_cuda
@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_cuda_training_writes_a_loadable_run(tmp_path: Path, precision: str) -> None:
    from PIL import Image

    from embedsearch.train.simclr import pretrain_simclr

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i in range(32):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
            tmp_path / "images" / f"{i}.png"
        )
    summary = pretrain_simclr(
        tmp_path / "images",
        out=tmp_path / "run",
        image_size=32,
        epochs=2,
        batch_size=16,
        device="cuda",
        precision=precision,
        workers=1,
    )
    losses = [r["loss"] for r in summary.metrics]
    assert len(losses) == 2
    assert all(np.isfinite(losses))
    config_training = load_encoder(str(tmp_path / "run")).config
    assert config_training.image_size == 32
    encoder = load_encoder(str(tmp_path / "run")).to("cuda")
    assert encoder.embed_images(torch.zeros(2, 3, 32, 32)).shape == (2, 512)
