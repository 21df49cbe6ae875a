"""Escalating a refined index to an exact refine: the stored SQ8 codes replaced by full vectors.

When tuning misses the recall target and the fast-scan PQ candidates already hold the
neighbours, the SQ8 re-scoring is what loses them (concentrated vectors differ in the fourth
decimal, below SQ8's step). If full vectors fit the budget, the build streams its rows again
(in the order they were added) into an exact ``IndexFlat`` that replaces the SQ8 codes inside
the ``IndexRefine``: ``...,Refine(SQ8)`` becomes ``...,Refine(Flat)``, and tuning runs again.

Example:
    >>> swap_in_exact_refine(index, blocks)   # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from embedsearch.index.centring import as_ranked, centre_of
from embedsearch.index.plan import ID_BYTES
from embedsearch.index.search_params import refine_of

SQ8_REFINE = "Refine(SQ8)"
FLAT_REFINE = "Refine(Flat)"


def exact_refine_bytes(n: int, dim: int) -> int:
    """Estimated size of a fast-scan PQ index refined with full vectors (4-bit codes, keys)."""
    return int(n * (dim / 8 + dim * 4 + ID_BYTES))


def swap_in_exact_refine(index: Any, blocks: Iterable[np.ndarray]) -> bool:
    """Replace the SQ8 refine codes of ``index`` with the full vectors of ``blocks`` (every
    indexed row, in the order added); False when ``index`` has no refine stage or the rows do
    not match it."""
    import faiss

    refine = refine_of(index)
    if refine is None:
        return False
    mean = centre_of(index)  # the refine stage sees what the base sees: centred vectors
    flat: Any = faiss.IndexFlat(int(refine.d), faiss.METRIC_INNER_PRODUCT)
    for block in blocks:
        flat.add(np.ascontiguousarray(as_ranked(block, mean), np.float32))
    if flat.ntotal != refine.ntotal:
        return False
    old = refine.refine_index
    old.this.own(refine.own_refine_index)  # Python frees the SQ8 codes once ``old`` goes
    flat.this.disown()  # ... and the refine stage now owns the exact vectors
    refine.refine_index = flat
    refine.own_refine_index = True
    return True
