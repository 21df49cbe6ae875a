"""CLIP encoders from open_clip: any architecture, random init, a pretrained tag or a local file.

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision"; weights and architectures from open_clip (Ilharco et al.). The
project's tiny CPU configs (``configs/*.json``) are registered with open_clip
exactly like its built-in ones, so ``openclip:tiny-clip`` works everywhere.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

import torch

from embedsearch.encoders.base import Encoder, ImagePreprocess
from embedsearch.encoders.weights import load_weights_file
from embedsearch.errors import ModelError

CONFIG_DIR = Path(__file__).parent / "configs"
_registered = False


def register_project_configs() -> None:
    """Add the shipped tiny configs to open_clip's registry (idempotent)."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def _ensure_arch(arch: str, model_cfg: dict[str, Any] | None) -> None:
    """Make ``arch`` known to open_clip, registering ``model_cfg`` for run-dir architectures."""
    import open_clip
    from open_clip import factory

    register_project_configs()
    known = open_clip.get_model_config(arch)
    if model_cfg is not None and known != model_cfg:
        # A run dir carries its own architecture; open_clip only creates registered names.
        factory._MODEL_CONFIGS[arch] = copy.deepcopy(model_cfg)
    elif known is None:
        raise ModelError(
            f"unknown open_clip architecture {arch!r}; "
            f"see `python -c 'import open_clip; print(open_clip.list_models())'`"
        )


def create_clip_model(arch: str, pretrained: str | None = None, model_cfg: dict | None = None):
    """Build an open_clip model: seeded random init, a downloadable tag, or a local weights file."""
    import open_clip

    if not arch.startswith(("hf-hub:", "local-dir:")):
        _ensure_arch(arch, model_cfg)
    is_file = pretrained is not None and (os.path.sep in pretrained or Path(pretrained).is_file())
    tag = pretrained if pretrained and not is_file else None
    if tag and not open_clip.get_pretrained_cfg(arch, tag):
        tags = [t for a, t in open_clip.list_pretrained() if a == arch]
        raise ModelError(
            f"{tag!r} is neither a file nor a pretrained tag of {arch}; tags: {', '.join(tags) or 'none'}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # random init must be reproducible: same spec -> same fingerprint
        logging.disable(logging.WARNING)  # open_clip warns on every random init
        try:
            model = open_clip.create_model(arch, pretrained=tag)
        except RuntimeError as e:
            raise ModelError(
                f"cannot create openclip:{arch}/{tag} (needs network for tags): {e}"
            ) from e
        finally:
            logging.disable(logging.NOTSET)
    if is_file:
        state_dict = load_weights_file(pretrained)
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as e:
            raise ModelError(f"weights in {pretrained} do not fit {arch}: {str(e)[:300]}") from e
    return model.eval()


class OpenClipEncoder(Encoder):
    """Image + text encoder around an open_clip CLIP model."""

    tokenizer: Any = None

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _forward_texts(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.device)
        return self.model.encode_text(tokens)


def openclip_config(arch: str, model: torch.nn.Module) -> dict[str, Any]:
    """The run-dir config of an open_clip model (architecture as data + preprocessing)."""
    import open_clip

    pp = model.visual.preprocess_cfg
    size = pp["size"] if isinstance(pp["size"], int) else int(pp["size"][0])
    model_cfg = open_clip.get_model_config(arch) or {}
    dim = model_cfg.get("embed_dim") or model.visual.output_dim
    return {
        "family": "openclip",
        "arch": arch,
        "model_cfg": model_cfg,
        "image_size": size,
        "mean": list(pp["mean"]),
        "std": list(pp["std"]),
        "dim": int(dim),
        "context_length": int(model_cfg.get("text_cfg", {}).get("context_length", 77)),
        "modalities": ["image", "text"],
        "embedding": "CLIP joint image-text space",
    }


def encoder_from_model(
    arch: str,
    model: torch.nn.Module,
    spec: str,
    options: dict[str, Any],
    config: dict | None = None,
) -> OpenClipEncoder:
    """Wrap a built open_clip model as an :class:`OpenClipEncoder`."""
    import open_clip

    config = config or openclip_config(arch, model)
    encoder = OpenClipEncoder(
        spec=spec,
        options=options,
        dim=int(config["dim"]),
        modalities=frozenset(config["modalities"]),
        preprocess=ImagePreprocess(
            int(config["image_size"]), tuple(config["mean"]), tuple(config["std"])
        ),
        config=config,
        model=model,
    )
    encoder.tokenizer = open_clip.get_tokenizer(arch, context_length=int(config["context_length"]))
    return encoder


def load_openclip(target: str, spec: str) -> OpenClipEncoder:
    """``ARCH`` or ``ARCH/PRETRAINED`` (tag or path) -> encoder. ``hf-hub:`` names pass through."""
    if target.startswith(("hf-hub:", "local-dir:")):
        arch, pretrained = target, None
    else:
        arch, _, pretrained = target.partition("/")
    if not arch:
        raise ModelError(f"model spec {spec!r} names no architecture, e.g. openclip:ViT-B-32")
    model = create_clip_model(arch, pretrained or None)
    return encoder_from_model(arch, model, spec, {})
