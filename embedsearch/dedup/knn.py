"""The default method: every pair at or above the threshold by FAISS kNN (then range) search,
exact pairs by content hash, and star groups that do not chain.

With ``--against`` the index holds the other set only and the main set queries it, so only
pairs across the two are found; each leaking main row is removed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedsearch.dedup.calibration import Calibration
from embedsearch.dedup.exact import exact_pairs
from embedsearch.dedup.grouping import (
    Duplicates,
    Groups,
    choose_survivors,
    leak_groups,
    star_groups,
)
from embedsearch.dedup.inputs import DedupInputs, Rows
from embedsearch.dedup.local_scaling import LocalScaling
from embedsearch.dedup.options import DedupOptions
from embedsearch.dedup.pair_search import build_search_index, search_pairs
from embedsearch.dedup.phash import phash_files, phash_pairs
from embedsearch.errors import InputError
from embedsearch.progress import Progress


def knn_duplicates(
    inputs: DedupInputs, options: DedupOptions, calibration: Calibration, progress: Progress
) -> Duplicates:
    """Pairs, groups and survivors by the ``knn`` method (see :mod:`embedsearch.dedup.find`)."""
    against, block_rows, whitening = inputs.against, options.block_rows, calibration.whitening
    indexed: Rows = "other" if against else "all"
    index = build_search_index(
        whitening.dims if whitening is not None else inputs.catalog.dim,
        inputs.count(indexed),
        lambda: inputs.blocks(indexed, block_rows, whitening),
        lambda m: inputs.sample(indexed, m, block_rows, whitening),
        nprobe=options.nprobe,
        progress=progress,
    )
    offset = inputs.main_rows if against else 0
    levels = row_levels(inputs, calibration, block_rows, progress)
    near = search_pairs(
        index,
        inputs.blocks("main" if against else "all", block_rows, whitening),
        calibration.threshold,
        options.k,
        same_set=not against,
        total=inputs.main_rows,
        progress=progress,
        levels=levels,
        index_offset=offset,
    )
    main = np.arange(len(inputs.catalog)) < inputs.main_rows if against else None
    ea, eb = exact_pairs(inputs.catalog.hashes, main)
    a, b, score, exact = merge_pairs(ea, eb, near.rows_a, near.rows_b + offset, near.scores)
    phash_only = 0
    if options.phash is not None:
        before = len(a)
        a, b, score, exact = _with_phash_pairs(
            a, b, score, exact, inputs, options.phash, index, levels
        )
        phash_only = len(a) - before
    if against:
        groups = leak_groups(a, b)
    else:
        groups = _stars_with_survivors(a, b, options, inputs, index)
    search = (
        f"IVF{index.nlist},Flat nprobe={index.nprobe}"
        if hasattr(index, "nlist")
        else "exact (flat)"
    )
    return Duplicates(a, b, score, exact, groups, near.best, search, phash_only)


def _with_phash_pairs(
    a: np.ndarray,
    b: np.ndarray,
    score: np.ndarray,
    exact: np.ndarray,
    inputs: DedupInputs,
    max_distance: int,
    index: Any,
    levels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Add the pairs whose perceptual hashes differ in <= ``max_distance`` bits; a pair the
    vectors missed keeps its own cosine as score (below the threshold), so pairs.parquet stays
    true to the vectors."""
    if inputs.catalog.dirs[0].modality != "image":
        raise InputError("--phash compares image files: this embedding dir holds texts")
    hashes, readable = phash_files(inputs.catalog.sources.to_pylist())
    pa_, pb, _ = phash_pairs(hashes, max_distance, readable)
    if len(pa_) == 0:
        return a, b, score, exact
    if hasattr(index, "make_direct_map"):
        index.make_direct_map()
    va = index.reconstruct_batch(pa_.astype(np.int64))
    vb = index.reconstruct_batch(pb.astype(np.int64))
    cosines = (va * vb).sum(axis=1)
    if levels is not None:  # the same score as the search's: locally scaled
        cosines = LocalScaling.adjust(cosines, levels[pa_], levels[pb])
    near_a, near_b = np.concatenate([a[~exact], pa_]), np.concatenate([b[~exact], pb])
    near_scores = np.concatenate([score[~exact], cosines])
    return merge_pairs(a[exact], b[exact], near_a, near_b, near_scores)


def row_levels(
    inputs: DedupInputs, calibration: Calibration, block_rows: int, progress: Progress
) -> np.ndarray | None:
    """Every row's neighbourhood level (:mod:`.local_scaling`) in the calibrated space, in
    catalog order; None when scores are not locally scaled."""
    scaling, whitening = calibration.scaling, calibration.whitening
    if scaling is None:
        return None
    levels = np.empty(len(inputs.catalog), np.float32)
    progress.start("measuring neighbourhood levels", len(inputs.catalog))
    for first, vectors in inputs.blocks("all", block_rows, whitening):
        levels[first : first + len(vectors)] = scaling.levels(vectors)
        progress.advance(len(vectors))
    return levels


def _stars_with_survivors(
    a: np.ndarray, b: np.ndarray, options: DedupOptions, inputs: DedupInputs, index: Any
) -> Groups:
    """Star groups with their survivors by ``options.keep`` (vectors read back from ``index``,
    whose ids are the row numbers here)."""

    def vectors(rows: np.ndarray) -> np.ndarray:
        if hasattr(index, "make_direct_map"):
            index.make_direct_map()
        return index.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    rows, group = star_groups(a, b)
    keep = choose_survivors(rows, group, options.keep, inputs.catalog.sizes_of, vectors)
    return Groups(rows, group, keep)


def merge_pairs(
    ea: np.ndarray, eb: np.ndarray, na: np.ndarray, nb: np.ndarray, ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Union of exact pairs (score 1, ``exact``) and near pairs, each pair once (a near pair
    listed twice keeps its first score); a pair found both ways is exact.

    Example:
        >>> a, b, s, e = merge_pairs(np.array([0]), np.array([2]), np.array([0, 1]),
        ...                          np.array([2, 3]), np.array([0.99, 0.95]))
        >>> a.tolist(), b.tolist(), e.tolist()
        ([0, 1], [2, 3], [True, False])
    """
    a = np.concatenate([ea, na]).astype(np.int64)
    b = np.concatenate([eb, nb]).astype(np.int64)
    score = np.concatenate([np.ones(len(ea), np.float32), ns.astype(np.float32)])
    exact = np.concatenate([np.ones(len(ea), bool), np.zeros(len(na), bool)])
    order = np.lexsort((~exact, b, a))
    a, b, score, exact = a[order], b[order], score[order], exact[order]
    first = np.ones(len(a), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first], b[first], score[first], exact[first]
