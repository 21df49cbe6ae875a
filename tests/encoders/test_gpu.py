"""CUDA paths (channels_last, autocast); skipped cleanly without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedsearch.encoders import load_encoder

pytestmark = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_embeddings_match_cpu(precision: str) -> None:
    x = torch.randn(4, 3, 32, 32)
    cpu = load_encoder("simclr:resnet18", image_size=32).to("cpu").embed_images(x)
    gpu = load_encoder("simclr:resnet18", image_size=32).to("cuda", precision).embed_images(x)
    assert gpu.dtype == np.float32
    tolerance = 1e-4 if precision == "fp32" else 3e-2
    np.testing.assert_allclose(gpu, cpu, atol=tolerance)


@needs_cuda
def test_auto_device_picks_cuda() -> None:
    assert load_encoder("tiny-clip").to("auto").device.type == "cuda"
