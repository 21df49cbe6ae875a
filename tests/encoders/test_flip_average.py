"""Flip averaging: mirror-invariant image vectors, recorded in the options and the fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from embedsearch.embedding import embed
from embedsearch.encoders import load_encoder
from embedsearch.errors import ModelError
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.reader import iter_vectors


def test_an_image_and_its_mirror_get_the_same_vector_only_with_flip_average() -> None:
    pixels = torch.randn(4, 3, 32, 32)
    plain = load_encoder("simclr:resnet18", image_size=32)
    flipped = load_encoder("simclr:resnet18", image_size=32, flip_average=True)
    a, b = plain.embed_images(pixels), plain.embed_images(pixels.flip(-1))
    assert (
        np.einsum("ij,ij->i", a, b).max() < 0.9999
    )  # a random-init ResNet is not mirror-invariant
    fa, fb = flipped.embed_images(pixels), flipped.embed_images(pixels.flip(-1))
    np.testing.assert_allclose(fa, fb, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fa, axis=1), 1.0, rtol=1e-5)
    # The normalised mean of the two views' unit vectors, as documented.
    mean = a + b
    np.testing.assert_allclose(fa, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5)
    assert flipped.options == {"image_size": 32, "flip_average": True}
    assert flipped.fingerprint != plain.fingerprint  # other vectors, other fingerprint


def test_embed_records_flip_average_so_the_dir_reloads_the_same_encoder(tmp_path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        Image.fromarray(np.asarray(Image.open(folder / f"{i}.png"))[:, ::-1]).save(
            folder / f"{i}_mirror.png"
        )
    embed(
        folder,
        model="simclr:resnet18",
        out=tmp_path / "emb",
        image_size=32,
        flip_average=True,
        workers=0,
    )
    emb = EmbeddingDir.open(tmp_path / "emb")
    assert emb.model_options == {"image_size": 32, "flip_average": True}
    reloaded = load_encoder(emb.model, **emb.model_options)
    assert reloaded.fingerprint == emb.fingerprint
    vectors = np.concatenate([v for _, v in iter_vectors(tmp_path / "emb")])
    assert len(vectors) == 6
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -1)
    assert (scores.max(axis=1) > 0.9999).all()  # every image's mirror is its twin


def test_flip_average_needs_an_image_tower() -> None:
    enc = load_encoder("tiny-clip")
    enc.modalities = frozenset({"text"})
    with pytest.raises(ModelError, match="no image tower"):
        enc.use_flip_average()
