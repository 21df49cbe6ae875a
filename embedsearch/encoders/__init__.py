"""Encoders: one spec parser and registry for every model the project can load.

Spec strings (used by every command that names a model):

- a path to a run dir written by ``pretrain`` (``config.json`` + ``model.safetensors``)
- ``openclip:ARCH/PRETRAINED`` -- any open_clip architecture with PRETRAINED a tag (downloaded
  once by open_clip, then read from its cache) or a local weights file
- untrained (seeded random weights: for tests and baselines, their hits mean nothing; every use
  logs a one-line warning, see :mod:`~embedsearch.encoders.defaults`):
  ``simclr:resnet18`` / ``simclr:resnet34`` / ``simclr:resnet50`` (torchvision backbone,
  small-image stem at image sizes <= 64), ``openclip:ARCH`` without PRETRAINED, and
  ``tiny`` / ``tiny-clip`` (the project's tiny CPU CLIP config, same as ``openclip:tiny-clip``;
  ``pretrain clip --model`` takes the same names)

Warnings (untrained model, a run dir whose training loss barely moved) go to the
``embedsearch`` logger: Python prints them on stderr when the host configured no logging.

Example:
    >>> enc = load_encoder("simclr:resnet18", image_size=32)   # doctest: +SKIP
    >>> enc.dim, sorted(enc.modalities)                         # doctest: +SKIP
    (512, ['image'])
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from embedsearch.choices import EXTERNAL_MODEL_PREFIX
from embedsearch.errors import ModelError

if TYPE_CHECKING:
    from embedsearch.encoders.base import Encoder

# Short names of the CPU configs this project ships -> their open_clip architecture.
SHORT_NAMES = {"tiny": "tiny-clip", "tiny-clip": "tiny-clip"}
logger = logging.getLogger("embedsearch")


def clip_arch(name: str) -> str:
    """The open_clip architecture a CLIP model name means (``embed`` and ``pretrain clip`` agree).

    Example:
        >>> clip_arch("tiny"), clip_arch("openclip:ViT-B-32"), clip_arch("RN50")
        ('tiny-clip', 'ViT-B-32', 'RN50')
    """
    name = name.removeprefix("openclip:")
    return SHORT_NAMES.get(name, name)


def _load_simclr(target: str, spec: str, image_size: int | None) -> Encoder:
    from embedsearch.encoders.simclr import load_simclr

    encoder = load_simclr(target, spec, image_size)
    encoder.trained = False  # simclr:ARCH has no weights option: always random init
    return encoder


def _load_openclip(target: str, spec: str, image_size: int | None) -> Encoder:
    from embedsearch.encoders.openclip import load_openclip

    if image_size is not None:
        raise ModelError("--image-size does not apply to CLIP models: their input size is fixed")
    trained = True
    if target.startswith("local-dir:"):
        from embedsearch.encoders.weights import check_local_dir

        # no pickle reaches open_clip; a folder without weights builds a random model
        trained = check_local_dir(target.removeprefix("local-dir:"))
    arch, sep, pretrained = target.partition("/")
    if not arch.startswith(("hf-hub:", "local-dir:")):
        target = clip_arch(arch) + sep + pretrained
        trained = bool(pretrained)
    encoder = load_openclip(target, spec)
    encoder.trained = trained
    return encoder


# family prefix of a ``prefix:TARGET`` spec -> loader(target, spec, image_size)
_LOADERS: dict[str, Callable[[str, str, int | None], Encoder]] = {
    "simclr": _load_simclr,
    "openclip": _load_openclip,
}


def load_encoder(spec: str, image_size: int | None = None, flip_average: bool = False) -> Encoder:
    """Parse ``spec`` and load the encoder it names (see the module docstring for forms).

    ``image_size`` sets the input size of backbones without a fixed size (SimCLR specs).
    ``flip_average`` makes image vectors mirror-invariant (:meth:`Encoder.use_flip_average`).
    Raises :class:`~embedsearch.errors.ModelError` with a readable message otherwise.
    """
    spec = str(spec).strip()
    if not spec:
        raise ModelError("empty model spec")
    path = Path(spec).expanduser()
    if path.is_dir():
        if image_size is not None:
            raise ModelError("--image-size does not apply to a run dir: it has its own")
        encoder = _load_run_dir(path, spec)
    else:
        full = f"openclip:{spec}" if spec in SHORT_NAMES else spec
        prefix, sep, target = full.partition(":")
        if full.startswith(EXTERNAL_MODEL_PREFIX):
            raise ModelError(
                f"{spec} labels vectors made by another tool: there is no model to embed a text "
                "or image with; query with --id or --vector"
            )
        if not sep or prefix not in _LOADERS:
            raise ModelError(
                f"unknown model {spec!r}: use simclr:resnet18|resnet34|resnet50, "
                f"openclip:ARCH[/PRETRAINED], {', '.join(SHORT_NAMES)} or a run dir path"
            )
        encoder = _LOADERS[prefix](target, spec, image_size)
    if not encoder.trained:
        encoder.warnings.insert(0, untrained_warning(spec))
    for line in encoder.warnings:
        logger.warning(line)
    return encoder.use_flip_average() if flip_average else encoder


def untrained_warning(spec: str) -> str:
    """The one line said wherever an untrained (random-weight) model is used.

    Example:
        >>> untrained_warning("tiny-clip")[:48]
        'warning: tiny-clip is untrained (random weights)'
    """
    return (
        f"warning: {spec} is untrained (random weights): its vectors and hits mean nothing; "
        "use openclip:ARCH/PRETRAINED or a run dir from `embedsearch pretrain`"
    )


def _load_run_dir(path: Path, spec: str) -> Encoder:
    """Rebuild the encoder saved in run dir ``path`` (``config.json`` + ``model.safetensors``)."""
    from embedsearch.encoders import rundir
    from embedsearch.encoders.weights import load_weights_file

    if not rundir.is_run_dir(path):
        raise ModelError(
            f"{path} is a folder but not a run dir (needs {rundir.CONFIG_FILE} and "
            f"{rundir.WEIGHTS_FILE})"
        )
    config = rundir.RunConfig.read(path / rundir.CONFIG_FILE)
    stored = load_weights_file(path / rundir.WEIGHTS_FILE)
    progress = rundir.loss_progress(config, path)
    # A SimCLR run also stores its projection head, which is not part of the embedding model.
    weights = {k: v for k, v in stored.items() if not k.startswith(rundir.HEAD_PREFIX)}
    encoder: Encoder
    if config.family == "simclr":
        from embedsearch.encoders.simclr import encoder_from_config

        encoder = encoder_from_config(config, spec, {}, weights)
    else:
        from embedsearch.encoders.openclip import load_openclip_run

        encoder = load_openclip_run(config, weights, spec)
    _check_dim(encoder, config.dim, path)
    # a run dir saved from an untrained spec records no training recipe
    encoder.trained = config.training is not None
    if encoder.trained and progress is not None and progress.barely_moved:
        encoder.warnings.append(progress.warning(spec))
    return encoder


def _check_dim(encoder: Encoder, dim: int, path: Path) -> None:
    """Refuse a run dir whose ``config.json`` dim is not what its model produces.

    Read from the weights' shapes, not from a forward pass: a forward pass of a CLIP model
    costs seconds at every query's start-up.
    """
    produced = _produced_dim(encoder)
    if produced is not None and produced != dim:
        raise ModelError(
            f"{path / 'config.json'} says dim {dim}, but its model produces {produced}-d vectors"
        )


def _produced_dim(encoder: Encoder) -> int | None:
    """The width of an encoder's vectors from its weights (None where the shapes don't say).

    A ResNet's vector is its last stage's pooled channels (the last BatchNorm's width); a CLIP
    model's is its projections' output width.
    """
    import torch

    model = encoder.model
    if encoder.config.family == "simclr":
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        return int(norms[-1].num_features) if norms else None
    projection = getattr(model, "text_projection", None)
    if isinstance(projection, torch.Tensor) and projection.ndim == 2:
        return int(projection.shape[-1])
    width = getattr(getattr(model, "visual", None), "output_dim", None)
    return width if isinstance(width, int) else None
