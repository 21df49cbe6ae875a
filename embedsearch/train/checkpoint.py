"""Training checkpoints: everything ``--resume`` needs to continue bit-for-bit.

``RUN_DIR/checkpoint/state.pt`` holds the model, optimiser, LR scheduler and AMP grad
scaler states, the position in training (epoch, step within the epoch, global step,
the epoch's running loss) and the RNG states of torch (CPU and CUDA), NumPy and
Python. It is written to a temp file and renamed, and read back with
``torch.load(weights_only=True)`` -- never a bare pickle -- so NumPy's state is stored
as tensors and plain tuples.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from embedsearch.atomic import replacing
from embedsearch.errors import FormatError

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.pt"


def checkpoint_path(run_dir: str | Path) -> Path:
    """Where a run dir keeps its resumable state."""
    return Path(run_dir) / CHECKPOINT_DIR / STATE_FILE


def rng_state() -> dict[str, Any]:
    """Snapshot of every RNG training touches."""
    numpy_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    kind, keys, pos, has_gauss, cached = numpy_state
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (
            kind,
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a :func:`rng_state` snapshot."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_as_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    # random.setstate insists on tuples; serialisation may hand back lists.
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` (plus RNG states) to ``RUN_DIR/checkpoint/state.pt``.

    Example:
        >>> save_checkpoint("runs/a", {"epoch": 3, "model": model.state_dict()})   # doctest: +SKIP
    """
    path = checkpoint_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        torch.save({**state, "rng": rng_state()}, tmp)
    return path


def load_checkpoint(run_dir: str | Path) -> dict[str, Any]:
    """Read the checkpoint of ``run_dir``; :class:`FormatError` when missing or unreadable."""
    path = checkpoint_path(run_dir)
    if not path.is_file():
        raise FormatError(f"--resume: {run_dir} has no checkpoint ({CHECKPOINT_DIR}/{STATE_FILE})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling failure means a bad file
        raise FormatError(f"cannot read checkpoint {path}: {str(e)[:200]}") from e
