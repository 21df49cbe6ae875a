"""Slow: ``pretrain clip`` under torchrun on 2 CPU ranks equals one process on the same batch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from embedsearch.data.shapes import make_shapes_corpus
from embedsearch.encoders.weights import load_weights_file
from embedsearch.train.clip import pretrain_clip
from embedsearch.train.metrics import read_metrics

ARGS = {"epochs": 2, "batch_size": 16, "workers": 0, "threads": 1, "val_fraction": 0.25}


def beside_python(name: str) -> str:
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(f"{name} is not installed next to this python")
    return exe


@pytest.mark.slow
def test_two_ranks_train_like_one_process(tmp_path: Path) -> None:
    pairs = make_shapes_corpus(tmp_path / "shapes", n=64, seed=0).pairs
    single = pretrain_clip(pairs, out=tmp_path / "single", **ARGS)
    options = [f"--{k.replace('_', '-')}={v}" for k, v in ARGS.items()]
    cmd = [
        beside_python("torchrun"),
        "--standalone",
        "--nproc-per-node=2",
        "--no-python",
        beside_python("embedsearch"),
        "pretrain",
        "clip",
        str(pairs),
        "--out",
        str(tmp_path / "ddp"),
        *options,
    ]
    done = subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Each rank scores 8 rows against all 16 gathered columns: the same loss as 16 x 16 in one
    # process.
    ddp = read_metrics(tmp_path / "ddp")
    assert [r["loss"] for r in ddp] == pytest.approx(
        [r["loss"] for r in single.train.metrics], abs=1e-5
    )
    a = load_weights_file(tmp_path / "single" / "model.safetensors")
    b = load_weights_file(tmp_path / "ddp" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
