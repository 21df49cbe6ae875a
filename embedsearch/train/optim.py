"""Optimisers and the warmup + cosine learning-rate schedule used by every objective.

``build_optimizer`` splits parameters into two groups: weights that get weight decay
(and LARS adaptation) and the ones that must not -- BN/LayerNorm weights, biases,
embeddings' scales -- as SimCLR, CLIP and solo-learn do. The schedule is stepped once
per optimiser step (not per epoch), so short runs still warm up smoothly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from embedsearch.choices import OPTIMIZERS
from embedsearch.errors import InputError
from embedsearch.train.lars import LARS


def split_decay_groups(
    model: nn.Module, weight_decay: float, exclude: Callable[[str, nn.Parameter], bool]
) -> list[dict[str, Any]]:
    """Two parameter groups: decayed, and excluded (no decay, no LARS adaptation)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if exclude(name, param) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars_exclude": False},
        {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True},
    ]


def build_optimizer(name: str, groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
    """``lars`` | ``sgd`` (momentum 0.9, Nesterov) | ``adamw`` over ``groups``.

    Example:
        >>> groups = split_decay_groups(model, 1e-6, lambda n, p: p.ndim <= 1)  # doctest: +SKIP
        >>> build_optimizer("lars", groups, lr=0.3)                             # doctest: +SKIP
    """
    if name == "lars":
        return LARS(groups, lr=lr, momentum=0.9)
    # torch optimisers do not know the LARS flag; drop it so their state dicts stay clean.
    plain = [{k: v for k, v in g.items() if k != "lars_exclude"} for g in groups]
    if name == "sgd":
        return torch.optim.SGD(plain, lr=lr, momentum=0.9, nesterov=True)
    if name == "adamw":
        # The fused kernel updates every tensor in one pass: on the CPU it cut the tiny CLIP's
        # optimiser step (its 6.3M-weight token embedding) from 57 to 5 ms (RESULTS.md, issue 20).
        fused = _fusable([p for g in plain for p in g["params"]])
        return torch.optim.AdamW(plain, lr=lr, betas=(0.9, 0.98), eps=1e-6, fused=fused or None)
    raise InputError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")


def _fusable(params: list[nn.Parameter]) -> bool:
    """Whether torch's fused AdamW takes ``params``: floating point, all on one CPU/CUDA device."""
    devices = {p.device for p in params}
    return (
        len(devices) == 1
        and next(iter(devices)).type in ("cpu", "cuda")
        and all(p.is_floating_point() for p in params)
    )


def warmup_cosine(
    warmup_steps: int, total_steps: int, final_fraction: float = 0.0
) -> Callable[[int], float]:
    """LR multiplier: linear warmup from ~0 to 1, then cosine decay to ``final_fraction``.

    Example:
        >>> f = warmup_cosine(10, 100)
        >>> round(f(0), 3), f(9), round(f(99), 3)
        (0.1, 1.0, 0.0)
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)  # the last step still moves (lr > 0)
        progress = min(1.0, (step - warmup_steps) / span)
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
