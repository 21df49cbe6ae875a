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

import dataclasses
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import torch

from embedsearch.atomic import fresh_file_mode
from embedsearch.documents import JsonDocument, optional_field
from embedsearch.errors import ModelError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HEAD_PREFIX = "head."

Family = Literal["simclr", "openclip"]
FAMILIES: tuple[str, ...] = get_args(Family)


@dataclasses.dataclass(kw_only=True)
class RunConfig(JsonDocument):
    """A run dir's ``config.json``: the architecture as data, preprocessing and the recipe.

    Example:
        >>> c = RunConfig(family="simclr", arch="resnet18", image_size=32, small_stem=True,
        ...               mean=[0.5] * 3, std=[0.25] * 3, dim=512, modalities=["image"])
        >>> sorted(c.architecture())[:4]
        ['arch', 'dim', 'embedding', 'family']
    """

    FORMAT: ClassVar[str] = "embedsearch-run"
    VERSION: ClassVar[int] = 1

    family: Family
    arch: str
    model_cfg: dict[str, Any] | None = optional_field()  # openclip: open_clip's model JSON
    image_size: int
    small_stem: bool | None = optional_field()  # simclr: 3x3 stem for small images
    mean: list[float]
    std: list[float]
    dim: int
    context_length: int | None = optional_field()  # openclip: text tokens
    modalities: list[str]
    embedding: str = ""  # which features are the embedding, in words
    training: dict[str, Any] | None = optional_field()  # the recipe; absent for untrained specs

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r}")

    def architecture(self) -> dict[str, Any]:
        """What rebuilds the model (no format, no recipe): hashed into the fingerprint."""
        body = self.to_json()
        for key in ("format", "format_version", "training"):
            body.pop(key, None)
        return body


def is_run_dir(path: str | Path) -> bool:
    """True when ``path`` looks like a run dir (has config.json and model.safetensors)."""
    path = Path(path)
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def save_run_dir(
    out: str | Path,
    config: RunConfig,
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
    os.chmod(tmp, fresh_file_mode(out))  # safetensors writes 0600 whatever the umask
    os.replace(tmp, out / WEIGHTS_FILE)
    config.write(out / CONFIG_FILE)
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


def init_weights(run_dir: str | Path, family: str, arch: str) -> dict[str, torch.Tensor]:
    """All weights of run dir ``run_dir`` for ``--init``; refused unless it holds family/arch."""
    from embedsearch.encoders.weights import load_weights_file

    config = RunConfig.read(Path(run_dir) / CONFIG_FILE)
    if config.family != family or config.arch != arch:
        raise ModelError(
            f"--init {run_dir} holds a {config.family} {config.arch} model; "
            f"this run trains {family} {arch} (pass the same model)"
        )
    return load_weights_file(Path(run_dir) / WEIGHTS_FILE)
