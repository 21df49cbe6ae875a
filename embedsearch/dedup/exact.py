"""Exact duplicates: rows whose ``content_hash`` (hash of the raw bytes or text) is equal.

Hashes are compared as 64-bit digests in one sort, O(N log N) time and 8 bytes a row.
Each run of equal hashes becomes star pairs from its first row (not all g*(g-1)/2
pairs, so a file copied 10,000 times does not make 50 million rows); grouping then
puts the whole run into one group, since its first row reaches all the others.
"""

from __future__ import annotations

import numpy as np


def exact_pairs(
    hashes: np.ndarray, query_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows_a, rows_b)`` of equal hashes; ``a`` is the first row of its run.

    ``query_mask``: with ``--against``, True for rows of the main set; then only pairs
    main row (``a``) x other row (``b``) are returned.

    Example:
        >>> a, b = exact_pairs(np.array([7, 3, 7, 7], dtype=np.uint64))
        >>> a.tolist(), b.tolist()
        ([0, 0], [2, 3])
    """
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    starts = np.flatnonzero(np.r_[True, sorted_hashes[1:] != sorted_hashes[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    multi = sizes > 1
    if query_mask is None:
        run_of = np.repeat(np.arange(len(starts)), sizes)
        first_row = order[starts][run_of]
        keep = multi[run_of] & (order != first_row)
        return first_row[keep].astype(np.int64), order[keep].astype(np.int64)
    rows_a, rows_b = [], []
    for start, size in zip(starts[multi], sizes[multi], strict=False):
        run = order[start : start + size]
        mains, others = run[query_mask[run]], run[~query_mask[run]]
        if len(mains) and len(others):
            rows_a.append(np.repeat(mains, len(others)))
            rows_b.append(np.tile(others, len(mains)))
    if not rows_a:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(rows_a).astype(np.int64), np.concatenate(rows_b).astype(np.int64)
