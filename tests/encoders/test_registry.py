"""The spec parser and the encoder contract (dims, modalities, normalisation, fingerprints)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedsearch.encoders import load_encoder
from embedsearch.errors import ModelError


def test_simclr_spec_builds_small_stem_backbone_with_normalised_output() -> None:
    enc = load_encoder("simclr:resnet18", image_size=32)
    assert enc.dim == 512
    assert enc.modalities == {"image"}
    assert enc.preprocess.image_size == 32
    assert enc.options == {"image_size": 32}
    assert isinstance(enc.model.maxpool, torch.nn.Identity)
    assert enc.model.conv1.kernel_size == (
        3,
        3,
    )
    out = enc.embed_images(torch.randn(3, 3, 32, 32))
    assert out.dtype == np.float32
    assert out.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_large_images_keep_the_standard_stem() -> None:
    enc = load_encoder("simclr:resnet18", image_size=96)
    assert enc.model.conv1.kernel_size == (7, 7)
    assert not isinstance(enc.model.maxpool, torch.nn.Identity)


def test_random_init_is_reproducible_so_fingerprints_are_stable() -> None:
    a = load_encoder("simclr:resnet18", image_size=32)
    b = load_encoder("simclr:resnet18", image_size=32)
    c = load_encoder("simclr:resnet18", image_size=48)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint  # image size changes the config


def test_fingerprint_changes_when_weights_change() -> None:
    a = load_encoder("simclr:resnet18", image_size=32)
    before = a.fingerprint
    b = load_encoder("simclr:resnet18", image_size=32)
    with torch.no_grad():
        b.model.conv1.weight.add_(0.01)
    assert b.fingerprint != before


def test_tiny_clip_embeds_images_and_texts_into_one_space() -> None:
    enc = load_encoder("tiny-clip")
    assert enc.modalities == {"image", "text"}
    assert enc.dim == 128
    texts = enc.embed_texts(["a red circle", "a blue square"])
    images = enc.embed_images(
        torch.randn(2, 3, enc.preprocess.image_size, enc.preprocess.image_size)
    )
    assert texts.shape == images.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(texts[0], texts[1])


def test_openclip_architecture_spec_with_random_init() -> None:
    enc = load_encoder("openclip:tiny-clip")
    assert enc.config.arch == "tiny-clip"
    assert enc.config.model_cfg is not None
    assert enc.config.model_cfg["embed_dim"] == 128


def test_image_only_model_refuses_text_with_a_clear_message() -> None:
    enc = load_encoder("simclr:resnet18", image_size=32)
    with pytest.raises(ModelError, match="no text tower"):
        enc.embed_texts(["hello"])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("resnet18", "unknown model"),
        ("simclr:resnet7", "unknown SimCLR backbone"),
        ("openclip:NoSuchArch", "unknown open_clip architecture"),
        ("openclip:tiny-clip/no_such_tag", "neither a file nor a pretrained tag"),
        ("openclip:tiny-clip/does/not/exist.pt", "weights file not found"),
        ("", "empty model spec"),
    ],
)
def test_bad_specs_raise_model_errors(spec: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_encoder(spec)


def test_openclip_local_weights_file_is_loaded(tmp_path) -> None:
    from safetensors.torch import save_file

    enc = load_encoder("tiny-clip")
    state = {k: v.clone() for k, v in enc.model.state_dict().items()}
    state["logit_scale"] = torch.tensor(1.2345)
    save_file(state, str(tmp_path / "w.safetensors"))
    loaded = load_encoder(f"openclip:tiny-clip/{tmp_path / 'w.safetensors'}")
    assert loaded.model.logit_scale.item() == pytest.approx(1.2345)
    assert loaded.fingerprint != enc.fingerprint


@pytest.mark.parametrize("name", ["tiny", "tiny-clip", "openclip:tiny", "openclip:tiny-clip"])
def test_embed_and_pretrain_clip_accept_the_same_short_names(name) -> None:
    from embedsearch.encoders import clip_arch

    assert load_encoder(name).config.arch == "tiny-clip"
    assert clip_arch(name) == "tiny-clip"


def test_loading_a_shipped_config_leaves_open_clip_registry_alone() -> None:
    import open_clip

    before = open_clip.list_models()
    load_encoder("tiny-clip")
    assert open_clip.list_models() == before


def test_loading_a_clip_model_leaves_the_host_logging_alone() -> None:
    import logging

    root = logging.getLogger()
    filters = list(root.filters)
    load_encoder("tiny-clip")
    assert logging.root.manager.disable == logging.NOTSET
    assert root.filters == filters


def test_resnet_choices_of_the_cli_are_the_backbones_the_encoder_builds() -> None:
    from embedsearch.choices import RESNET_ARCHS
    from embedsearch.encoders.simclr import RESNET_WIDTHS

    assert set(RESNET_ARCHS) == set(RESNET_WIDTHS)
