"""torchvision's PIL resize, pad, crop and centre crop, without importing torchvision.

``open_clip.image_transform`` prepares images with ``torchvision.transforms.functional``; on a
PIL image each of those calls is a size computation followed by one Pillow call. These
functions make the same computations and the same Pillow calls, so the pixels are the same
(tests: ``tests/encoders/test_geometry.py`` against torchvision,
``tests/encoders/test_preprocess_parity.py`` against open_clip), while a query does not pay
for importing torchvision (which imports ``torch._dynamo``: more than ``import torch`` costs).

Example:
    >>> from PIL import Image
    >>> resize(Image.new("RGB", (300, 200)), [100], "bicubic").size
    (150, 100)
    >>> center_crop(Image.new("RGB", (150, 100)), [100, 100]).size
    (100, 100)
"""

from __future__ import annotations

from typing import Any, Literal

from PIL import Image, ImageOps

Mode = Literal["bilinear", "bicubic"]
_PIL_MODES = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def resized_size(height: int, width: int, size: list[int]) -> tuple[int, int]:
    """(height, width) after ``resize``: ``[s]`` sets the shorter side, ``[h, w]`` both.

    torchvision's ``_compute_resized_output_size``: the longer side is truncated, not rounded.

    Example:
        >>> resized_size(200, 301, [100])
        (100, 150)
    """
    if len(size) == 2:
        return size[0], size[1]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size[0], int(size[0] * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def resize(image: Any, size: list[int], mode: Mode) -> Any:
    """``torchvision.transforms.functional.resize`` on a PIL image (antialiased, as Pillow is)."""
    height, width = resized_size(image.height, image.width, size)
    if (height, width) == (image.height, image.width):
        return image
    return image.resize((width, height), _PIL_MODES[mode])


def pad(image: Any, padding: list[int], fill: int = 0) -> Any:
    """Constant padding ``[left, top, right, bottom]``, as torchvision pads a PIL image."""
    channels = len(image.getbands())
    color: int | tuple[int, ...] = int(fill) if channels == 1 else (int(fill),) * channels
    if image.mode == "P":
        palette = image.getpalette()
        padded = ImageOps.expand(image, border=tuple(padding), fill=color)
        padded.putpalette(palette)
        return padded
    return ImageOps.expand(image, border=tuple(padding), fill=color)


def crop(image: Any, top: int, left: int, height: int, width: int) -> Any:
    """The ``height`` x ``width`` box at (``top``, ``left``); outside the image is black."""
    return image.crop((left, top, left + width, top + height))


def center_crop(image: Any, size: list[int]) -> Any:
    """The centred ``[height, width]`` box, padding with 0 first where the image is smaller."""
    crop_height, crop_width = size
    width, height = image.size
    if crop_width > width or crop_height > height:
        pad_w, pad_h = max(crop_width - width, 0), max(crop_height - height, 0)
        image = pad(image, [pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2])
        width, height = image.size
        if (crop_width, crop_height) == (width, height):
            return image
    top = int(round((height - crop_height) / 2.0))
    left = int(round((width - crop_width) / 2.0))
    return crop(image, top, left, crop_height, crop_width)
