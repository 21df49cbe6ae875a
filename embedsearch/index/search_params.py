"""Search parameters of a built faiss index: the ladders tuning walks and applying a setting.

``nprobe`` (IVF lists scanned), ``efSearch`` (HNSW candidate list) and ``k_factor`` (refine
candidates a result) live on different objects inside faiss's wrappers; these helpers find
them.

Example:
    >>> apply_search_params(index, {"nprobe": 16})   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

# Refine candidates a result that tuning tries first, and those it escalates to when none of the
# first meets the target (concentrated vectors: the fast-scan PQ candidates need many more).
K_FACTORS = (1, 2, 4, 8, 16)
ESCALATION_K_FACTORS = (32, 64, 128, 256)


def search_param_grid(
    index: Any, factors: tuple[int, ...] = K_FACTORS
) -> list[list[dict[str, int]]]:
    """Ladders of search parameters, each cheap -> expensive in its first parameter.

    ``factors``: the refine ``k_factor`` of each ladder (refined indexes only).
    """
    refine = refine_of(index)
    ivf, hnsw = ivf_of(index), hnsw_of(index)
    if ivf is not None:
        primary = [("nprobe", p) for p in _powers(ivf.nlist)]
    elif hnsw is not None:
        primary = [("efSearch", e) for e in (16, 32, 64, 128, 256, 512, 1024)]
    else:
        return [[{}]]
    ladders = []
    for factor in factors if refine is not None else (None,):
        ladder = [
            {name: value, **({"k_factor": factor} if factor else {})} for name, value in primary
        ]
        ladders.append(ladder)
    return ladders


def escalation_grid(index: Any) -> list[list[dict[str, int]]]:
    """The ladders tuning escalates to when the target is out of reach of
    :func:`search_param_grid`'s: larger refine ``k_factor`` s (none for unrefined indexes)."""
    return search_param_grid(index, ESCALATION_K_FACTORS) if refine_of(index) is not None else []


def _powers(limit: int) -> list[int]:
    values, p = [], 1
    while p < limit:
        values.append(p)
        p *= 2
    return values + [limit]


def apply_search_params(index: Any, params: dict[str, int]) -> None:
    """Apply ``{"nprobe", "efSearch", "k_factor"}`` (those present) to ``index`` in place."""
    if "nprobe" in params:
        ivf_of(index).nprobe = int(params["nprobe"])
    if "efSearch" in params:
        hnsw_of(index).hnsw.efSearch = int(params["efSearch"])
    if "k_factor" in params:
        refine_of(index).k_factor = float(params["k_factor"])


def innermost(index: Any) -> Any:
    """The index under the IDMap and PreTransform wrappers (IVF, refine, HNSW or flat)."""
    import faiss

    index = faiss.downcast_index(index)
    while isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
        index = faiss.downcast_index(index.index)  # a centring or OPQ transform, or the keys
    return index


def refine_of(index: Any) -> Any:
    """The IndexRefine inside ``index`` (under IDMap and transform wrappers), or None."""
    import faiss

    index = innermost(index)
    return index if isinstance(index, faiss.IndexRefine) else None


def ivf_of(index: Any) -> Any:
    """The IVF index inside ``index`` (under IDMap and refine wrappers), or None."""
    import faiss

    index = innermost(index)
    if isinstance(index, faiss.IndexRefine):
        index = index.base_index
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def hnsw_of(index: Any) -> Any:
    """The HNSW index inside ``index`` (under IDMap and transform wrappers), or None."""
    import faiss

    index = innermost(index)
    return index if isinstance(index, faiss.IndexHNSW) else None
