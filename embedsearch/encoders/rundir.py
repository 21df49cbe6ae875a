"""The model run dir: ``config.json`` + ``model.safetensors`` (+ training extras).

Written by ``pretrain`` (and :func:`save_run_dir`), read by every command that
takes a model spec. ``config.json`` describes the architecture as data so the
model can be rebuilt without code from the run:

- ``format``: ``"embedsearch-run"``, ``format_version``: 1
- ``family``: ``"simclr"`` or ``"openclip"``; ``arch``; ``image_size``; ``mean``; ``std``;
  ``dim``; ``modalities``; ``embedding`` (which features are the embedding)
- simclr: ``small_stem``; openclip: ``model_cfg`` (open_clip's JSON), ``context_length``,
  ``preprocess_cfg`` (open_clip's: interpolation, resize_mode, fill_color, ...)
- ``training``: the recipe that produced the weights (free-form, optional)

``model.safetensors`` holds the embedding model's weights: the backbone for
SimCLR (tensors prefixed ``head.`` hold the projection head, ignored by
``embed``), the whole CLIP model for openclip. Pretrain also writes
``metrics.jsonl``, ``loss.png`` and ``checkpoint/``; readers ignore them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import torch

from embedsearch.atomic import fresh_file_mode
from embedsearch.choices import MODALITIES
from embedsearch.documents import JsonDocument, optional_field
from embedsearch.errors import FormatError, ModelError

CONFIG_FILE = "config.json"
# Bounds of a plausible config: anything outside is a corrupt or hand-broken file.
MAX_IMAGE_SIZE = 8192
MAX_DIM = 1 << 16
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
    # openclip: open_clip's preprocess_cfg (size, mean, std, interpolation, resize_mode,
    # fill_color), so the run dir's pixels are the model's; absent in run dirs written before.
    preprocess_cfg: dict[str, Any] | None = optional_field()
    modalities: list[str]
    embedding: str = ""  # which features are the embedding, in words
    training: dict[str, Any] | None = optional_field()  # the recipe; absent for untrained specs

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r}")

    @classmethod
    def from_json(cls, data: Any, *, where: str = "the document") -> RunConfig:
        """Parse and check the values (see :meth:`check_values`); FormatError names the file."""
        config = super().from_json(data, where=where)
        try:
            config.check_values()
        except ValueError as e:
            raise FormatError(f"{where} is malformed: {e}") from e
        return config

    def check_values(self) -> None:
        """ValueError unless every value is plausible.

        Checked on read: a hand-edited ``std = 0`` used to write NaN vectors with exit 0,
        and ``dim = -1`` or ``image_size = 0`` failed deep inside torch.
        """
        if not isinstance(self.arch, str) or not self.arch:
            raise ValueError(f"arch must be a non-empty string, got {self.arch!r}")
        _require_int("image_size", self.image_size, 1, MAX_IMAGE_SIZE)
        _require_int("dim", self.dim, 1, MAX_DIM)
        if self.context_length is not None:
            _require_int("context_length", self.context_length, 1, MAX_DIM)
        for name, values, low in (("mean", self.mean, -math.inf), ("std", self.std, 0.0)):
            if (
                not isinstance(values, list)
                or len(values) != 3
                or not all(_is_number(v) and math.isfinite(v) and v > low for v in values)
            ):
                bound = "" if low == -math.inf else f", each > {low:g}"
                raise ValueError(f"{name} must be 3 finite numbers{bound}, got {values!r}")
        if (
            not isinstance(self.modalities, list)
            or not self.modalities
            or not set(self.modalities) <= set(MODALITIES)
        ):
            raise ValueError(
                f"modalities must be a non-empty list of {'/'.join(MODALITIES)}, "
                f"got {self.modalities!r}"
            )

    def architecture(self) -> dict[str, Any]:
        """What rebuilds the model (no format, no recipe): hashed into the fingerprint."""
        body = self.to_json()
        for key in ("format", "format_version", "training"):
            body.pop(key, None)
        return body


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require_int(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


# A run whose last epoch's loss is within this fraction of its first epoch's has barely trained:
# the 2-epoch run (loss down ~2 %) retrieved worse than the untrained model.
BARELY_MOVED = 0.05
METRICS_FILE = "metrics.jsonl"


@dataclasses.dataclass(frozen=True)
class LossProgress:
    """First and last epoch's mean training loss of a run, and its epochs.

    Example:
        >>> LossProgress(6.10, 6.02, 2).barely_moved, LossProgress(6.1, 4.9, 50).barely_moved
        (True, False)
    """

    first: float
    last: float
    epochs: int

    @property
    def barely_moved(self) -> bool:
        """One epoch tells nothing; otherwise a drop under :data:`BARELY_MOVED` of the first."""
        if self.epochs < 2:
            return True
        return self.first - self.last < BARELY_MOVED * abs(self.first)

    def warning(self, spec: str) -> str:
        """The one line said when such a run dir is used."""
        return (
            f"warning: run dir {spec} has barely trained (loss {self.first:.3f} -> "
            f"{self.last:.3f} over {self.epochs} epoch(s)): its vectors may be worse than an "
            "untrained model's; train longer (`pretrain ... --resume --epochs N`)"
        )


def loss_progress(config: RunConfig, run_dir: str | Path | None = None) -> LossProgress | None:
    """The run's loss progress: ``training.loss_first/loss_last`` (recorded by ``pretrain``), else
    the first and last lines of the run dir's ``metrics.jsonl``; None when neither is there.

    Example:
        >>> c = RunConfig(family="simclr", arch="resnet18", image_size=32, mean=[0.5] * 3,
        ...               std=[0.25] * 3, dim=512, modalities=["image"],
        ...               training={"loss_first": 6.2, "loss_last": 5.1, "epochs_done": 9})
        >>> loss_progress(c)
        LossProgress(first=6.2, last=5.1, epochs=9)
    """
    training = config.training or {}
    first, last = training.get("loss_first"), training.get("loss_last")
    epochs = training.get("epochs_done")
    if isinstance(first, (int, float)) and isinstance(last, (int, float)):
        if isinstance(epochs, int):
            return LossProgress(float(first), float(last), epochs)
    if run_dir is None:
        return None
    return _progress_from_metrics(Path(run_dir) / METRICS_FILE)


def _progress_from_metrics(path: Path) -> LossProgress | None:
    import json

    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        losses = [json.loads(line).get("loss") for line in lines]
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    losses = [v for v in losses if _is_number(v) and math.isfinite(v)]
    return LossProgress(losses[0], losses[-1], len(losses)) if losses else None


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
    write_open_clip_files(out)
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


OPEN_CLIP_CONFIG_FILE = "open_clip_config.json"
# The weights name open_clip looks for first, in a local dir and on the HF hub.
OPEN_CLIP_WEIGHTS_FILE = "open_clip_model.safetensors"


def write_open_clip_files(run_dir: str | Path) -> Path | None:
    """Make a CLIP run dir loadable by open_clip alone; SimCLR run dirs are left alone (None).

    Writes ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) and gives the weights
    open_clip's preferred name ``open_clip_model.safetensors`` as a hard link (no second copy;
    a relative symlink where hard links are refused), so both
    ``open_clip.create_model_and_transforms("local-dir:RUN")`` and an upload of the dir as an
    ``hf-hub:`` repo work. ``pretrain clip`` calls it; for a run dir written before, call it
    once by hand. Returns the config file written.

    Example:
        >>> write_open_clip_files("runs/clip")   # doctest: +SKIP
        PosixPath('runs/clip/open_clip_config.json')
    """
    from embedsearch.atomic import write_json_atomic

    run_dir = Path(run_dir)
    config = RunConfig.read(run_dir / CONFIG_FILE)
    if config.family != "openclip" or config.model_cfg is None:
        return None
    preprocess = config.preprocess_cfg or {
        "size": config.image_size,
        "mean": config.mean,
        "std": config.std,
    }
    body = {"model_cfg": config.model_cfg, "preprocess_cfg": preprocess}
    _link_weights(run_dir / WEIGHTS_FILE, run_dir / OPEN_CLIP_WEIGHTS_FILE)
    write_json_atomic(run_dir / OPEN_CLIP_CONFIG_FILE, body)
    return run_dir / OPEN_CLIP_CONFIG_FILE


def _link_weights(weights: Path, alias: Path) -> None:
    # A fresh link each time: a hard link keeps the old bytes after the weights are replaced.
    tmp = alias.with_name(f".{alias.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(weights, tmp)
    except OSError:
        os.symlink(weights.name, tmp)
    os.replace(tmp, alias)
