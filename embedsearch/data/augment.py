"""SimCLR augmentations: two random views of one image (Chen et al. 2020, appendix A).

Per view: random resized crop (area ``crop_scale``, aspect 3/4-4/3) to ``image_size``,
horizontal flip p 0.5, colour jitter (brightness, contrast, saturation 0.8s, hue 0.2s)
with p 0.8, grayscale p 0.2, Gaussian blur p 0.5 (sigma 0.1-2.0, kernel ~10 % of the
side) when ``image_size >= 96`` (below that blur destroys what little detail there is,
as the paper's CIFAR recipe notes), optional JPEG re-encoding (``jpeg_prob``, quality
``jpeg_quality``) for copy-detection use, then normalisation.

Randomness comes from a per-call seed, so a view is a pure function of (image, seed):
DataLoader workers, resume and DDP sharding all produce identical views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFilter

from embedsearch.data.copies import reencode_jpeg
from embedsearch.encoders.base import IMAGENET_MEAN, IMAGENET_STD

BLUR_MIN_SIZE = 96


@dataclass(frozen=True)
class SimCLRAugment:
    """Picklable two-view augmentation.

    Args:
        image_size: output side in pixels.
        color_strength: ``s`` of the colour jitter (1.0 ImageNet, 0.5 CIFAR in the paper).
        crop_scale: (min, max) fraction of the image area a crop keeps.
        jpeg_prob: probability of re-encoding a view as JPEG (0 = off, the paper's recipe).
        jpeg_quality: (low, high) JPEG quality range.

    Example:
        >>> aug = SimCLRAugment(image_size=32)
        >>> v1, v2 = aug.views(Image.new("RGB", (64, 48)), seed=7)
        >>> tuple(v1.shape)
        (3, 32, 32)
    """

    image_size: int
    color_strength: float = 0.5
    crop_scale: tuple[float, float] = (0.08, 1.0)
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (25, 75)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def blur(self) -> bool:
        """Whether views get Gaussian blur (only at image_size >= 96)."""
        return self.image_size >= BLUR_MIN_SIZE

    def views(self, image: Image.Image, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent augmented views of ``image`` as normalised CHW float32 tensors."""
        rng = np.random.default_rng(seed)
        return self.view(image, rng), self.view(image, rng)

    def view(self, image: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        """One augmented view drawn with ``rng``."""
        image = self._crop(image, rng)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.blur and rng.random() < 0.5:
            radius = rng.uniform(0.1, 2.0) * self.image_size / 224
            image = image.filter(ImageFilter.GaussianBlur(radius))
        if self.jpeg_prob and rng.random() < self.jpeg_prob:
            quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
            image = reencode_jpeg(image, quality).convert("RGB")
        array = np.asarray(image, dtype=np.float32)
        array *= 1 / 255
        if self.color_strength and rng.random() < 0.8:
            array = color_jitter(array, self.color_strength, rng, inplace=True)
        if rng.random() < 0.2:
            array = np.repeat((array @ GRAY_WEIGHTS)[..., None], 3, axis=2)
        # (x - mean) / std as one multiply-add, written into the CHW copy the tensor needs anyway.
        std = np.asarray(self.std, np.float32)
        array *= 1 / std
        array -= np.asarray(self.mean, np.float32) / std
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def _crop(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Random resized crop (torchvision's algorithm: 10 tries, then a centre crop)."""
        width, height = image.size
        area = width * height
        box = None
        for _ in range(10):
            target = area * rng.uniform(*self.crop_scale)
            ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            w, h = round(np.sqrt(target * ratio)), round(np.sqrt(target / ratio))
            if 0 < w <= width and 0 < h <= height:
                left = int(rng.integers(0, width - w + 1))
                top = int(rng.integers(0, height - h + 1))
                box = (left, top, left + w, top + h)
                break
        if box is None:
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            box = (left, top, left + side, top + side)
        size = (self.image_size, self.image_size)
        return image.resize(size, Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)


def color_jitter(
    array: np.ndarray, strength: float, rng: np.random.Generator, inplace: bool = False
) -> np.ndarray:
    """Brightness, contrast, saturation (each 0.8s) and hue (0.2s) in random order, on HWC [0, 1].

    ``inplace=True`` lets it overwrite ``array`` (a float32 array the caller owns): this runs
    twice per training image, in the training process on small CPUs, so copies matter.

    Example:
        >>> out = color_jitter(np.full((4, 4, 3), 0.5, np.float32), 0.5, np.random.default_rng(0))
        >>> out.shape, float(out.min()) >= 0.0, float(out.max()) <= 1.0
        ((4, 4, 3), True, True)
    """
    amounts = {
        "brightness": rng.uniform(max(0, 1 - 0.8 * strength), 1 + 0.8 * strength),
        "contrast": rng.uniform(max(0, 1 - 0.8 * strength), 1 + 0.8 * strength),
        "saturation": rng.uniform(max(0, 1 - 0.8 * strength), 1 + 0.8 * strength),
        "hue": rng.uniform(-0.2 * strength, 0.2 * strength),
    }
    array = array if inplace and array.dtype == np.float32 else array.astype(np.float32)
    for name in rng.permutation(list(amounts)):
        factor = np.float32(amounts[name])
        if name == "brightness":
            array *= factor
        elif name in ("contrast", "saturation"):
            # Blend with the gray level: the image's mean (contrast) or each pixel's (saturation);
            # a 2-D matmul, as numpy's strided per-channel mean is slow.
            gray = array.reshape(-1, 3) @ GRAY_WEIGHTS
            toward = (
                np.float32(gray.mean()) if name == "contrast" else gray.reshape(*array.shape[:2], 1)
            )
            array -= toward
            array *= factor
            array += toward
        else:
            array = _shift_hue(array, float(factor))
        np.clip(array, 0.0, 1.0, out=array)
    return array


GRAY_WEIGHTS = np.asarray([0.299, 0.587, 0.114], np.float32)
# Hue is rotated around the gray axis in YIQ space: a cheap, smooth hue shift.
_YIQ = np.asarray(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32
)
_YIQ_INVERSE = np.linalg.inv(_YIQ)


def _shift_hue(array: np.ndarray, shift: float) -> np.ndarray:
    angle = 2 * np.pi * shift
    cos, sin = np.cos(angle), np.sin(angle)
    rotate = np.asarray([[1, 0, 0], [0, cos, -sin], [0, sin, cos]], np.float32)
    matrix = (_YIQ_INVERSE @ rotate @ _YIQ).T.astype(np.float32)
    return array @ matrix
