"""One rule for --device and --precision, shared by embedding, training and faiss."""

from __future__ import annotations

import pytest
import torch

from embedsearch.devices import resolve_device, resolve_precision, use_accelerator
from embedsearch.errors import ModelError


def test_auto_uses_the_accelerator_only_when_there_is_one() -> None:
    assert use_accelerator("auto", available=True) is True
    assert use_accelerator("auto", available=False) is False


def test_cuda_without_an_accelerator_is_refused_naming_what_is_missing() -> None:
    with pytest.raises(ModelError, match="a GPU build of faiss is not available"):
        use_accelerator("cuda", available=False, what="a GPU build of faiss")


def test_unknown_device_is_refused() -> None:
    with pytest.raises(ModelError, match="unknown --device 'gpu'"):
        resolve_device("gpu")


def test_auto_precision_is_fp32_on_the_cpu() -> None:
    assert resolve_precision("auto", torch.device("cpu")) == torch.float32


def test_fp16_needs_cuda() -> None:
    with pytest.raises(ModelError, match="fp16 needs --device cuda"):
        resolve_precision("fp16", torch.device("cpu"))
