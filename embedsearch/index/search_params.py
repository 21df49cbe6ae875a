"""Search parameters of a built faiss index: the ladders tuning walks and applying a setting.

``nprobe`` (IVF lists scanned), ``efSearch`` (HNSW candidate list) and ``k_factor`` (refine
candidates a result) live on different objects inside faiss's wrappers; these helpers find
them.

Example:
    >>> apply_search_params(index, {"nprobe": 16})   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any


def search_param_grid(index: Any) -> list[list[dict[str, int]]]:
    """Ladders of search parameters, each cheap -> expensive in its first parameter."""
    refine = refine_of(index)
    factors = [1, 2, 4, 8, 16] if refine is not None else [None]
    ivf, hnsw = ivf_of(index), hnsw_of(index)
    if ivf is not None:
        primary = [("nprobe", p) for p in _powers(ivf.nlist)]
    elif hnsw is not None:
        primary = [("efSearch", e) for e in (16, 32, 64, 128, 256, 512, 1024)]
    else:
        return [[{}]]
    ladders = []
    for factor in factors:
        ladder = [
            {name: value, **({"k_factor": factor} if factor else {})} for name, value in primary
        ]
        ladders.append(ladder)
    return ladders


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


def _unwrap(index: Any) -> Any:
    import faiss

    index = faiss.downcast_index(index)
    while isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        index = faiss.downcast_index(index.index)
    return index


def refine_of(index: Any) -> Any:
    """The IndexRefine inside ``index`` (under IDMap wrappers), or None."""
    import faiss

    index = _unwrap(index)
    return index if isinstance(index, faiss.IndexRefine) else None


def ivf_of(index: Any) -> Any:
    """The IVF index inside ``index`` (under IDMap and refine wrappers), or None."""
    import faiss

    index = _unwrap(index)
    if isinstance(index, faiss.IndexRefine):
        index = index.base_index
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def hnsw_of(index: Any) -> Any:
    """The HNSW index inside ``index`` (under IDMap wrappers), or None."""
    import faiss

    index = _unwrap(index)
    return index if isinstance(index, faiss.IndexHNSW) else None
