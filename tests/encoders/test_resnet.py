"""The torchvision-free ResNet is torchvision's: same tensors under a seed, same outputs.

Run dirs and ``simclr:ARCH`` fingerprints written with torchvision's ResNet must stay valid.
"""

from __future__ import annotations

import pytest
import torch

from embedsearch.encoders.resnet import resnet
from embedsearch.encoders.simclr import build_backbone


def _torchvision_backbone(arch: str, small_stem: bool) -> torch.nn.Module:
    """``build_backbone`` as it was written against torchvision (seed 0)."""
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        backbone = getattr(torchvision.models, arch)(weights=None)
        if small_stem:
            backbone.conv1 = torch.nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            backbone.maxpool = torch.nn.Identity()
    backbone.fc = torch.nn.Identity()
    return backbone


@pytest.mark.parametrize(
    ("arch", "small_stem"), [("resnet18", True), ("resnet18", False), ("resnet50", True)]
)
def test_seeded_init_matches_torchvision_tensor_for_tensor(arch: str, small_stem: bool) -> None:
    ours = build_backbone(arch, small_stem).state_dict()
    theirs = _torchvision_backbone(arch, small_stem).state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)


def test_resnet34_has_torchvision_parameter_names_and_shapes() -> None:
    import torchvision

    ours = {k: v.shape for k, v in resnet("resnet34").state_dict().items()}
    theirs = {k: v.shape for k, v in torchvision.models.resnet34(weights=None).state_dict().items()}
    assert ours == theirs


def test_forward_matches_torchvision_with_the_same_weights() -> None:
    theirs = _torchvision_backbone("resnet18", small_stem=False).eval()
    ours = build_backbone("resnet18", small_stem=False).eval()
    ours.load_state_dict(theirs.state_dict())
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(ours(pixels), theirs(pixels))
