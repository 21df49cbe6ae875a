"""Exact --resume after a real Ctrl-C (SIGINT) in the middle of an epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embedsearch.encoders.weights import load_weights_file
from embedsearch.errors import FormatError, InputError
from embedsearch.train.loop import TrainingInterrupted
from embedsearch.train.metrics import read_metrics
from embedsearch.train.simclr import pretrain_simclr

TINY = {"image_size": 16, "batch_size": 8, "threads": 1, "optimizer": "lars", "warmup_epochs": 0.5}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("resume") / "images"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (18, 18, 3), dtype=np.uint8)).save(
            folder / f"{i:02d}.png"
        )
    return folder


def test_interrupted_then_resumed_equals_uninterrupted(
    images: Path, tmp_path: Path, ctrl_c_after
) -> None:
    straight = pretrain_simclr(images, out=tmp_path / "straight", epochs=2, workers=0, **TINY)
    # 3 steps per epoch: stop after step 4 = one step into epoch 2, mid-epoch.
    with pytest.raises(TrainingInterrupted) as info:
        pretrain_simclr(
            images, out=tmp_path / "split", epochs=2, workers=0, progress=ctrl_c_after(4), **TINY
        )
    assert info.value.checkpoint == tmp_path / "split" / "checkpoint" / "state.pt"
    assert len(read_metrics(tmp_path / "split")) == 1
    # Resume in worker processes: augmentations depend on per-item seeds, not on who runs them.
    resumed = pretrain_simclr(
        images, out=tmp_path / "split", epochs=2, workers=1, resume=True, **TINY
    )

    assert resumed.steps == straight.steps == 6
    a = load_weights_file(tmp_path / "straight" / "model.safetensors")
    b = load_weights_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert [r["loss"] for r in read_metrics(tmp_path / "split")] == pytest.approx(
        [r["loss"] for r in straight.metrics], abs=1e-6
    )


def test_resume_errors(images: Path, tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no checkpoint"):
        pretrain_simclr(images, out=tmp_path / "none", epochs=1, resume=True, workers=0, **TINY)
    pretrain_simclr(images, out=tmp_path / "done", epochs=1, workers=0, **TINY)
    with pytest.raises(InputError, match="larger --epochs"):
        pretrain_simclr(images, out=tmp_path / "done", epochs=1, resume=True, workers=0, **TINY)
    with pytest.raises(InputError, match="same batch size"):
        pretrain_simclr(
            images,
            out=tmp_path / "done",
            epochs=2,
            resume=True,
            workers=0,
            **{**TINY, "batch_size": 4},
        )
    # Training further with a larger --epochs continues from epoch 2.
    more = pretrain_simclr(images, out=tmp_path / "done", epochs=2, resume=True, workers=0, **TINY)
    assert [r["epoch"] for r in more.metrics] == [1, 2]
