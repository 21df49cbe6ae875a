"""Synthetic embedding dirs for dedup tests, offered as the ``gen`` fixture (test modules cannot import conftest)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.writer import ShardWriter


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def write_dir(
    path: Path,
    vectors: np.ndarray,
    sources: Sequence[str] | None = None,
    hashes: Sequence[str] | None = None,
    fingerprint: str = "fp-test",
    modality: str = "image",
    first_id: int = 0,
    shard_rows: int = 97,
) -> Path:
    """An embedding dir with the given (normalised) vectors; distinct hashes unless given."""
    n, dim = vectors.shape
    ids = np.arange(first_id, first_id + n)
    sources = (
        list(sources) if sources is not None else [f"{path.name}/item_{i:05d}.png" for i in ids]
    )
    hashes = (
        list(hashes)
        if hashes is not None
        else [hashlib.blake2b(s.encode(), digest_size=16).hexdigest() for s in sources]
    )
    d = EmbeddingDir.create_or_open(
        path,
        model="test-model",
        model_options={},
        fingerprint=fingerprint,
        modality=modality,
        dim=dim,
        source="generated",
    )
    writer = ShardWriter(d, reserve_next_id=first_id + n, shard_rows=shard_rows)
    writer.add(ids, sources, hashes, unit(vectors))
    writer.close()
    return path


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    return unit(np.random.default_rng(seed).normal(size=(n, dim)))


def near_copy(v: np.ndarray, cos: float, seed: int) -> np.ndarray:
    """A unit vector at exactly cosine ``cos`` from unit vector ``v``."""
    noise = np.random.default_rng([seed, 7919]).normal(
        size=v.shape
    )  # not the stream random_unit used
    noise -= (noise @ v) * v
    noise = unit(noise)
    return unit(cos * v + np.sqrt(1 - cos**2) * noise)


@pytest.fixture
def gen() -> SimpleNamespace:
    """``gen.write_dir``, ``gen.random_unit``, ``gen.near_copy``, ``gen.unit``."""
    return SimpleNamespace(
        write_dir=write_dir, random_unit=random_unit, near_copy=near_copy, unit=unit
    )
