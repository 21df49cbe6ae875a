"""The perceptual-hash stage: hashes of real photos, pairs within a distance, and dedup's use."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from embedsearch import find_duplicates
from embedsearch.dedup.phash import hamming, phash_image, phash_pairs
from embedsearch.errors import InputError


def photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB").resize((96, 72))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_a_recompressed_photo_keeps_its_hash_within_a_few_bits() -> None:
    image = photo("astronaut")
    assert hamming(phash_image(image), phash_image(jpeg(image, 40))) <= 4


def test_two_different_photos_are_far_apart() -> None:
    assert hamming(phash_image(photo("astronaut")), phash_image(photo("coffee"))) > 16


def test_pairs_match_a_brute_force_count() -> None:
    hashes = np.random.default_rng(0).integers(0, 256, (300, 8), dtype=np.uint8)
    hashes[150:] = hashes[:150] ^ (np.random.default_rng(1).random((150, 8)) < 0.05)
    a, b, d = phash_pairs(hashes, 6, block=64)
    bits = np.unpackbits(hashes, axis=1)
    dist = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    expect = {(i, j) for i, j in zip(*np.nonzero(np.triu(dist <= 6, 1)), strict=True)}
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == expect


def test_unreadable_files_pair_with_nothing() -> None:
    hashes = np.zeros((3, 8), np.uint8)
    a, _, _ = phash_pairs(hashes, 0, readable=np.array([True, False, True]))
    assert a.tolist() == [0]


@pytest.fixture
def copies_the_vectors_miss(tmp_path: Path, gen) -> Path:
    """Three photos and a JPEG copy of the first, with vectors that place the copy far away."""
    folder = tmp_path / "images"
    folder.mkdir()
    names = ["astronaut", "coffee", "chelsea"]
    for name in names:
        photo(name).save(folder / f"{name}.png")
    jpeg(photo("astronaut"), 50).save(folder / "astronaut_copy.jpg")
    sources = [str(folder / f"{n}.png") for n in names] + [str(folder / "astronaut_copy.jpg")]
    vectors = gen.random_unit(4, 16, seed=3)
    return gen.write_dir(tmp_path / "emb", vectors, sources)


def test_phash_stage_adds_the_copy_the_vectors_miss(
    tmp_path: Path, copies_the_vectors_miss
) -> None:
    result = find_duplicates(copies_the_vectors_miss, out=tmp_path / "out", threshold=0.99, phash=6)
    pairs = pd.read_parquet(result.out / "pairs.parquet")
    names = {
        frozenset((Path(a).name, Path(b).name))
        for a, b in zip(pairs.source_a, pairs.source_b, strict=True)
    }
    assert names == {frozenset(("astronaut.png", "astronaut_copy.jpg"))}


def test_phash_pairs_are_counted_in_the_summary(tmp_path: Path, copies_the_vectors_miss) -> None:
    find_duplicates(copies_the_vectors_miss, out=tmp_path / "out", threshold=0.99, phash=6)
    assert json.loads((tmp_path / "out" / "dedup.json").read_text())["phash_pairs"] == 1


def test_without_phash_the_embedding_dir_result_is_unchanged(
    tmp_path: Path, copies_the_vectors_miss
) -> None:
    result = find_duplicates(copies_the_vectors_miss, out=tmp_path / "out", threshold=0.99)
    assert result.pairs == 0


def test_phash_refuses_text_embeddings(tmp_path: Path, gen) -> None:
    emb = gen.write_dir(tmp_path / "emb", gen.random_unit(4, 8, seed=0), modality="text")
    with pytest.raises(InputError, match="texts"):
        find_duplicates(emb, out=tmp_path / "out", phash=6)


def test_phash_refuses_against(tmp_path: Path, gen) -> None:
    a = gen.write_dir(tmp_path / "a", gen.random_unit(4, 8, seed=0))
    b = gen.write_dir(tmp_path / "b", gen.random_unit(4, 8, seed=1))
    with pytest.raises(InputError, match="--phash"):
        find_duplicates(a, out=tmp_path / "out", against=b, phash=6)


def test_the_dct_is_scipys_orthonormal_dct_ii() -> None:
    from scipy.fft import dctn  # a test dependency only: the package computes it with numpy

    from embedsearch.dedup.phash import _DCT_8_OF_32

    x = np.random.default_rng(0).random((32, 32)) * 255
    np.testing.assert_allclose(
        _DCT_8_OF_32 @ x @ _DCT_8_OF_32.T, dctn(x, type=2, norm="ortho")[:8, :8], atol=1e-9
    )
