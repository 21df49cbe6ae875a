"""The torchvision-free PIL geometry gives torchvision's pixels, size for size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from embedsearch.encoders import geometry

# Odd and even sides, landscape and portrait, smaller and larger than the targets.
SIZES = [(451, 300), (300, 451), (17, 33), (64, 64), (225, 224), (1, 40)]
TARGETS = [[32], [224], [24, 40], [300, 17]]


def _photo(width: int, height: int) -> Image.Image:
    from skimage import data as skdata

    return Image.fromarray(skdata.chelsea()).convert("RGB").resize((width, height))


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_resize_is_torchvisions(mode: geometry.Mode) -> None:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    tv_mode = InterpolationMode.BILINEAR if mode == "bilinear" else InterpolationMode.BICUBIC
    pairs = [(_photo(w, h), target) for w, h in SIZES for target in TARGETS]
    assert all(
        _same(geometry.resize(img, t, mode), F.resize(img, list(t), tv_mode)) for img, t in pairs
    )


def test_center_crop_is_torchvisions_including_padding() -> None:
    from torchvision.transforms import functional as F

    pairs = [(_photo(w, h), target) for w, h in SIZES for target in ([50, 50], [20, 301], [3, 2])]
    assert all(_same(geometry.center_crop(img, t), F.center_crop(img, t)) for img, t in pairs)


def test_pad_is_torchvisions() -> None:
    from torchvision.transforms import functional as F

    img = _photo(30, 20)
    assert _same(geometry.pad(img, [1, 2, 3, 4], 255), F.pad(img, [1, 2, 3, 4], 255))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_non_square_shortest_resizes_bicubic_as_open_clip_does(interpolation: str) -> None:
    # open_clip's ResizeKeepRatio (non-square ``shortest``) is bicubic whatever the config.
    import open_clip
    import torch

    from embedsearch.encoders.base import ImagePreprocess

    size, mean, std = (40, 24), (0.5,) * 3, (0.25,) * 3
    ours = ImagePreprocess(size, mean, std, interpolation)  # type: ignore[arg-type]
    theirs = open_clip.image_transform(
        size, is_train=False, mean=mean, std=std, interpolation=interpolation
    )
    photo = _photo(451, 300)
    assert torch.equal(ours(photo), theirs(photo))
