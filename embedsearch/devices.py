"""``--device`` and ``--precision``: one rule for embedding, training and faiss.

``auto`` uses the accelerator when there is one; ``cuda`` without one is refused rather than
silently run on the CPU; fp16 needs CUDA (CPU fp16 autocast is slow and poorly supported).

Example:
    >>> use_accelerator("auto", available=False)
    False
    >>> use_accelerator("cpu", available=True)
    False
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from embedsearch.choices import DEVICES, PRECISIONS
from embedsearch.errors import ModelError

if TYPE_CHECKING:
    import torch


def use_accelerator(device: str, available: bool, what: str = "CUDA") -> bool:
    """Whether to run on the accelerator: ``auto`` -> when ``available``; ``cuda`` requires it.

    ``what`` names the missing piece in the error (e.g. "a GPU build of faiss").
    """
    if device not in DEVICES:
        raise ModelError(f"unknown --device {device!r}: use {', '.join(DEVICES)}")
    if device == "cuda" and not available:
        raise ModelError(f"--device cuda was asked for but {what} is not available here")
    return device != "cpu" and available


def resolve_device(device: str) -> torch.device:
    """``auto``/``cpu``/``cuda`` -> the torch device to run on."""
    import torch

    if device.startswith("cuda:"):  # a specific GPU, e.g. a torchrun rank's
        use_accelerator("cuda", torch.cuda.is_available())
        return torch.device(device)
    cuda = use_accelerator(device, torch.cuda.is_available())
    return torch.device("cuda" if cuda else "cpu")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 on CUDA (when supported), fp32 on the CPU; fp16 only on CUDA."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float32
    if precision not in dtypes:
        raise ModelError(f"unknown --precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise ModelError("--precision fp16 needs --device cuda; use fp32 or bf16 on the CPU")
    return dtypes[precision]


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision for ``dtype`` (nothing for fp32)."""
    import torch

    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
