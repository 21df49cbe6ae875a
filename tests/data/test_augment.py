"""SimCLR augmentations: shapes, value ranges, determinism per seed, which ops apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from embedsearch.data.augment import SimCLRAugment, color_jitter
from embedsearch.encoders.base import IMAGENET_MEAN, IMAGENET_STD

LOW = torch.tensor([(0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=False)]).view(
    3, 1, 1
)
HIGH = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=False)]).view(
    3, 1, 1
)


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [16, 32, 96])
def test_views_have_output_shape_and_normalised_range(photo: Image.Image, size: int) -> None:
    aug = SimCLRAugment(size, color_strength=1.0, jpeg_prob=0.5)
    for seed in range(5):
        for view in aug.views(photo, seed):
            assert view.shape == (3, size, size)
            assert view.dtype == torch.float32
            assert (view >= LOW - 1e-5).all()
            assert (view <= HIGH + 1e-5).all()


def test_views_are_a_function_of_the_seed(photo: Image.Image) -> None:
    aug = SimCLRAugment(24)
    a1, a2 = aug.views(photo, seed=3)
    b1, b2 = aug.views(photo, seed=3)
    c1, _ = aug.views(photo, seed=4)
    assert torch.equal(a1, b1)
    assert torch.equal(a2, b2)
    assert not torch.equal(a1, a2)
    assert not torch.equal(a1, c1)


def test_full_crop_without_colour_is_the_resized_image(photo: Image.Image) -> None:
    # crop_scale (1, 1) on a square image and no colour ops leave resize (+ maybe a flip) only.
    square = photo.crop((0, 0, 30, 30))
    aug = SimCLRAugment(30, color_strength=0.0, crop_scale=(1.0, 1.0))
    view, _ = aug.views(square, seed=1)
    expected = (np.asarray(square, np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    expected = torch.from_numpy(expected.transpose(2, 0, 1).astype(np.float32))
    # seed 1 draws no grayscale; the flip is a coin toss, so either orientation is right.
    assert any(
        torch.allclose(view, e, atol=1e-4) for e in (expected, torch.flip(expected, dims=[2]))
    )


def test_blur_only_from_96_pixels() -> None:
    assert not SimCLRAugment(64).blur
    assert SimCLRAugment(96).blur


def test_color_jitter_keeps_range_and_changes_colours() -> None:
    rng = np.random.default_rng(0)
    array = rng.random((8, 8, 3), dtype=np.float32)
    out = color_jitter(array, 1.0, np.random.default_rng(1))
    assert out.shape == array.shape
    assert out.min() >= 0
    assert out.max() <= 1
    assert not np.allclose(out, array)


def test_grayscale_input_gives_three_channels() -> None:
    gray = Image.new("L", (20, 20), 128).convert("RGB")
    view, _ = SimCLRAugment(16).views(gray, seed=0)
    assert view.shape == (3, 16, 16)


def _reference_jitter(array: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """The colour jitter written plainly, one full-size operation at a time."""
    low, high = max(0, 1 - 0.8 * strength), 1 + 0.8 * strength
    amounts = {
        "brightness": rng.uniform(low, high),
        "contrast": rng.uniform(low, high),
        "saturation": rng.uniform(low, high),
        "hue": rng.uniform(-0.2 * strength, 0.2 * strength),
    }
    yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    out = array.astype(np.float64)
    for name in rng.permutation(list(amounts)):
        f = amounts[name]
        gray = out @ np.array([0.299, 0.587, 0.114])
        if name == "brightness":
            out = out * f
        elif name == "contrast":
            out = (out - gray.mean()) * f + gray.mean()
        elif name == "saturation":
            out = (out - gray[..., None]) * f + gray[..., None]
        else:
            c, s = np.cos(2 * np.pi * f), np.sin(2 * np.pi * f)
            out = out @ (np.linalg.inv(yiq) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ yiq).T
        out = np.clip(out, 0, 1)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_color_jitter_matches_the_plain_reference_and_copies_unless_asked(seed: int) -> None:
    array = np.random.default_rng(seed).random((12, 10, 3), dtype=np.float32)
    before = array.copy()
    out = color_jitter(array, 1.0, np.random.default_rng(100 + seed))
    np.testing.assert_allclose(
        out, _reference_jitter(before, 1.0, np.random.default_rng(100 + seed)), atol=1e-5
    )
    assert np.array_equal(array, before)  # inplace=False must not touch the caller's array
    # inplace=True only permits overwriting the input; the result is the same.
    np.testing.assert_array_equal(
        color_jitter(array, 1.0, np.random.default_rng(100 + seed), inplace=True), out
    )
