"""Synthetic embedding dirs for index tests: clustered vectors of low intrinsic dimension."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedsearch.store.arrays import write_embedding_dir


def clustered_vectors(
    n: int, dim: int, seed: int, latent: int = 8, clusters: int = 50
) -> np.ndarray:
    """L2-normalised vectors near a low-dimensional subspace, in clusters (like real embeddings).

    The subspace and the cluster centres depend only on ``dim``, so different seeds draw
    more points (corpus rows, fresh queries) from the same distribution.
    """
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1000 + dim).standard_normal((latent, dim)).astype(np.float32)
    centres = (
        np.random.default_rng(2000 + dim).standard_normal((clusters, latent)).astype(np.float32)
    )
    z = centres[rng.integers(0, clusters, n)] + 0.4 * rng.standard_normal((n, latent)).astype(
        np.float32
    )
    x = z @ basis + 0.2 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_emb_dir(
    path: Path,
    vectors: np.ndarray,
    *,
    start_id: int = 0,
    fingerprint: str = "fp-test",
    model: str = "simclr:resnet18",
    prefix: str = "img",
    shard_rows: int = 1500,
    columns: dict[str, Callable[[int], Any]] | None = None,
) -> np.ndarray:
    """Append ``vectors`` to the embedding dir at ``path`` with ids from ``start_id``; returns
    the ids. Metadata: ``label`` = id % 5, plus ``columns`` (name -> value of an id)."""
    ids = np.arange(start_id, start_id + len(vectors), dtype=np.int64)
    metadata = {"label": [int(i % 5) for i in ids]}
    metadata.update({name: [value(int(i)) for i in ids] for name, value in (columns or {}).items()})
    write_embedding_dir(
        path,
        vectors,
        ids=ids,
        sources=[f"{prefix}/{i}.png" for i in ids],
        content_hashes=[f"h{i}" for i in ids],
        metadata=metadata,
        model=model,
        fingerprint=fingerprint,
        model_options={"image_size": 32},
        shard_rows=shard_rows,
    )
    return ids


@pytest.fixture
def emb_dir(tmp_path: Path) -> Callable[..., Path]:
    """``emb_dir(name, n=2000, dim=32, seed=0, **write_emb_dir kwargs)`` -> a new embedding dir."""

    def make(name: str, n: int = 2000, dim: int = 32, seed: int = 0, **kwargs) -> Path:
        path = tmp_path / name
        write_emb_dir(path, clustered_vectors(n, dim, seed), **kwargs)
        return path

    return make


@pytest.fixture
def vectors() -> Callable[..., np.ndarray]:
    """The :func:`clustered_vectors` helper (test modules cannot import conftest)."""
    return clustered_vectors


@pytest.fixture
def write_emb() -> Callable[..., np.ndarray]:
    """The :func:`write_emb_dir` helper."""
    return write_emb_dir
