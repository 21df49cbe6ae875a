"""SemDeDup (Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale through
semantic deduplication"): k-means, then pruning inside each cluster.

1. faiss k-means into ``clusters`` centroids (an ``IVF{K},Flat`` index whose inverted
   lists *are* the clusters, so vectors are held once and read back list by list).
2. In each cluster, members are ordered by cosine to their centroid, *lowest first*
   (the paper's default keeps the item farthest from the centroid), and an item is
   removed when its similarity to any earlier item is >= ``1 - eps``.

How it differs from the default ``knn`` method:

- pairs are only looked for inside a cluster, so duplicates split by a cluster border
  are missed (cheaper: sum of squared cluster sizes instead of N * k searches);
- an item is removed when it matches *any* earlier item, removed or not, so the rule
  can chain (A~B, B~C removes B and C although A and C may differ); groups here follow
  each removed item to the kept item its chain starts from;
- the survivor is always the member farthest from the centroid (``--keep`` is refused).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedsearch.dedup.calibration import Calibration
from embedsearch.dedup.exact import exact_pairs
from embedsearch.dedup.grouping import Duplicates, chain_groups
from embedsearch.dedup.inputs import DedupInputs
from embedsearch.dedup.options import DedupOptions
from embedsearch.dedup.pair_search import add_presized
from embedsearch.progress import Progress

BLOCK = 2_048


def default_clusters(n: int) -> int:
    """About sqrt(n) clusters, at least 50 points each (k-means needs them to train).

    Example:
        >>> default_clusters(1_000_000), default_clusters(100)
        (1000, 2)
    """
    return int(max(1, min(n // 50, round(np.sqrt(n)))))


def cluster_members(index: Any, cluster: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers and vectors of one inverted list of an ``IndexIVFFlat``."""
    import faiss

    invlists = index.invlists
    size = invlists.list_size(cluster)
    if size == 0:
        return np.empty(0, np.int64), np.empty((0, dim), np.float32)
    ids = faiss.rev_swig_ptr(invlists.get_ids(cluster), size).copy()
    codes = faiss.rev_swig_ptr(invlists.get_codes(cluster), size * invlists.code_size).copy()
    return ids.astype(np.int64), codes.view(np.float32).reshape(size, dim)


def prune_cluster(
    vectors: np.ndarray, centroid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SemDeDup on one cluster -> (order, match, score, best) in the cluster's own positions.

    ``match[i]`` is the earlier member (in keep order) most similar to member ``order[i]``,
    ``score[i]`` that similarity (-inf for the first), ``best[i]`` its best score to any other
    member; members scoring at or above the threshold are the ones to remove.
    Memory is ``BLOCK x size``, never size x size.
    """
    order = np.argsort(vectors @ centroid, kind="stable")  # farthest from the centroid first
    ordered = vectors[order]
    size = len(order)
    match = np.full(size, -1, dtype=np.int64)
    score = np.full(size, -np.inf, dtype=np.float32)
    best = np.full(size, -np.inf, dtype=np.float32)
    for start in range(0, size, BLOCK):
        stop = min(size, start + BLOCK)
        sims = ordered[start:stop] @ ordered.T
        positions = np.arange(start, stop)
        sims[np.arange(stop - start), positions] = -np.inf
        best[start:stop] = sims.max(axis=1)
        earlier = np.where(np.arange(size)[None, :] < positions[:, None], sims, -np.inf)
        match[start:stop] = earlier.argmax(axis=1)
        score[start:stop] = earlier.max(axis=1)
    match = np.where(np.isfinite(score), order[np.clip(match, 0, None)], -1)
    return order, match, score, best


def semdedup_duplicates(
    inputs: DedupInputs, options: DedupOptions, calibration: Calibration, progress: Progress
) -> Duplicates:
    """Pairs, groups and survivors by SemDeDup (see :mod:`embedsearch.dedup.find`)."""
    import faiss

    catalog, n, dim = inputs.catalog, len(inputs.catalog), inputs.catalog.dim
    threshold, block_rows = calibration.threshold, options.block_rows
    k = min(options.clusters or default_clusters(n), n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, k, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 1234
    index.cp.min_points_per_centroid = 1  # small sets: few points per cluster, without warning
    index.train(inputs.sample("all", min(n, 64 * k), block_rows))
    add_presized(index, lambda: inputs.blocks("all", block_rows), n, progress)
    centroids = index.quantizer.reconstruct_n(0, k)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    progress.start("pruning clusters", k)
    removed_rows, matched_rows, scores = [], [], []
    best = np.full(n, -np.inf, dtype=np.float32)
    for cluster in range(k):
        rows, vectors = cluster_members(index, cluster, dim)
        if len(rows):
            order, match, score, cluster_best = prune_cluster(vectors, centroids[cluster])
            best[rows[order]] = cluster_best
            gone = score >= threshold
            removed_rows.append(rows[order][gone])
            matched_rows.append(rows[match[gone]])
            scores.append(score[gone])
        progress.advance(1)
    progress.stop()
    # Exact duplicates (equal content hash) are always removed, even where vectors differ.
    first, copy = exact_pairs(catalog.hashes)
    removed = np.concatenate([*removed_rows, copy]).astype(np.int64)
    matched = np.concatenate([*matched_rows, first]).astype(np.int64)
    score = np.concatenate([*scores, np.ones(len(copy), np.float32)]).astype(np.float32)
    removed, unique = np.unique(removed, return_index=True)
    matched, score = matched[unique], score[unique]
    a, b = np.minimum(removed, matched), np.maximum(removed, matched)
    exact = catalog.hashes[a] == catalog.hashes[b]
    groups = chain_groups(removed, matched)
    return Duplicates(a, b, score, exact, groups, best, f"semdedup k-means {k} clusters")
