"""The rows of a large same-set dedup in one matrix, routed to k-means cells.

:mod:`~embedsearch.dedup.cell_join` compares rows cell by cell; this module prepares what it
needs: every vector in one float32 matrix (read once; it is the only copy, and what the later
stages read vectors from), a coarse quantizer trained on a sample of that matrix (no second
read of the shards), and each row's ``nprobe`` nearest cells from one quantizer evaluation per
row. ``nlist`` balances the two costs: assigning (``n * nlist`` dot products) and joining
(``n * nprobe * n / nlist``).

Example:
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 8)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> quantizer = train_cells(x, 16)
    >>> probes = probe_cells(x, quantizer, 4)
    >>> probes.shape, probes.dtype.name
    ((2000, 4), 'int32')
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from embedsearch.progress import NullProgress, Progress

# The join's cost per (prober row, member row) against the quantizer's per (row, centroid), as
# measured at 1M rows (benchmarks/RESULTS.md, issue 15): the total is flat within +-15 % for
# 0.4x-2x this, so it only needs to be about right.
JOIN_TO_ASSIGN_COST = 0.7
# k-means points per cell: fewer than faiss's 39 leave cells a few % less even, which costs the
# join less than the training saved (30 points: ~1 min of k-means at 10M rows).
TRAIN_POINTS_PER_CELL = 16
PROBE_BLOCK = 16_384


def nlist_for_cell_join(n: int, nprobe: int) -> int:
    """The cell count that balances assigning rows against joining cells:
    ``sqrt(JOIN_TO_ASSIGN_COST * nprobe * n)``, at least ``nprobe`` and 1 cell per 40 rows.

    Example:
        >>> nlist_for_cell_join(10_000_000, 8), nlist_for_cell_join(1_000_000, 8)
        (7483, 2366)
    """
    balanced = int(np.sqrt(JOIN_TO_ASSIGN_COST * nprobe * n))
    return int(max(1, min(max(balanced, nprobe), n // 40, 65_536)))


def load_matrix(
    blocks: Iterator[tuple[int, np.ndarray]], n: int, dim: int, progress: Progress | None = None
) -> np.ndarray:
    """The ``n`` streamed rows as one ``(n, dim)`` float32 matrix, refusing any other count.

    Example:
        >>> load_matrix(iter([(0, np.ones((2, 3))), (2, np.zeros((1, 3)))]), 3, 3).sum()
        np.float32(6.0)
    """
    progress = progress or NullProgress()
    progress.start("reading vectors", n)
    x = np.empty((n, dim), dtype=np.float32)
    seen = 0
    for _, vectors in blocks:
        if seen + len(vectors) > n:
            raise ValueError(f"the inputs hold more than the {n} rows counted in the catalog")
        x[seen : seen + len(vectors)] = vectors
        seen += len(vectors)
        progress.advance(len(vectors))
    if seen != n:
        raise ValueError(f"the inputs hold {seen} rows, the catalog {n}")
    return x


def train_cells(
    x: np.ndarray,
    nlist: int,
    niter: int = 10,
    seed: int = 1234,
    progress: Progress | None = None,
) -> Any:
    """A flat inner-product quantizer over ``nlist`` spherical k-means centroids, trained on
    ``TRAIN_POINTS_PER_CELL`` rows a cell drawn from ``x`` (seeded: the same cells every run).
    Ten iterations are enough: cells only route near copies together, as IVF dedup does today.
    """
    import faiss

    rng = np.random.default_rng(seed)
    m = min(len(x), TRAIN_POINTS_PER_CELL * nlist)
    (progress or NullProgress()).start(f"training {nlist} cells on {m:,} rows", None)
    sample = x[np.sort(rng.choice(len(x), m, replace=False))]
    clustering = faiss.Clustering(x.shape[1], nlist)
    clustering.seed, clustering.niter, clustering.spherical = seed, niter, True
    clustering.min_points_per_centroid = 1  # small sets train without faiss's warning
    quantizer = faiss.IndexFlatIP(x.shape[1])
    clustering.train(sample, quantizer)
    return quantizer


def probe_cells(
    x: np.ndarray, quantizer: Any, nprobe: int, progress: Progress | None = None
) -> np.ndarray:
    """Each row's ``nprobe`` nearest cells, nearest first, as ``(n, nprobe)`` int32: column 0
    is the row's own cell (IVF's assignment), the rest the cells its query would probe."""
    progress = progress or NullProgress()
    nprobe = min(nprobe, quantizer.ntotal)
    probes = np.empty((len(x), nprobe), dtype=np.int32)
    progress.start("assigning vectors to cells", len(x))
    for start in range(0, len(x), PROBE_BLOCK):
        block = x[start : start + PROBE_BLOCK]
        probes[start : start + len(block)] = quantizer.search(block, nprobe)[1]
        progress.advance(len(block))
    return probes
