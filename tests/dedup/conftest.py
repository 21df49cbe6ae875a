"""Synthetic embedding dirs for dedup tests, offered as the ``gen`` fixture (test modules cannot
import conftest)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from embedsearch.store.arrays import write_embedding_dir


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
    """An embedding dir with the given vectors; sources ``<dir name>/item_<id>.png`` and
    distinct hashes unless given."""
    ids = np.arange(first_id, first_id + len(vectors))
    if sources is None:
        sources = [f"{path.name}/item_{i:05d}.png" for i in ids]
    write_embedding_dir(
        path,
        vectors,
        ids=ids,
        sources=sources,
        content_hashes=hashes,
        model="test-model",
        fingerprint=fingerprint,
        modality=modality,
        shard_rows=shard_rows,
    )
    return path


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    return unit(np.random.default_rng(seed).normal(size=(n, dim)))


def near_copy(v: np.ndarray, cos: float, seed: int) -> np.ndarray:
    """A unit vector at exactly cosine ``cos`` from unit vector ``v``."""
    # A seed sequence that random_unit's streams never use.
    noise = np.random.default_rng([seed, 7919]).normal(size=v.shape)
    noise -= (noise @ v) * v
    noise = unit(noise)
    return unit(cos * v + np.sqrt(1 - cos**2) * noise)


@pytest.fixture
def gen() -> SimpleNamespace:
    """``gen.write_dir``, ``gen.random_unit``, ``gen.near_copy``, ``gen.unit``."""
    return SimpleNamespace(
        write_dir=write_dir, random_unit=random_unit, near_copy=near_copy, unit=unit
    )
