"""Robust decoding: odd modes become RGB, broken files become reasons."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from embedsearch.data import decode
from embedsearch.data.decode import DecodeError, decode_image


def _bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _rgba_half_transparent() -> Image.Image:
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent pixel -> white background
    return image


@pytest.mark.parametrize(
    "image, fmt, expected_pixel",
    [
        (Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", None),  # CMYK red
        (Image.fromarray(np.full((8, 8), 40000, np.uint16)), "PNG", None),  # 16-bit gray
        (Image.new("L", (8, 8), 128), "PNG", (128, 128, 128)),
        (Image.new("P", (8, 8), 3), "GIF", None),
        (_rgba_half_transparent(), "PNG", (255, 255, 255)),
        (Image.new("LA", (8, 8), (10, 0)), "PNG", (255, 255, 255)),
    ],
)
def test_unusual_modes_decode_to_rgb(image: Image.Image, fmt: str, expected_pixel) -> None:
    out = decode_image(_bytes(image, fmt))
    assert out.mode == "RGB" and out.size == (8, 8)
    if expected_pixel is not None:
        assert out.getpixel((0, 0)) == expected_pixel


def test_sixteen_bit_range_is_scaled_not_clipped() -> None:
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    out = np.asarray(decode_image(_bytes(Image.fromarray(ramp), "PNG")))
    assert out[..., 0].min() == 0 and out[..., 0].max() == 255


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not an image"),
    ],
)
def test_unreadable_bytes_give_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_image(data)


def test_truncated_jpeg_is_refused() -> None:
    data = _bytes(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    with pytest.raises(DecodeError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DecodeError, match="too large"):
        decode_image(_bytes(Image.new("RGB", (20, 20)), "PNG"))


def test_jpeg_draft_decodes_large_images_smaller() -> None:
    data = _bytes(Image.new("RGB", (1024, 1024), (5, 5, 5)), "JPEG")
    assert decode_image(data, draft_size=64).size[0] < 1024
    assert decode_image(data).size == (1024, 1024)
