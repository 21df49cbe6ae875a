"""The embedding dirs an index is built from: validation, and one sampling pass.

Several dirs can be indexed together only when they were embedded by the same model
(equal fingerprints) at the same dim. :func:`sample_rows` draws the training sample and
the query samples in one streaming pass that also refuses NaN/inf vectors.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from embedsearch.errors import FormatError, InputError, MismatchError
from embedsearch.progress import NullProgress, Progress
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.reader import embedding_matrix, iter_batches

BLOCK_ROWS = 65_536


@dataclass
class Sample:
    """Rows drawn at random positions: ``vectors`` (n, dim) and their embedding ids + dir numbers."""

    vectors: np.ndarray
    ids: np.ndarray
    dirs: np.ndarray


def open_sources(paths: Sequence[str | Path]) -> list[EmbeddingDir]:
    """Open embedding dirs (duplicates dropped); refuse mixed models or dims and empty input.

    Example:
        >>> dirs = open_sources(["emb/a", "emb/b"])    # doctest: +SKIP
    """
    if not paths:
        raise InputError("no embedding dir given")
    dirs: list[EmbeddingDir] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if path in seen:
            continue
        seen.add(path)
        if not EmbeddingDir.is_embedding_dir(path):
            raise FormatError(
                f"{raw} is not an embedding dir (no manifest.json); make one with `embedsearch embed`"
            )
        dirs.append(EmbeddingDir.open(path))
    check_compatible(dirs[0].fingerprint, dirs[0].model, dirs[0].dim, dirs[1:])
    if sum(d.live_rows for d in dirs) == 0:
        raise InputError(f"no embeddings to index: {', '.join(str(p) for p in paths)} hold 0 rows")
    return dirs


def check_compatible(fingerprint: str, model: str, dim: int, dirs: Sequence[EmbeddingDir]) -> None:
    """Refuse any dir made by another model (fingerprint) or with another dim."""
    for d in dirs:
        if d.fingerprint != fingerprint:
            raise MismatchError(
                f"{d.path} was embedded by {d.model} (fingerprint {d.fingerprint[:12]}), not by "
                f"{model} ({fingerprint[:12]}): vectors of different models cannot share an index"
            )
        if d.dim != dim:
            raise MismatchError(f"{d.path} holds vectors of dim {d.dim}, the others dim {dim}")


def iter_rows(
    dirs: Sequence[EmbeddingDir],
    columns: Sequence[str] | None = None,
    numbers: Sequence[int] | None = None,
    batch_rows: int = BLOCK_ROWS,
) -> Iterator[tuple[int, pa.RecordBatch, np.ndarray]]:
    """``(dir number, record batch, vectors)`` blocks over all live rows; refuses NaN/inf.

    ``numbers`` are the dirs' positions in the index's ``sources`` (default 0, 1, ...).
    """
    numbers = list(numbers) if numbers is not None else list(range(len(dirs)))
    for number, d in zip(numbers, dirs, strict=False):
        for batch in iter_batches(d, columns, batch_rows):
            vectors = embedding_matrix(batch.column("embedding"), d.dim)
            finite = np.isfinite(vectors).all(axis=1)
            if not finite.all():
                bad = batch.column("id").to_numpy(zero_copy_only=False)[~finite]
                raise InputError(
                    f"{d.path} has NaN/inf embeddings (ids {bad[:5].tolist()}): re-embed those inputs"
                )
            yield number, batch, vectors


def sample_rows(
    dirs: Sequence[EmbeddingDir],
    sizes: Sequence[int],
    numbers: Sequence[int] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Sample]:
    """Random samples of the given sizes, drawn in one streaming pass over ``dirs``.

    The first sample (the training sample) is drawn independently; the others are
    disjoint from each other (tuning and held-out queries). Memory is bounded by the
    sample sizes, not by the corpus. Example:
        >>> train, tune, held_out = sample_rows(dirs, [40_000, 500, 500])   # doctest: +SKIP
    """
    progress = progress or NullProgress()
    total = sum(d.live_rows for d in dirs)
    rng = np.random.default_rng(seed)
    # Generator.choice without replacement costs O(sample), not O(corpus).
    first = np.sort(rng.choice(total, size=min(total, int(sizes[0])), replace=False))
    rest_sizes = [int(s) for s in sizes[1:]]
    rest = rng.choice(total, size=min(total, sum(rest_sizes)), replace=False)
    bounds = np.cumsum([0] + rest_sizes)
    wanted = [first] + [np.sort(rest[a:b]) for a, b in itertools.pairwise(bounds)]
    parts: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in wanted]
    start = 0
    progress.start("sampling", total)
    for number, batch, vectors in iter_rows(dirs, ["id", "embedding"], numbers):
        stop = start + batch.num_rows
        ids = batch.column("id").to_numpy(zero_copy_only=False).astype(np.int64)
        for which, positions in enumerate(wanted):
            lo, hi = np.searchsorted(positions, [start, stop])
            rows = positions[lo:hi] - start
            if len(rows):
                parts[which].append(
                    (vectors[rows].copy(), ids[rows], np.full(len(rows), number, np.int64))
                )
        start = stop
        progress.advance(batch.num_rows)
    progress.stop()
    return [_concat(p, dirs[0].dim) for p in parts]


def _concat(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], dim: int) -> Sample:
    if not parts:
        return Sample(np.zeros((0, dim), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Sample(*(np.concatenate([p[i] for p in parts]) for i in range(3)))
