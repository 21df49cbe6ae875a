"""Why a recall target was not met: the limit that stopped tuning, named with what would lift it.

Tuning reports the best recall it reached; this says *why* not more, so the user knows what to
change. A refined index (fast-scan PQ candidates re-scored with SQ8 codes) is probed at the end
of its grid (every list, the largest ``k_factor``): when its candidates hold the neighbours but
the re-scored top-k does not, the refine codes lack precision; when even the candidates miss
them, the PQ codebooks are too coarse. An unrefined compressed index at its last ``nprobe`` is
limited by its codes. A ladder that was still rising at its last step ran off the grid. Each
limit comes with the index that would lift it and its size against the budget.

Example:
    >>> shortfall_note(index, result, info, tuning, n=20_000)        # doctest: +SKIP
    'recall@10 target 0.95 not met (0.912): limit: SQ8 refine precision ...'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedsearch.index.budget import format_bytes
from embedsearch.index.centring import as_ranked, centre_of
from embedsearch.index.exact_refine import FLAT_REFINE, exact_refine_bytes
from embedsearch.index.layout import IndexInfo
from embedsearch.index.plan import plan_kind
from embedsearch.index.search_params import ivf_of, refine_of
from embedsearch.index.tune import PLATEAU, TuneResult, drop_own, recall_at_k


def candidate_recall(
    index: Any, tuning: tuple[np.ndarray, np.ndarray, np.ndarray], k: int, k_factor: int
) -> float:
    """Share of the exact top-k that a refined index's candidates hold (``k_factor``·k of them,
    from every list): what re-scoring could at best recover."""
    import faiss

    queries, own, truth = tuning
    view = faiss.downcast_index(index)
    positions: np.ndarray | None = None
    if isinstance(view, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        positions = faiss.vector_to_array(view.id_map)
    x = as_ranked(queries, centre_of(index))
    base = faiss.downcast_index(refine_of(index).base_index)
    ivf = ivf_of(index)
    nprobe = ivf.nprobe
    ivf.nprobe = ivf.nlist
    try:
        _, found = base.search(np.ascontiguousarray(x, np.float32), k * k_factor + 1)
    finally:
        ivf.nprobe = nprobe
    if positions is not None:
        found = np.where(found >= 0, positions[np.maximum(found, 0)], -1)
    return recall_at_k(drop_own(found, own, k * k_factor + 1), truth)  # every candidate kept


def shortfall_note(
    index: Any,
    result: TuneResult,
    info: IndexInfo,
    tuning: tuple[np.ndarray, np.ndarray, np.ndarray],
    n: int,
) -> str:
    """The note of a build that missed its recall target: reached, the limit, the remedy."""
    k, target = info.recall.k, info.recall.target
    head = f"recall@{k} target {target} not met (reached {result.recall:.3f})"
    if info.estimated_bytes > info.max_memory:
        return f"{head}: limit: the budget ({format_bytes(info.max_memory)}); {_bigger(info, n)}"
    last = result.trials[-1] if result.trials else None
    refine = refine_of(index)
    if refine is not None and last is not None:
        factor = max(int(t.params.get("k_factor", 1)) for t in result.trials)
        held = candidate_recall(index, tuning, k, factor)
        # the candidates hold clearly more than was reached: the re-scoring loses them
        if held >= target or held - result.recall >= (target - result.recall) / 2:
            exact = exact_refine_bytes(n, info.dim)
            codes = "exact" if FLAT_REFINE in info.factory else "SQ8"
            return (
                f"{head}: limit: refine precision: the candidates hold {held:.3f} of the "
                f"neighbours but the {codes} re-scoring misorders them; an exact refine "
                f"(Refine(Flat)) needs about {format_bytes(exact)}"
                f"{_against(exact, info)}"
            )
        return (
            f"{head}: limit: codebook size: even {factor * k} PQ candidates from every list "
            f"hold only {held:.3f} of the neighbours; {_bigger(info, n)}"
        )
    if _still_rising(result):
        return f"{head}: limit: the end of the tuning grid ({last.params if last else {}})"
    if ivf_of(index) is not None and info.kind in ("ivfsq", "ivfpq"):
        what = "codebook size" if "PQ" in info.factory else "code precision"
        return f"{head}: limit: {what}: {info.factory} codes; {_bigger(info, n)}"
    return f"{head}: limit: the search parameters tried ({last.params if last else {}})"


def _still_rising(result: TuneResult) -> bool:
    """Whether the best setting was the last of its ladder and that step still gained."""
    trials = result.trials
    return len(trials) >= 2 and trials[-1].recall - trials[-2].recall >= PLATEAU


def _bigger(info: IndexInfo, n: int) -> str:
    """The index over full vectors (``--kind ivf``) that lifts a code-size limit, sized."""
    ivf = plan_kind("ivf", n, info.dim, info.max_memory)
    return f"--kind ivf (full vectors) needs about {format_bytes(ivf.estimated_bytes)}" + _against(
        ivf.estimated_bytes, info
    )


def _against(size: float, info: IndexInfo) -> str:
    if size <= info.max_memory:
        return f", within the budget ({format_bytes(info.max_memory)})"
    return f": raise --max-memory to at least {format_bytes(size)}"
