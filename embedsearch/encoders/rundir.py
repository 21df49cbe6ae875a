"""The model run dir: ``config.json`` + ``model.safetensors`` (+ training extras).

Written by ``pretrain`` (and :func:`save_run_dir`), read by every command that
takes a model spec. ``config.json`` describes the architecture as data so the
model can be rebuilt without code from the run:

- ``format``: ``"embedsearch-run"``, ``format_version``: 1
- ``family``: ``"simclr"`` or ``"openclip"``; ``arch``; ``image_size``; ``mean``; ``std``;
  ``dim``; ``modalities``; ``embedding`` (which features are the embedding)
- simclr: ``small_stem``; openclip: ``model_cfg`` (open_clip's JSON), ``context_length``
- ``training``: the recipe that produced the weights (free-form, optional)

``model.safetensors`` holds the embedding model's weights: the backbone for
SimCLR (tensors prefixed ``head.`` hold the projection head, ignored by
``embed``), the whole CLIP model for openclip. Pretrain also writes
``metrics.jsonl``, ``loss.png`` and ``checkpoint/``; readers ignore them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from embedsearch.atomic import write_json_atomic
from embedsearch.encoders.base import Encoder
from embedsearch.errors import FormatError, ModelError

RUN_FORMAT = "embedsearch-run"
RUN_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HEAD_PREFIX = "head."


def is_run_dir(path: str | Path) -> bool:
    """True when ``path`` looks like a run dir (has config.json and model.safetensors)."""
    path = Path(path)
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def save_run_dir(
    out: str | Path,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (weights first, config last).

    Example:
        >>> enc = load_encoder("simclr:resnet18", image_size=32)          # doctest: +SKIP
        >>> save_run_dir("runs/a", enc.config, enc.model.state_dict())    # doctest: +SKIP
    """
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    tensors.update({k: v.detach().cpu().contiguous() for k, v in (extra_tensors or {}).items()})
    tmp = out / f".{WEIGHTS_FILE}.tmp"
    save_file(_unshare(tensors), str(tmp))
    os.replace(tmp, out / WEIGHTS_FILE)
    write_json_atomic(
        out / CONFIG_FILE, {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION, **config}
    )
    return out


def _unshare(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share memory (tied weights): give each its own copy.
    seen: set[int] = set()
    result = {}
    for name, tensor in tensors.items():
        ptr = tensor.untyped_storage().data_ptr() if tensor.numel() else id(tensor)
        result[name] = tensor.clone() if ptr in seen else tensor
        seen.add(ptr)
    return result


def read_run_config(path: str | Path) -> dict[str, Any]:
    """Read and check a run dir's ``config.json``."""
    path = Path(path)
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FormatError(f"{path} is not a readable run dir: {e}") from e
    if config.get("format") != RUN_FORMAT:
        raise FormatError(f"{path / CONFIG_FILE} is not an embedsearch run config")
    if config.get("format_version", 0) > RUN_FORMAT_VERSION:
        raise FormatError(
            f"{path} was written by a newer embedsearch (format {config['format_version']})"
        )
    return config


def load_run_dir(path: str | Path, spec: str | None = None) -> Encoder:
    """Rebuild the encoder saved in run dir ``path``."""
    from embedsearch.encoders.weights import load_weights_file

    path = Path(path)
    config = read_run_config(path)
    state_dict = load_weights_file(path / WEIGHTS_FILE)
    model_weights = {k: v for k, v in state_dict.items() if not k.startswith(HEAD_PREFIX)}
    spec = spec or str(path)
    model_config = {
        k: v for k, v in config.items() if k not in ("format", "format_version", "training")
    }
    family = config.get("family")
    if family == "simclr":
        from embedsearch.encoders.simclr import encoder_from_config

        return encoder_from_config(model_config, spec, {}, model_weights)
    if family == "openclip":
        from embedsearch.encoders.openclip import create_clip_model, encoder_from_model

        model = create_clip_model(config["arch"], None, model_cfg=config["model_cfg"])
        try:
            model.load_state_dict(model_weights, strict=True)
        except RuntimeError as e:
            raise ModelError(f"weights in {path} do not fit its config: {str(e)[:300]}") from e
        return encoder_from_model(config["arch"], model, spec, {}, model_config)
    raise FormatError(f"{path / CONFIG_FILE}: unknown model family {family!r}")
