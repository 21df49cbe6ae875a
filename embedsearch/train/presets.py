"""Named recipes for ``pretrain simclr``: the measured defaults, and what a run of them costs.

A recipe fixes every setting that decides what the model learns and how long it trains:
input size, stem, batch, learning rate, temperature, augmentations, and a budget in optimiser
*steps* rather than epochs, so a run takes about the same time on 500 images as on 50,000
(``epochs = steps / (images // batch)``, at least 1). ``general`` is the default;
``copy-detection`` adds the augmentations copies go through (larger crops, JPEG) and trains
longer; benchmarks/RESULTS.md (issues 4, 6, 17, 20) has the measurements behind both.
Torch-free, so ``pretrain simclr --help`` can print them.

Example:
    >>> recipe = PRESETS["copy-detection"]
    >>> recipe.image_size, recipe.stem, recipe.temperature, recipe.jpeg_prob
    (64, 'standard', 0.1, 0.5)
    >>> recipe.epochs_for(2000)   # 15 steps of 128 per epoch
    54
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from embedsearch.choices import SimCLRPreset
from embedsearch.encoders.defaults import DEFAULT_IMAGE_SIZES

# Training throughput of resnet18 on this project's reference machine (2 CPU cores, fp32,
# channels_last, augmenting in-process), images per second, measured in benchmarks/RESULTS.md
# (issue 17): the standard stem at 64 px, and the small stem (3x3, no pool) at 32 px.
STANDARD_64_IMAGES_PER_S = 110.0
SMALL_32_IMAGES_PER_S = 27.0


@dataclass(frozen=True)
class SimCLRRecipe:
    """One ``pretrain simclr`` recipe; every field is also a command-line option."""

    image_size: int
    stem: str  # "small" | "standard"
    steps: int  # optimiser steps of the whole run (sets the epochs when --epochs is not given)
    batch_size: int
    lr: float
    temperature: float
    crop_min_scale: float
    color_strength: float
    jpeg_prob: float

    def epochs_for(self, images: int, batch_size: int | None = None) -> int:
        """Epochs that make about ``steps`` optimiser steps over ``images`` images."""
        per_epoch = max(1, images // (batch_size or self.batch_size))
        return max(1, math.ceil(self.steps / per_epoch))


PRESETS: dict[SimCLRPreset, SimCLRRecipe] = {
    # A useful model in ~9 minutes on 2 cores (450 steps of 128): the standard stem at 64 px
    # costs a quarter of the small stem at 32 px and learns faster per minute.
    "general": SimCLRRecipe(
        image_size=DEFAULT_IMAGE_SIZES["simclr"],  # embed --model simclr:ARCH's default too
        stem="standard",
        steps=450,
        batch_size=128,
        lr=0.6,
        temperature=0.1,
        crop_min_scale=0.08,
        color_strength=0.5,
        jpeg_prob=0.0,
    ),
    # Copies are crops of most of the image, recoloured and re-compressed: train on that.
    "copy-detection": SimCLRRecipe(
        image_size=DEFAULT_IMAGE_SIZES["simclr"],  # embed --model simclr:ARCH's default too
        stem="standard",
        steps=800,
        batch_size=128,
        lr=0.6,
        temperature=0.1,
        crop_min_scale=0.3,
        color_strength=0.5,
        jpeg_prob=0.5,
    ),
}


def images_per_second(image_size: int, small_stem: bool) -> float:
    """Expected training images/s of resnet18 on 2 CPU cores (scales with the feature-map area).

    Example:
        >>> round(images_per_second(64, small_stem=False)), round(images_per_second(32, True))
        (110, 27)
    """
    if small_stem:
        return SMALL_32_IMAGES_PER_S * (32 / image_size) ** 2
    return STANDARD_64_IMAGES_PER_S * (64 / image_size) ** 2


def minutes_for(recipe: SimCLRRecipe) -> float:
    """Expected training minutes of ``recipe`` on 2 CPU cores (resnet18).

    Example:
        >>> round(minutes_for(PRESETS["general"]), 1)
        8.7
    """
    images = recipe.steps * recipe.batch_size * 2  # two views per image
    return images / 2 / images_per_second(recipe.image_size, recipe.stem == "small") / 60
