"""Pairs at or above a threshold with FAISS: exact search for small sets, IVF for large ones.

Never an N x N matrix: vectors are added block by block to a flat index (N up to
``EXACT_LIMIT``) or an ``IVF{nlist},Flat`` index trained on a sample, then queried
block by block with kNN. Flat codes store the raw float vectors, so every score
faiss returns is the exact inner product (cosine for L2-normalised vectors): the
candidates come from an approximate index, their scores never do. A row whose
k-th neighbour still passes the threshold is asked again with a range search, so
large duplicate groups are found whole instead of being cut at k.

:mod:`~embedsearch.dedup.knn` uses this search for ``--against`` and for sets of at most
``EXACT_LIMIT`` rows; a larger set searched against itself is joined cell by cell instead
(:mod:`~embedsearch.dedup.cell_join`, same pairs at the same ``nprobe``, cheaper).

Memory: the index holds the vectors once (4 * dim bytes a row) plus ids, its inverted
lists sized once (:func:`add_presized`); query blocks and results are bounded by
``block_rows * k``. Measurements: ``benchmarks/RESULTS.md`` (issue 6, Scale).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedsearch.dedup.local_scaling import LocalScaling
from embedsearch.dedup.options import DEFAULT_K, DEFAULT_NPROBE
from embedsearch.progress import NullProgress, Progress

EXACT_LIMIT = 20_000


@dataclass
class Neighbours:
    """Pairs above the threshold (row numbers, ``a`` the query side) and each query's best score."""

    rows_a: np.ndarray
    rows_b: np.ndarray
    scores: np.ndarray
    best: np.ndarray  # per query row: best score to another row (-inf when none)


def nlist_for_pair_search(n: int) -> int:
    """About 4 * sqrt(n) lists: ~2/1000 of the rows scanned per query at 1M rows and nprobe 8,
    and a k-means that trains in seconds on 30 points per list (index/factory's rule sizes
    lists for recall-tuned queries instead).

    Example:
        >>> nlist_for_pair_search(1_000_000)
        4000
    """
    return int(max(16, min(65_536, 4 * np.sqrt(n))))


def build_search_index(
    dim: int,
    n: int,
    blocks: Callable[[], Iterator[tuple[int, np.ndarray]]],
    sample: Callable[[int], np.ndarray],
    nprobe: int = DEFAULT_NPROBE,
    progress: Progress | None = None,
) -> Any:
    """A faiss inner-product index over all rows, ids = row numbers (flat or IVF by size)."""
    import faiss

    progress = progress or NullProgress()
    if n <= EXACT_LIMIT:
        flat = faiss.IndexFlatIP(dim)
        progress.start("indexing vectors", n)
        for _, vectors in blocks():
            flat.add(vectors)
            progress.advance(len(vectors))
        return flat  # the caller's next start() ends this task (rich redraws stopped bars)
    nlist = nlist_for_pair_search(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 1234  # reproducible k-means
    index.cp.niter = 10  # coarse cells only need to be good enough to route near copies together
    index.cp.min_points_per_centroid = 25
    index.train(sample(min(n, 30 * nlist)))
    index.nprobe = min(nprobe, nlist)
    index.parallel_mode = 0
    add_presized(index, blocks, n, progress)
    return index


def add_presized(
    index: Any,
    blocks: Callable[[], Iterator[tuple[int, np.ndarray]]],
    n: int,
    progress: Progress | None = None,
) -> None:
    """Add ``n`` streamed rows to a trained, empty ``IndexIVF`` with every inverted list sized once.

    ``index.add`` grows each list block by block, and capacity doubling plus freed old buffers
    cost ~40 % on top of the vectors (``benchmarks/RESULTS.md``, issue 6). Here a first pass
    assigns every row to its cell (8 bytes a row), each list is allocated at its final size and
    shrunk back to length 0 (``std::vector`` keeps its capacity), and a second pass adds the rows
    with that assignment, never reallocating. Ids stay ``ntotal + i``, as with ``add``.
    """
    import faiss

    progress = progress or NullProgress()
    assignment = np.empty(n, dtype=np.int64)
    progress.start("assigning vectors to cells", n)
    seen = 0
    for _, vectors in blocks():
        if seen + len(vectors) > n:
            raise ValueError(f"the inputs hold more than the {n} rows counted in the catalog")
        assignment[seen : seen + len(vectors)] = index.quantizer.assign(vectors, 1).ravel()
        seen += len(vectors)
        progress.advance(len(vectors))
    if seen != n:
        raise ValueError(f"the inputs hold {seen} rows, the catalog {n}")
    invlists = faiss.downcast_InvertedLists(index.invlists)
    sizes = np.bincount(assignment, minlength=index.nlist)
    for list_no in np.flatnonzero(sizes).tolist():
        invlists.resize(list_no, int(sizes[list_no]))  # allocates exactly, from empty
        invlists.resize(list_no, 0)
    progress.start("indexing vectors", n)
    first = 0
    for _, vectors in blocks():
        cells = np.ascontiguousarray(assignment[first : first + len(vectors)])
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index.add_core(len(vectors), faiss.swig_ptr(vectors), None, faiss.swig_ptr(cells))
        first += len(vectors)
        progress.advance(len(vectors))


def search_pairs(
    index: Any,
    queries: Iterator[tuple[int, np.ndarray]],
    threshold: float,
    k: int = DEFAULT_K,
    same_set: bool = True,
    total: int | None = None,
    progress: Progress | None = None,
    levels: np.ndarray | None = None,
    index_offset: int = 0,
) -> Neighbours:
    """All pairs with score >= ``threshold`` between query rows and indexed rows.

    ``same_set``: the queries are the indexed rows themselves (``first row`` of each block
    gives their row numbers); self matches are dropped and each pair is written ``a < b`` (a pair
    found from both of its rows is listed twice: :func:`~embedsearch.dedup.knn.merge_pairs`
    keeps one).
    ``levels``: every row's neighbourhood level (query rows first, indexed row ``i`` at
    ``index_offset + i``); scores are then locally scaled (:mod:`.local_scaling`). A row is asked
    again by range search when anything beyond its k-th neighbour could still pass: its k-th
    cosine is at least the threshold plus its own level and the lowest indexed level, halved.
    """
    progress = progress or NullProgress()
    progress.start("searching neighbours", total)
    parts_a, parts_b, parts_s, best_parts = [], [], [], []
    k_eff = min(index.ntotal, k + (1 if same_set else 0))
    lowest = (
        float(levels[index_offset : index_offset + index.ntotal].min())
        if levels is not None and index.ntotal
        else 0.0
    )
    for first, vectors in queries:
        rows = np.arange(first, first + len(vectors), dtype=np.int64)
        cosines, found = index.search(vectors, k_eff)
        if same_set:
            cosines = np.where(found == rows[:, None], -np.inf, cosines)
        found_ok = found >= 0
        own = levels[rows] if levels is not None else np.zeros(len(rows), np.float32)
        scores = cosines
        if levels is not None:
            theirs = levels[np.where(found_ok, found, 0) + index_offset]
            scores = LocalScaling.adjust(cosines, own[:, None], theirs)
        best_parts.append(
            np.where(found_ok, scores, -np.inf).max(axis=1)
            if k_eff
            else np.full(len(rows), -np.inf)
        )
        hit = (scores >= threshold) & found_ok
        if k_eff:
            saturated = found_ok[:, -1] & (cosines[:, -1] >= threshold + (own + lowest) / 2)
        else:
            saturated = np.zeros(len(rows), bool)
        kept = hit & ~saturated[:, None]  # saturated rows are asked again by range search
        a = np.broadcast_to(rows[:, None], found.shape)[kept]
        b = found[kept]
        s = scores[kept]
        if saturated.any():
            ra, rb, rs = _range_pairs(
                index,
                vectors[saturated],
                rows[saturated],
                threshold,
                same_set,
                levels,
                index_offset,
                lowest,
            )
            a, b, s = np.concatenate([a, ra]), np.concatenate([b, rb]), np.concatenate([s, rs])
        parts_a.append(a)
        parts_b.append(b)
        parts_s.append(s.astype(np.float32))
        progress.advance(len(vectors))
    progress.stop()
    rows_a, rows_b, scores = (
        np.concatenate(p) if p else np.empty(0) for p in (parts_a, parts_b, parts_s)
    )
    best = np.concatenate(best_parts) if best_parts else np.empty(0, np.float32)
    if same_set:
        rows_a, rows_b = np.minimum(rows_a, rows_b), np.maximum(rows_a, rows_b)
    return Neighbours(
        rows_a.astype(np.int64), rows_b.astype(np.int64), scores.astype(np.float32), best
    )


def _range_pairs(
    index: Any,
    vectors: np.ndarray,
    rows: np.ndarray,
    threshold: float,
    same_set: bool = True,
    levels: np.ndarray | None = None,
    index_offset: int = 0,
    lowest: float = 0.0,
) -> tuple[np.ndarray, ...]:
    """Every indexed row within ``threshold`` of each query (range search keeps scores > radius),
    a row never paired with itself when ``same_set`` (across two sets, equal numbers are other
    rows); with ``levels``, the radius is the lowest cosine that could pass, and each pair is
    then checked on its locally scaled score."""
    radius = threshold
    if levels is not None:
        radius = threshold + (float(levels[rows].min()) + lowest) / 2
    radius = np.nextafter(np.float32(radius), np.float32(-np.inf))
    limits, scores, found = index.range_search(vectors, float(radius))
    counts = np.diff(limits).astype(np.int64)
    a = np.repeat(rows, counts)
    if levels is not None:
        scores = LocalScaling.adjust(scores, levels[a], levels[found + index_offset])
    keep = scores >= threshold
    if same_set:
        keep &= found != a
    return a[keep], found[keep].astype(np.int64), scores[keep]
