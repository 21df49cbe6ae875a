"""The pixels ``embed`` feeds an open_clip model are open_clip's own (issue 12.1).

Reference: ``open_clip.image_transform(...)`` for the preprocess_cfg, on the same file opened
with PIL. Sources are real photos (``skimage.data``) smaller than, near and 4x the model size,
as JPEG and PNG. Bound: 1e-2 mean |delta| in normalised units (the measured worst is 0: the
geometry is open_clip's torchvision calls, and model input is decoded without JPEG draft).
The default suite runs one config per (interpolation, resize_mode); ``-m slow`` all of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from embedsearch.data.batches import ImageBatches, KnownRows
from embedsearch.data.decode import load_image
from embedsearch.data.sources import Item
from embedsearch.encoders.base import ImagePreprocess

BOUND = 1e-2
OPENAI = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}


def pretrained_cfgs() -> list[dict[str, Any]]:
    """Every distinct eval preprocess_cfg among open_clip's pretrained tags (offline)."""
    import open_clip

    found: dict[str, dict[str, Any]] = {}
    for arch, tag in open_clip.list_pretrained():
        model_cfg = open_clip.get_model_config(arch) or {}
        cfg = {"size": model_cfg.get("vision_cfg", {}).get("image_size", 224), **OPENAI}
        cfg.update(open_clip.get_pretrained_cfg(arch, tag))
        cfg = {k: cfg.get(k) for k in ("size", "mean", "std", "interpolation", "resize_mode")}
        found.setdefault(json.dumps(cfg, sort_keys=True), cfg)
    return list(found.values())


def representative(cfgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One config per (interpolation, resize_mode): each code path, for the default suite."""
    picked: dict[tuple, dict[str, Any]] = {}
    for cfg in cfgs:
        picked.setdefault((cfg["interpolation"], cfg["resize_mode"]), cfg)
    return list(picked.values())


ALL = pretrained_cfgs()
FAST = representative(ALL)
SLOW = [c for c in ALL if c not in FAST]


def photo_file(folder: Path, short_side: int, fmt: str) -> Path:
    """skimage's chelsea (451x300, fine fur: the worst case for resampling shortcuts) at a size.

    Larger than the photo: a mosaic of it at native resolution, downscaled, so the 4x source
    keeps real photo detail instead of an upscaled blur.
    """
    from skimage import data as skdata

    photo = Image.fromarray(skdata.chelsea()).convert("RGB")
    n = -(-short_side // min(photo.size))
    mosaic = Image.new("RGB", (photo.width * n, photo.height * n))
    for i in range(n):
        for j in range(n):
            mosaic.paste(photo, (i * photo.width, j * photo.height))
    scale = short_side / min(mosaic.size)
    size = (round(mosaic.width * scale), round(mosaic.height * scale))
    image = mosaic.resize(size, Image.Resampling.LANCZOS)
    path = folder / f"chelsea-{short_side}.{fmt.lower()}"
    image.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return path


def open_clip_pixels(path: Path, cfg: dict[str, Any]) -> torch.Tensor:
    import open_clip

    transform = open_clip.image_transform(
        cfg["size"], False, cfg["mean"], cfg["std"], cfg["resize_mode"], cfg["interpolation"]
    )
    return transform(Image.open(path).convert("RGB"))


def embed_pixels(path: Path, pp: ImagePreprocess) -> torch.Tensor:
    """What ``embed`` feeds the model: the batches it builds from the file's bytes."""
    batches = ImageBatches([Item(0, str(path), path=str(path))], KnownRows(), pp, 4)
    pixels = next(iter(batches)).pixels
    assert pixels is not None
    return pixels[0]


def check_parity(tmp_path: Path, cfg: dict[str, Any], scale: float, fmt: str) -> None:
    pp = ImagePreprocess.of_cfg(cfg)
    path = photo_file(tmp_path, round(pp.draft_size * scale), fmt)
    ours, theirs = embed_pixels(path, pp), open_clip_pixels(path, cfg)
    assert ours.shape == theirs.shape
    assert float((ours - theirs).abs().mean()) <= BOUND


CASES = [(s, f) for s in (0.5, 1.15, 4.0) for f in ("JPEG", "PNG")]


@pytest.mark.parametrize("scale,fmt", CASES)
@pytest.mark.parametrize(
    "cfg", FAST, ids=lambda c: f"{c['size']}-{c['interpolation']}-{c['resize_mode']}"
)
def test_pixels_match_open_clip_transform(tmp_path, cfg, scale, fmt) -> None:
    check_parity(tmp_path, cfg, scale, fmt)


@pytest.mark.slow
@pytest.mark.parametrize("scale,fmt", CASES)
@pytest.mark.parametrize("cfg", SLOW, ids=lambda c: json.dumps(c, sort_keys=True))
def test_pixels_match_open_clip_transform_every_pretrained_cfg(tmp_path, cfg, scale, fmt) -> None:
    check_parity(tmp_path, cfg, scale, fmt)


def test_every_resize_mode_and_interpolation_is_covered() -> None:
    modes = {(c["interpolation"], c["resize_mode"]) for c in FAST}
    assert {("bicubic", "squash"), ("bilinear", "shortest"), ("bilinear", "squash")} <= modes


def test_longest_mode_pads_with_fill_colour_like_open_clip(tmp_path) -> None:
    import open_clip

    path = photo_file(tmp_path, 150, "PNG")
    cfg = {"size": 64, **OPENAI, "interpolation": "bicubic", "resize_mode": "longest"}
    pp = ImagePreprocess.of_cfg({**cfg, "fill_color": 255})
    transform = open_clip.image_transform(
        64, False, cfg["mean"], cfg["std"], "longest", "bicubic", fill_color=255
    )
    expected = transform(Image.open(path).convert("RGB"))
    np.testing.assert_allclose(pp(load_image(path)).numpy(), expected.numpy(), atol=1e-5)


def test_tagged_open_clip_model_records_its_preprocess_cfg() -> None:
    from embedsearch.encoders.openclip import openclip_config

    class Visual:
        output_dim = 8
        preprocess_cfg = {
            "size": (256, 256),
            "mean": (0.5,) * 3,
            "std": (0.5,) * 3,
            "interpolation": "bicubic",
            "resize_mode": "squash",
            "fill_color": 0,
        }

    class Model:
        visual = Visual()

    config = openclip_config("ViT-B-16-SigLIP-256", Model())
    assert ImagePreprocess.of(config).resize_mode == "squash"
