"""Pairs at or above a threshold, cell by cell: the IVF search of a set against itself, as
matrix products.

With every row's ``nprobe`` nearest cells known (:mod:`~embedsearch.dedup.cells`), the pairs an
IVF search with that ``nprobe`` finds are the pairs (query, member) where the member's own cell
is one the query probes. Grouped by cell, that is one product per cell:
``X[rows probing p] @ X[members of p].T``. Compared with querying an IVF index row by row,
consecutive products reuse one cell's members from cache and run as BLAS matrix products,
and the quantizer is evaluated once per row instead of twice (add, then search). Every pair at
or above the threshold in the probed cells is kept, so no top-k cap or range search is needed;
scores are the exact inner products of the vectors (cosines for unit vectors).

Example:
    >>> x = np.eye(4, dtype=np.float32)[[0, 0, 1, 2, 3]]  # rows 0 and 1 are the same vector
    >>> probes = np.array([[0, 1], [0, 1], [1, 0], [1, 0], [1, 0]], dtype=np.int32)
    >>> near = join_cells(x, probes, 2, threshold=0.9)
    >>> near.rows_a.tolist(), near.rows_b.tolist(), near.best.tolist()
    ([0], [1], [1.0, 1.0, 0.0, 0.0, 0.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedsearch.dedup.local_scaling import LocalScaling
from embedsearch.dedup.pair_search import Neighbours
from embedsearch.progress import NullProgress, Progress

# One product holds about this many float32 scores (16 MiB): narrow products (few members) get
# more prober rows, since BLAS runs a (rows x d) @ (d x few) product far below its peak rate.
SCORES_PER_PRODUCT = 1 << 22
MIN_PROBER_BLOCK = 1_024
MEMBER_BLOCK = 8_192


@dataclass(frozen=True)
class CellRows:
    """The rows that probe each cell, grouped by cell: ``rows[starts[p]:starts[p + 1]]`` probe
    cell ``p``, and the first ``members[p]`` of them are its members (``p`` is their own cell),
    in row order."""

    starts: np.ndarray  # int64, nlist + 1
    members: np.ndarray  # int64, nlist
    rows: np.ndarray  # int32, n * nprobe


def invert_probes(probes: np.ndarray, nlist: int) -> CellRows:
    """Group the rows of ``probes`` (``(n, nprobe)``, own cell first) by the cells they probe.

    One stable sort of ``cell * nprobe + rank`` puts each cell's members (rank 0) before the rows
    that only probe it; no Python object per row.

    Example:
        >>> cells = invert_probes(np.array([[1, 0], [0, 1], [1, 0]], dtype=np.int32), 2)
        >>> cells.starts.tolist(), cells.members.tolist(), cells.rows.tolist()
        ([0, 3, 6], [1, 2], [1, 0, 2, 0, 2, 1])
    """
    n, nprobe = probes.shape
    if n >= 2**31:
        raise ValueError(f"{n} rows: the cell join numbers rows with int32")
    key_type = np.int32 if nlist * nprobe < 2**31 else np.int64
    keys = probes.astype(key_type) * nprobe + np.arange(nprobe, dtype=key_type)
    order = np.argsort(keys, axis=None, kind="stable")
    del keys
    np.floor_divide(order, nprobe, out=order)  # in place: 8 bytes a probe less at the peak
    rows = order.astype(np.int32)
    del order
    starts = np.zeros(nlist + 1, dtype=np.int64)
    np.cumsum(np.bincount(probes.ravel(), minlength=nlist), out=starts[1:])
    members = np.bincount(probes[:, 0], minlength=nlist).astype(np.int64)
    return CellRows(starts, members, rows)


def join_cells(
    x: np.ndarray,
    probes: np.ndarray,
    nlist: int,
    threshold: float,
    progress: Progress | None = None,
    levels: np.ndarray | None = None,
) -> Neighbours:
    """Every pair of rows of ``x`` scoring >= ``threshold`` where one row probes the other's
    cell (``probes`` as :func:`~embedsearch.dedup.cells.probe_cells` returns), each once with
    ``rows_a < rows_b``, and each row's best score to another row in the cells it probes.
    ``levels``: every row's neighbourhood level; scores are then locally scaled
    (:mod:`~embedsearch.dedup.local_scaling`)."""
    progress = progress or NullProgress()
    cells = invert_probes(probes, nlist)
    best = np.full(len(x), -np.inf, dtype=np.float32)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    progress.start("joining cells", nlist)
    for cell in range(nlist):
        lo, hi, m = cells.starts[cell], cells.starts[cell + 1], cells.members[cell]
        if m:
            pairs = _join_one_cell(x, cells.rows[lo:hi], int(m), threshold, best, levels)
            found.extend(pairs)
        progress.advance(1)
    progress.stop()
    if not found:
        empty = np.empty(0, dtype=np.int64)
        return Neighbours(empty, empty.copy(), np.empty(0, np.float32), best)
    a, b, s = (np.concatenate(part) for part in zip(*found, strict=True))
    once = _found_here_only(a, b, probes)
    a, b, s = a[once], b[once], s[once]
    order = np.lexsort((np.maximum(a, b), np.minimum(a, b)))
    lo_, hi_ = np.minimum(a, b)[order], np.maximum(a, b)[order]
    return Neighbours(lo_.astype(np.int64), hi_.astype(np.int64), s[order], best)


def _join_one_cell(
    x: np.ndarray,
    probers: np.ndarray,
    m: int,
    threshold: float,
    best: np.ndarray,
    levels: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(prober, member, score) at or above ``threshold`` in one cell whose ``probers`` start
    with its ``m`` members; raises ``best`` of the probers to their best member score."""
    out = []
    for m0 in range(0, m, MEMBER_BLOCK):
        members = probers[m0 : min(m, m0 + MEMBER_BLOCK)]
        xm_t = np.ascontiguousarray(x[members].T)
        step = max(MIN_PROBER_BLOCK, SCORES_PER_PRODUCT // len(members))
        for q0 in range(0, len(probers), step):
            queries = probers[q0 : q0 + step]
            scores = x[queries] @ xm_t
            if levels is not None:
                scores = LocalScaling.adjust(
                    scores, levels[queries][:, None], levels[members][None, :]
                )
            # A member meets itself where the prober block overlaps the member block.
            own = np.arange(max(q0, m0), min(q0 + len(queries), m0 + len(members)))
            scores[own - q0, own - m0] = -np.inf
            top = scores.max(axis=1)
            best[queries] = np.maximum(best[queries], top)
            hit = np.flatnonzero(top >= threshold)
            if hit.size:
                i, j = np.nonzero(scores[hit] >= threshold)
                out.append((queries[hit[i]], members[j], scores[hit[i], j]))
    return out


def _found_here_only(a: np.ndarray, b: np.ndarray, probes: np.ndarray) -> np.ndarray:
    """Which (prober ``a``, member ``b``) findings to keep so each pair is listed once.

    The pair is found again, as (prober ``b``, member ``a``), exactly when ``b`` probes ``a``'s
    own cell; of two such findings the one whose prober is the smaller row is kept.
    """
    b_probes_a = (probes[b] == probes[a, :1]).any(axis=1)
    return ~b_probes_a | (a < b)
