"""The types an objective and the training loop share (see :mod:`embedsearch.train.loop`).

:class:`TrainTask` is the base class an objective (SimCLR, CLIP) subclasses;
:class:`TrainConfig` holds the settings the loop owns; :class:`RunExport` is what a task
saves to the run dir; :class:`TrainSummary` is what a run returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from embedsearch.choices import Device, OptimizerName, Precision
from embedsearch.encoders.rundir import RunConfig
from embedsearch.errors import ModelError


@dataclass
class TrainConfig:
    """Settings the loop owns (objective-specific ones live in the task).

    ``batch_size`` is the global batch per optimiser step: split over ranks, then over
    ``accumulate`` micro-batches. ``lr=None`` asks the task for its default.
    """

    out: Path
    epochs: int = 10
    batch_size: int = 256
    optimizer: OptimizerName = "lars"
    lr: float | None = None
    weight_decay: float = 1e-6
    warmup_epochs: float = 1.0
    seed: int = 0
    device: Device = "auto"
    precision: Precision = "auto"
    accumulate: int = 1
    workers: int | None = None
    threads: int | None = None
    sync_bn: bool = False
    channels_last: bool | None = None
    resume: bool = False
    init: Path | None = None


@dataclass
class RunExport:
    """What a task saves to the run dir: ``config.json`` content and weights."""

    config: RunConfig
    state_dict: dict[str, torch.Tensor]
    extra_tensors: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class TrainSummary:
    """Result of a training run."""

    out: Path
    epochs: int
    steps: int
    images: int
    seconds: float
    loss: float
    metrics: list[dict[str, Any]]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; a checkpoint was saved to ``checkpoint`` (when rank 0)."""

    def __init__(self, checkpoint: Path | None) -> None:
        super().__init__(f"training interrupted; checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint


class TrainTask:
    """Base class of a training objective; see the module docstring for the protocol."""

    family = "base"
    collate_fn: Any = None

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def dataset(self) -> Dataset:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def export(self, model: nn.Module) -> RunExport:
        raise NotImplementedError

    def batch_items(self, batch: Any) -> int:
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        return int(first.shape[0])

    def exclude_from_decay(self, name: str, param: nn.Parameter) -> bool:
        return param.ndim <= 1

    def default_lr(self, optimizer: str, batch_size: int) -> float:
        return {"lars": 0.3 * batch_size / 256, "sgd": 0.1 * batch_size / 256, "adamw": 1e-3}[
            optimizer
        ]

    def load_init(self, model: nn.Module, run_dir: Path) -> None:
        raise ModelError(f"--init is not supported for {self.family} training")

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return {}

    def recipe(self) -> dict[str, Any]:
        return {}

    def epoch_stats(self) -> dict[str, Any]:
        return {}
