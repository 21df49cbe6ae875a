"""Self-supervised training: SimCLR and CLIP objectives on one shared loop (:mod:`.loop`).

Imported only by ``pretrain``; ``embed``/``index``/``query`` never pay for it.

Example:
    >>> from embedsearch.train import pretrain_simclr                  # doctest: +SKIP
    >>> pretrain_simclr("photos/", out="runs/simclr", epochs=20)         # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> module defining it, imported on first use (keeps torch out of plain imports).
_LAZY = {
    "pretrain_simclr": "embedsearch.train.simclr",
    "SimCLRTask": "embedsearch.train.simclr",
    "pretrain_clip": "embedsearch.train.clip",
    "TrainConfig": "embedsearch.train.loop",
    "TrainTask": "embedsearch.train.loop",
    "TrainSummary": "embedsearch.train.loop",
    "TrainingInterrupted": "embedsearch.train.loop",
    "RunExport": "embedsearch.train.loop",
    "train": "embedsearch.train.loop",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'embedsearch.train' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
