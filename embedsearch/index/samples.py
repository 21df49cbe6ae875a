"""Random samples of an index's rows, drawn in one streaming pass: training and query rows.

Example:
    >>> train, tuning, held_out = draw_samples(dirs, [40_000, 500, 500])   # doctest: +SKIP
    >>> query_sample_size(200_000)
    500
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from embedsearch.index.layout import KEY_BITS
from embedsearch.progress import NullProgress, Progress
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.reader import iter_vector_batches

BLOCK_ROWS = 65_536
# Tuning and held-out query rows each: recall@10 over 500 queries is measured to about +-0.01.
QUERY_SAMPLE = 500


def query_sample_size(rows: int) -> int:
    """How many rows each query sample (tuning, held-out) gets: 500, or an eighth of few rows."""
    return min(QUERY_SAMPLE, max(1, rows // 8))


@dataclass
class Sample:
    """Rows drawn at random positions: ``vectors`` (n, dim), their embedding ids and dir numbers."""

    vectors: np.ndarray
    ids: np.ndarray
    dirs: np.ndarray

    def keys(self) -> np.ndarray:
        """faiss keys of the rows (see :mod:`embedsearch.index.layout`)."""
        return (self.dirs.astype(np.int64) << np.int64(KEY_BITS)) | self.ids


def iter_numbered_batches(
    dirs: Sequence[EmbeddingDir], numbers: Sequence[int], columns: Sequence[str] | None = None
) -> Iterator[tuple[int, pa.RecordBatch, np.ndarray]]:
    """``(dir number, record batch, vectors)`` over the live rows of ``dirs``, NaN/inf refused.

    ``numbers`` are the dirs' positions in the index's ``sources``; ``columns`` None = all.
    """
    for number, d in zip(numbers, dirs, strict=True):
        wanted = columns if columns is not None else d.column_names()
        for batch, vectors in iter_vector_batches(d, wanted, BLOCK_ROWS):
            yield number, batch, vectors


def draw_samples(
    dirs: Sequence[EmbeddingDir],
    sizes: Sequence[int],
    numbers: Sequence[int] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Sample]:
    """Random samples of the given sizes, drawn in one streaming pass over ``dirs``.

    The first sample (the training sample) is drawn independently; the others are
    disjoint from each other (tuning and held-out queries). Memory is bounded by the
    sample sizes, not by the corpus.
    """
    progress = progress or NullProgress()
    numbers = list(numbers) if numbers is not None else list(range(len(dirs)))
    total = sum(d.live_rows for d in dirs)
    rng = np.random.default_rng(seed)
    # Generator.choice without replacement costs O(sample), not O(corpus).
    first = np.sort(rng.choice(total, size=min(total, int(sizes[0])), replace=False))
    rest_sizes = [int(s) for s in sizes[1:]]
    rest = rng.choice(total, size=min(total, sum(rest_sizes)), replace=False)
    bounds = np.cumsum([0, *rest_sizes])
    wanted = [first] + [np.sort(rest[a:b]) for a, b in itertools.pairwise(bounds)]
    parts: list[list[Sample]] = [[] for _ in wanted]
    start = 0
    progress.start("sampling", total)
    for number, batch, vectors in iter_numbered_batches(dirs, numbers, ["id"]):
        stop = start + batch.num_rows
        ids = batch.column("id").to_numpy(zero_copy_only=False).astype(np.int64)
        for which, positions in enumerate(wanted):
            lo, hi = np.searchsorted(positions, [start, stop])
            rows = positions[lo:hi] - start
            if len(rows):
                dir_numbers = np.full(len(rows), number, np.int64)
                parts[which].append(Sample(vectors[rows].copy(), ids[rows], dir_numbers))
        start = stop
        progress.advance(batch.num_rows)
    progress.stop()
    return [_concat(p, dirs[0].dim) for p in parts]


def _concat(parts: list[Sample], dim: int) -> Sample:
    if not parts:
        return Sample(np.zeros((0, dim), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Sample(
        np.concatenate([p.vectors for p in parts]),
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.dirs for p in parts]),
    )
