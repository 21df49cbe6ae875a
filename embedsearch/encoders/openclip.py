"""CLIP encoders from open_clip: any architecture, random init, a pretrained tag or a local file.

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision"; weights and architectures from open_clip (Ilharco et al.). The
project's tiny CPU configs (``configs/*.json``) and a run dir's own architecture are handed
to open_clip through its public ``local-dir:`` schema, so nothing is added to open_clip's
registry and ``openclip:tiny-clip`` works everywhere.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from embedsearch.encoders.base import Encoder, ImagePreprocess
from embedsearch.encoders.rundir import RunConfig
from embedsearch.encoders.weights import load_weights_file
from embedsearch.errors import ModelError

CONFIG_DIR = Path(__file__).parent / "configs"


def shipped_config(arch: str) -> dict[str, Any] | None:
    """The model JSON of a CPU config this project ships (``tiny-clip``), else None."""
    shipped = CONFIG_DIR / f"{arch}.json"
    return dict(json.loads(shipped.read_text())) if shipped.is_file() else None


def _not_an_open_clip_notice(record: logging.LogRecord) -> bool:
    # open_clip warns on every random init; its errors still pass.
    return record.levelno >= logging.ERROR or f"{os.sep}open_clip{os.sep}" not in record.pathname


@contextmanager
def _quiet_open_clip() -> Iterator[None]:
    # open_clip logs through the root logger; this filter drops only its notices, only while
    # installed, and leaves the host's levels and handlers alone.
    logging.getLogger().addFilter(_not_an_open_clip_notice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(_not_an_open_clip_notice)


@contextmanager
def _open_clip_name(arch: str, model_cfg: dict[str, Any] | None) -> Iterator[str]:
    """The name open_clip builds ``arch`` by: its own, or ``local-dir:`` for a config as data."""
    if model_cfg is None:
        yield arch
        return
    with tempfile.TemporaryDirectory(prefix="embedsearch-clip-") as folder:
        (Path(folder) / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
        yield f"local-dir:{folder}"


def create_clip_model(
    arch: str, pretrained: str | None = None, model_cfg: dict[str, Any] | None = None
) -> tuple[torch.nn.Module, Any]:
    """(open_clip model, its tokenizer): seeded random init, a downloadable tag or a local file.

    ``model_cfg`` (a run dir's architecture) builds a model open_clip has no name for.
    """
    import open_clip

    if model_cfg is None and not arch.startswith(("hf-hub:", "local-dir:")):
        model_cfg = shipped_config(arch)
        if model_cfg is None and open_clip.get_model_config(arch) is None:
            raise ModelError(
                f"unknown open_clip architecture {arch!r}; "
                f"see `python -c 'import open_clip; print(open_clip.list_models())'`"
            )
    is_file = pretrained is not None and (os.path.sep in pretrained or Path(pretrained).is_file())
    tag = pretrained if pretrained and not is_file else None
    if tag and (model_cfg is not None or not open_clip.get_pretrained_cfg(arch, tag)):
        tags = [t for a, t in open_clip.list_pretrained() if a == arch]
        raise ModelError(
            f"{tag!r} is neither a file nor a pretrained tag of {arch}; "
            f"tags: {', '.join(tags) or 'none'}"
        )
    with _open_clip_name(arch, model_cfg) as name, _quiet_open_clip():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random init must be reproducible: same spec -> same fingerprint
            try:
                model = open_clip.create_model(name, pretrained=tag)
            except RuntimeError as e:
                raise ModelError(
                    f"cannot create openclip:{arch}/{tag} (needs network for tags): {e}"
                ) from e
        tokenizer = open_clip.get_tokenizer(name)
    if is_file and pretrained is not None:
        try:
            model.load_state_dict(load_weights_file(pretrained), strict=True)
        except RuntimeError as e:
            raise ModelError(f"weights in {pretrained} do not fit {arch}: {str(e)[:300]}") from e
    return model.eval(), tokenizer


class OpenClipEncoder(Encoder):
    """Image + text encoder around an open_clip CLIP model."""

    tokenizer: Any = None

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        clip: Any = self.model  # open_clip's CLIP: encode_image/encode_text are its own
        return clip.encode_image(pixels)

    def _forward_texts(self, texts: list[str]) -> torch.Tensor:
        clip: Any = self.model
        return clip.encode_text(self.tokenizer(texts).to(self.device))


def preprocess_cfg_of(pp: dict[str, Any]) -> dict[str, Any]:
    """open_clip's ``preprocess_cfg`` of a model, complete and JSON-ready (the run dir's copy).

    ``model.visual.preprocess_cfg`` already holds the pretrained tag's overrides
    (``open_clip.get_pretrained_cfg``): SigLIP's ``squash``, CLIPA's ``bilinear``, ...

    Example:
        >>> preprocess_cfg_of({"size": (224, 224), "mean": (0.5,) * 3, "std": (0.5,) * 3})
        ... # doctest: +NORMALIZE_WHITESPACE
        {'size': 224, 'mode': 'RGB', 'mean': [0.5, 0.5, 0.5], 'std': [0.5, 0.5, 0.5],
         'interpolation': 'bicubic', 'resize_mode': 'shortest', 'fill_color': 0}
    """
    size = pp["size"]
    if not isinstance(size, int) and size[0] == size[1]:
        size = int(size[0])  # open_clip treats (n, n) and n alike
    return ImagePreprocess.of_cfg({**pp, "size": size}).to_cfg()


def openclip_config(arch: str, model: Any) -> RunConfig:
    """The run-dir config of an open_clip model (architecture as data + preprocessing)."""
    import open_clip

    pp = model.visual.preprocess_cfg
    size = pp["size"] if isinstance(pp["size"], int) else int(pp["size"][0])
    model_cfg = shipped_config(arch) or open_clip.get_model_config(arch) or {}
    dim = model_cfg.get("embed_dim") or model.visual.output_dim
    return RunConfig(
        family="openclip",
        arch=arch,
        model_cfg=model_cfg,
        image_size=size,
        mean=list(pp["mean"]),
        std=list(pp["std"]),
        dim=int(dim),
        context_length=int(model_cfg.get("text_cfg", {}).get("context_length", 77)),
        preprocess_cfg=preprocess_cfg_of(pp),
        modalities=["image", "text"],
        embedding="CLIP joint image-text space",
    )


def encoder_from_model(
    arch: str,
    model: torch.nn.Module,
    tokenizer: Any,
    spec: str,
    config: RunConfig | None = None,
) -> OpenClipEncoder:
    """Wrap a built open_clip model and its tokenizer as an :class:`OpenClipEncoder`."""
    config = config or openclip_config(arch, model)
    encoder = OpenClipEncoder(
        spec=spec,
        options={},
        dim=config.dim,
        modalities=frozenset(config.modalities),
        preprocess=ImagePreprocess.of(config),
        config=config,
        model=model,
    )
    encoder.tokenizer = tokenizer
    return encoder


def load_openclip(target: str, spec: str) -> OpenClipEncoder:
    """``ARCH`` or ``ARCH/PRETRAINED`` (tag or path) -> encoder. ``hf-hub:`` names pass through."""
    if target.startswith(("hf-hub:", "local-dir:")):
        arch, pretrained = target, None
    else:
        arch, _, pretrained = target.partition("/")
    if not arch:
        raise ModelError(f"model spec {spec!r} names no architecture, e.g. openclip:ViT-B-32")
    model, tokenizer = create_clip_model(arch, pretrained or None)
    return encoder_from_model(arch, model, tokenizer, spec)


def load_openclip_run(config: RunConfig, weights: dict[str, torch.Tensor], spec: str) -> Encoder:
    """The CLIP model a run dir describes, with its trained weights."""
    model, tokenizer = create_clip_model(config.arch, None, model_cfg=config.model_cfg)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise ModelError(f"weights of {spec} do not fit its config: {str(e)[:300]}") from e
    return encoder_from_model(config.arch, model, tokenizer, spec, config)
