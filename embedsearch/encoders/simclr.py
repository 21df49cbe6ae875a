"""SimCLR image encoders: torchvision's ResNets (:mod:`.resnet`) with the classifier removed.

Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations". Embeddings are the backbone's pooled features *before* the
projection head (the head is only used for the training loss).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from embedsearch.encoders.base import IMAGENET_MEAN, IMAGENET_STD, Encoder, ImagePreprocess
from embedsearch.encoders.defaults import DEFAULT_IMAGE_SIZES
from embedsearch.encoders.rundir import RunConfig
from embedsearch.errors import ModelError

# Feature width of each supported backbone (the output of global average pooling).
RESNET_WIDTHS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
SMALL_STEM_MAX_SIZE = 64


def build_backbone(arch: str, small_stem: bool, seed: int = 0) -> nn.Module:
    """A randomly initialised (seeded, so reproducible) torchvision ResNet without classifier.

    ``small_stem`` swaps the 7x7/2 conv + max-pool for a 3x3/1 conv, as SimCLR does
    for CIFAR-sized inputs: small images keep their spatial detail.

    Example:
        >>> build_backbone("resnet18", small_stem=True)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 512])
    """
    from embedsearch.encoders.resnet import resnet

    if arch not in RESNET_WIDTHS:
        raise ModelError(
            f"unknown SimCLR backbone {arch!r}: choose one of {', '.join(RESNET_WIDTHS)}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = resnet(arch)  # torchvision's ResNet, without importing torchvision
        if small_stem:
            backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            backbone.maxpool = nn.Identity()
    backbone.fc = nn.Identity()
    return backbone


def simclr_config(arch: str, image_size: int) -> RunConfig:
    """The run-dir config describing a SimCLR backbone at ``image_size``."""
    return RunConfig(
        family="simclr",
        arch=arch,
        image_size=image_size,
        small_stem=image_size <= SMALL_STEM_MAX_SIZE,
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
        dim=RESNET_WIDTHS.get(arch, 0),
        modalities=["image"],
        embedding="backbone features before the projection head",
    )


class SimCLREncoder(Encoder):
    """Image-only encoder around a ResNet backbone."""

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)


def encoder_from_config(
    config: RunConfig,
    spec: str,
    options: dict[str, Any],
    state_dict: dict[str, torch.Tensor] | None = None,
) -> SimCLREncoder:
    """Build a :class:`SimCLREncoder` from a config (and optional backbone weights)."""
    backbone = build_backbone(config.arch, bool(config.small_stem))
    if state_dict is not None:
        missing, _unexpected = backbone.load_state_dict(state_dict, strict=False)
        if missing:
            raise ModelError(f"weights for {spec} lack {len(missing)} tensors, e.g. {missing[0]}")
    backbone.eval()
    return SimCLREncoder(
        spec=spec,
        options=options,
        dim=RESNET_WIDTHS[config.arch],
        modalities=frozenset({"image"}),
        preprocess=ImagePreprocess.of(config),
        config=config,
        model=backbone,
    )


def load_simclr(arch: str, spec: str, image_size: int | None = None) -> SimCLREncoder:
    """``simclr:ARCH`` -> a random-init backbone at ``image_size`` (default: the family's size in
    :mod:`~embedsearch.encoders.defaults`, the one ``pretrain simclr`` trains at)."""
    size = image_size or DEFAULT_IMAGE_SIZES["simclr"]
    return encoder_from_config(simclr_config(arch, size), spec, {"image_size": size})
