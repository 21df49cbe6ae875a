"""Encoders: one spec parser and registry for every model the project can load.

Spec strings (used by every command that names a model):

- ``simclr:resnet18`` / ``simclr:resnet34`` / ``simclr:resnet50`` -- torchvision backbone, seeded
  random init, small-image stem at image sizes <= 64
- ``openclip:ARCH`` or ``openclip:ARCH/PRETRAINED`` -- any open_clip architecture; PRETRAINED is a
  tag (downloaded by open_clip) or a local weights file; without it, seeded random init
- ``tiny-clip`` -- the project's tiny CPU CLIP config (same as ``openclip:tiny-clip``)
- a path to a run dir written by ``pretrain`` (``config.json`` + ``model.safetensors``)

Example:
    >>> enc = load_encoder("simclr:resnet18", image_size=32)   # doctest: +SKIP
    >>> enc.dim, sorted(enc.modalities)                         # doctest: +SKIP
    (512, ['image'])
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from embedsearch.errors import ModelError

# family prefix -> loader(target, spec, image_size) -> Encoder
_FAMILIES: dict[str, Callable] = {}
# shipped short names -> full spec
ALIASES = {"tiny-clip": "openclip:tiny-clip"}


def register(prefix: str) -> Callable[[Callable], Callable]:
    """Decorator registering a loader for specs of the form ``prefix:TARGET``."""

    def wrap(loader: Callable) -> Callable:
        _FAMILIES[prefix] = loader
        return loader

    return wrap


def list_families() -> list[str]:
    """Spec prefixes the registry knows (``simclr``, ``openclip``, ...)."""
    return sorted(_FAMILIES)


@register("simclr")
def _load_simclr(target: str, spec: str, image_size: int | None):
    from embedsearch.encoders.simclr import load_simclr

    return load_simclr(target, spec, image_size)


@register("openclip")
def _load_openclip(target: str, spec: str, image_size: int | None):
    from embedsearch.encoders.openclip import load_openclip

    if image_size is not None:
        raise ModelError("--image-size does not apply to CLIP models: their input size is fixed")
    return load_openclip(target, spec)


def load_encoder(spec: str, image_size: int | None = None, flip_average: bool = False):
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
        from embedsearch.encoders.rundir import is_run_dir, load_run_dir

        if not is_run_dir(path):
            raise ModelError(
                f"{path} is a folder but not a run dir (needs config.json and model.safetensors)"
            )
        if image_size is not None:
            raise ModelError("--image-size does not apply to a run dir: it has its own")
        return _flipped(load_run_dir(path, spec), flip_average)
    full = ALIASES.get(spec, spec)
    prefix, sep, target = full.partition(":")
    if not sep or prefix not in _FAMILIES:
        raise ModelError(
            f"unknown model {spec!r}: use simclr:resnet18|resnet34|resnet50, openclip:ARCH[/PRETRAINED], "
            f"{', '.join(ALIASES)} or a run dir path"
        )
    return _flipped(_FAMILIES[prefix](target, spec, image_size), flip_average)


def _flipped(encoder, flip_average: bool):
    return encoder.use_flip_average() if flip_average else encoder
