"""The default method: every pair at or above the threshold, exact pairs by content hash, and
star groups that do not chain.

Near pairs come from one of two searches with the same meaning (every pair at or above the
threshold among rows that share one of a row's ``nprobe`` nearest cells, exact scores): a set
larger than ``pair_search.EXACT_LIMIT`` is joined with itself cell by cell
(:mod:`~embedsearch.dedup.cell_join`), in one matrix of its vectors; smaller sets, and
``--against``, query a FAISS index (:mod:`~embedsearch.dedup.pair_search`).

With ``--against`` the index holds the other set only and the main set queries it, so only
pairs across the two are found; each leaking main row is removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embedsearch.dedup import pair_search
from embedsearch.dedup.calibration import Calibration
from embedsearch.dedup.cell_join import join_cells
from embedsearch.dedup.cells import load_matrix, nlist_for_cell_join, probe_cells, train_cells
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
from embedsearch.dedup.pair_search import Neighbours, build_search_index, search_pairs
from embedsearch.dedup.phash import phash_files, phash_pairs
from embedsearch.errors import InputError
from embedsearch.progress import Progress

Vectors = Callable[[np.ndarray], np.ndarray]  # row numbers -> their vectors, as searched


def knn_duplicates(
    inputs: DedupInputs,
    options: DedupOptions,
    calibration: Calibration,
    progress: Progress,
    cell_join_above: int | None = None,
) -> Duplicates:
    """Pairs, groups and survivors by the ``knn`` method (see :mod:`embedsearch.dedup.find`).

    ``cell_join_above``: a set of more rows than this (default ``pair_search.EXACT_LIMIT``) is
    searched against itself cell by cell (:mod:`~embedsearch.dedup.cell_join`) rather than
    through a faiss index; ``--against`` always queries an index of the other set.
    """
    limit = pair_search.EXACT_LIMIT if cell_join_above is None else cell_join_above
    if not inputs.against and len(inputs.catalog) > limit:
        searched = _cell_join_search(inputs, options, calibration, progress)
    else:
        searched = _index_search(inputs, options, calibration, progress)
    near, vectors, against = searched.near, searched.vectors, inputs.against
    offset = inputs.main_rows if against else 0
    main = np.arange(len(inputs.catalog)) < inputs.main_rows if against else None
    ea, eb = exact_pairs(inputs.catalog.hashes, main)
    a, b, score, exact = merge_pairs(ea, eb, near.rows_a, near.rows_b + offset, near.scores)
    phash_only = 0
    if options.phash is not None:
        before = len(a)
        a, b, score, exact = _with_phash_pairs(
            a, b, score, exact, inputs, options.phash, vectors, searched.levels
        )
        phash_only = len(a) - before
    if against:
        groups = leak_groups(a, b)
    else:
        groups = _stars_with_survivors(a, b, options, inputs, vectors)
    return Duplicates(a, b, score, exact, groups, near.best, searched.description, phash_only)


@dataclass
class _Searched:
    """Pairs from one search, how to read back the vectors of any rows, and the search in words."""

    near: Neighbours
    vectors: Vectors
    description: str
    levels: np.ndarray | None = None  # every row's neighbourhood level when scores are scaled


def _cell_join_search(
    inputs: DedupInputs, options: DedupOptions, calibration: Calibration, progress: Progress
) -> _Searched:
    """The set against itself, cell by cell, from one matrix of its vectors."""
    whitening, n = calibration.whitening, len(inputs.catalog)
    dim = whitening.dims if whitening is not None else inputs.catalog.dim
    x = load_matrix(inputs.blocks("all", options.block_rows, whitening), n, dim, progress)
    nlist = nlist_for_cell_join(n, options.nprobe)
    quantizer = train_cells(x, nlist, progress=progress)
    probes = probe_cells(x, quantizer, options.nprobe, progress)
    scaling = calibration.scaling
    levels = None
    if scaling is not None:
        progress.start("measuring neighbourhood levels", None)
        levels = scaling.levels(x)
    near = join_cells(x, probes, nlist, calibration.threshold, progress, levels)
    described = f"IVF{nlist},Flat nprobe={probes.shape[1]}, joined cell by cell"
    return _Searched(near, lambda rows: x[np.asarray(rows, dtype=np.int64)], described, levels)


def _index_search(
    inputs: DedupInputs, options: DedupOptions, calibration: Calibration, progress: Progress
) -> _Searched:
    """Query rows against a faiss index (flat or IVF): ``--against`` and small sets."""
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
        index_offset=inputs.main_rows if against else 0,
    )

    def vectors(rows: np.ndarray) -> np.ndarray:
        # The index ids are the row numbers of the indexed set (all rows without --against).
        if hasattr(index, "make_direct_map"):
            index.make_direct_map()
        return index.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    described = (
        f"IVF{index.nlist},Flat nprobe={index.nprobe}"
        if hasattr(index, "nlist")
        else "exact (flat)"
    )
    return _Searched(near, vectors, described, levels)


def _with_phash_pairs(
    a: np.ndarray,
    b: np.ndarray,
    score: np.ndarray,
    exact: np.ndarray,
    inputs: DedupInputs,
    max_distance: int,
    vectors: Vectors,
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
    va, vb = vectors(pa_), vectors(pb)
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
    a: np.ndarray, b: np.ndarray, options: DedupOptions, inputs: DedupInputs, vectors: Vectors
) -> Groups:
    """Star groups with their survivors by ``options.keep`` (``vectors`` of row numbers)."""
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
