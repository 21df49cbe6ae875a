"""Encoders: one spec parser and registry for every model the project can load.

Spec strings (used by every command that names a model):

- ``simclr:resnet18`` / ``simclr:resnet34`` / ``simclr:resnet50`` -- torchvision backbone, seeded
  random init, small-image stem at image sizes <= 64
- ``openclip:ARCH`` or ``openclip:ARCH/PRETRAINED`` -- any open_clip architecture; PRETRAINED is a
  tag (downloaded by open_clip) or a local weights file; without it, seeded random init
- ``tiny`` / ``tiny-clip`` -- the project's tiny CPU CLIP config (same as ``openclip:tiny-clip``;
  ``pretrain clip --model`` takes the same names)
- a path to a run dir written by ``pretrain`` (``config.json`` + ``model.safetensors``)

Example:
    >>> enc = load_encoder("simclr:resnet18", image_size=32)   # doctest: +SKIP
    >>> enc.dim, sorted(enc.modalities)                         # doctest: +SKIP
    (512, ['image'])
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from embedsearch.errors import ModelError

if TYPE_CHECKING:
    from embedsearch.encoders.base import Encoder

Loader = Callable[[str, str, "int | None"], "Encoder"]
# family prefix -> loader(target, spec, image_size) -> Encoder
_LOADERS: dict[str, Loader] = {}
# Short names of the CPU configs this project ships -> their open_clip architecture.
SHORT_NAMES = {"tiny": "tiny-clip", "tiny-clip": "tiny-clip"}


def register(prefix: str) -> Callable[[Loader], Loader]:
    """Decorator registering a loader for specs of the form ``prefix:TARGET``."""

    def wrap(loader: Loader) -> Loader:
        _LOADERS[prefix] = loader
        return loader

    return wrap


def clip_arch(name: str) -> str:
    """The open_clip architecture a CLIP model name means (``embed`` and ``pretrain clip`` agree).

    Example:
        >>> clip_arch("tiny"), clip_arch("openclip:ViT-B-32"), clip_arch("RN50")
        ('tiny-clip', 'ViT-B-32', 'RN50')
    """
    name = name.removeprefix("openclip:")
    return SHORT_NAMES.get(name, name)


@register("simclr")
def _load_simclr(target: str, spec: str, image_size: int | None) -> Encoder:
    from embedsearch.encoders.simclr import load_simclr

    return load_simclr(target, spec, image_size)


@register("openclip")
def _load_openclip(target: str, spec: str, image_size: int | None) -> Encoder:
    from embedsearch.encoders.openclip import load_openclip

    if image_size is not None:
        raise ModelError("--image-size does not apply to CLIP models: their input size is fixed")
    if target.startswith("local-dir:"):
        from embedsearch.encoders.weights import check_local_dir

        check_local_dir(target.removeprefix("local-dir:"))  # no pickle reaches open_clip
    arch, sep, pretrained = target.partition("/")
    if not arch.startswith(("hf-hub:", "local-dir:")):
        target = clip_arch(arch) + sep + pretrained
    return load_openclip(target, spec)


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
        if not sep or prefix not in _LOADERS:
            raise ModelError(
                f"unknown model {spec!r}: use simclr:resnet18|resnet34|resnet50, "
                f"openclip:ARCH[/PRETRAINED], {', '.join(SHORT_NAMES)} or a run dir path"
            )
        encoder = _LOADERS[prefix](target, spec, image_size)
    return encoder.use_flip_average() if flip_average else encoder


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
