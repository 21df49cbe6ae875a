"""Rows an index still holds but must never return: search-time exclusion of deleted rows.

``index --append`` removes deleted and superseded rows with faiss ``remove_ids`` where the index
kind can (flat, ivf, ivfsq, plain ivfpq). HNSW graphs and refined indexes
(``IVF…,PQ…fs,Refine(…)``) cannot remove rows; their keys go to ``excluded-keys.npy`` in the
index dir (count and checksum in ``index.json``: ``excluded_rows``, ``excluded_sha256``) and
every search skips them inside faiss, through an ``IDSelectorNot(IDSelectorBatch(keys))``, so
a query still gets ``k`` hits. Excluded rows still cost memory and search time, and an HNSW
search walks through them; past :data:`REBUILD_SHARE` of the rows a note asks for a rebuild
(the measurement: ``benchmarks/RESULTS.md``, issue 13).

Example:
    >>> sel = excluded_selector("indexes/photos")                    # doctest: +SKIP
    >>> scores, keys = search_with_selector(index, queries, 10, sel)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.errors import FormatError
from embedsearch.index import layout
from embedsearch.store.integrity import sha256_file

EXCLUDED_FILE = "excluded-keys.npy"
# Above this share of excluded rows the append note asks for a rebuild (see the module doc).
REBUILD_SHARE = 0.2


def read_excluded_keys(index_dir: str | Path, info: layout.IndexInfo | None = None) -> np.ndarray:
    """The sorted excluded keys of an index dir (empty when none), checked against index.json."""
    index_dir = Path(index_dir)
    info = info if info is not None else layout.read_info(index_dir)
    if not info.excluded_rows:
        return np.zeros(0, np.int64)
    path = index_dir / EXCLUDED_FILE
    if not path.is_file() or sha256_file(path) != info.excluded_sha256:
        raise FormatError(
            f"{path} is missing or corrupt (its checksum differs from the one in index.json): "
            "deleted rows could be returned; rebuild the index with `embedsearch index ... "
            "--overwrite`"
        )
    keys: np.ndarray = np.load(path, allow_pickle=False)
    return keys.astype(np.int64, copy=False)


def write_excluded_keys(staged: Path, info: layout.IndexInfo, keys: np.ndarray) -> None:
    """Write the excluded keys into a staged index dir and record their count and checksum."""
    keys = np.unique(np.asarray(keys, np.int64))
    if not len(keys):
        info.excluded_rows = info.excluded_sha256 = None
        return
    with open(staged / EXCLUDED_FILE, "wb") as handle:
        np.save(handle, keys, allow_pickle=False)
    info.excluded_rows = len(keys)
    info.excluded_sha256 = sha256_file(staged / EXCLUDED_FILE)


def selector_of(keys: np.ndarray) -> Any:
    """A faiss selector that lets every key through except ``keys`` (None when there are none)."""
    import faiss

    if not len(keys):
        return None
    batch = faiss.IDSelectorBatch(np.ascontiguousarray(keys, np.int64))
    selector: Any = faiss.IDSelectorNot(batch)
    selector.referenced = batch  # IDSelectorNot keeps a raw pointer: keep its target alive
    selector.excluded_rows = len(keys)  # what search_with_selector raises efSearch by
    return selector


def excluded_selector(index_dir: str | Path) -> Any:
    """``IDSelectorNot(IDSelectorBatch(excluded keys))`` of an index dir, or None (no exclusion).

    Compose it with another selector with ``faiss.IDSelectorAnd``; search with
    :func:`search_with_selector`.
    """
    return selector_of(read_excluded_keys(index_dir))


def search_with_selector(
    index: Any, vectors: np.ndarray, k: int, selector: Any, share: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` letting through only the keys ``selector`` accepts (all when None).

    The index's own search parameters (``nprobe``, ``efSearch``, ``k_factor``) are kept; HNSW's
    ``efSearch`` is raised by ``1 / (1 - share)``, ``share`` being the part of the rows the
    selector rejects (default: what :func:`selector_of` recorded on it), because rejected nodes
    still fill its candidate list.
    """
    if share is None:
        share = getattr(selector, "excluded_rows", 0) / max(int(index.ntotal), 1)
    return _search(index, index.search, vectors, k, selector, share)


def _search(
    index: Any, search: Any, vectors: np.ndarray, k: int, selector: Any, share: float
) -> tuple[np.ndarray, np.ndarray]:
    if selector is None:
        result: tuple[np.ndarray, np.ndarray] = search(vectors, k)
        return result
    params, keep = _params(index, selector, share)
    result = search(vectors, k, params=params)
    del keep  # the parameters point into these objects until the search has returned
    return result


def _params(index: Any, selector: Any, share: float) -> tuple[Any, list[Any]]:
    """faiss search parameters of the right type for ``index``'s wrapper chain, and the objects
    they point to (kept alive by the caller for the search)."""
    import faiss

    view = faiss.downcast_index(index)
    id_map: Any = None
    if isinstance(view, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        id_map = view.id_map  # IDMap translates the outer selector itself; a refine's base not
        view = faiss.downcast_index(view.index)
    while isinstance(view, faiss.IndexPreTransform):
        view = faiss.downcast_index(view.index)
    if not isinstance(view, faiss.IndexRefine):
        return _leaf_params(view, selector, share), [selector]
    inner = faiss.IDSelectorTranslated(id_map, selector) if id_map is not None else selector
    base = _leaf_params(faiss.downcast_index(view.base_index), inner, share)
    params = faiss.IndexRefineSearchParameters()
    params.k_factor = view.k_factor
    params.base_index_params = base
    return params, [selector, inner, base]


def _leaf_params(view: Any, selector: Any, share: float) -> Any:
    import faiss

    from embedsearch.index.search_params import ivf_of

    ivf = ivf_of(view)
    params: Any
    if ivf is not None:
        params = faiss.SearchParametersIVF()
        params.nprobe = ivf.nprobe
    elif isinstance(view, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # not in the stubs
        raised = view.hnsw.efSearch / max(1.0 - share, 0.05)
        params.efSearch = int(math.ceil(raised))
    else:
        params = faiss.SearchParameters()
    params.sel = selector
    return params


@contextmanager
def searching_with(index: Any, selector: Any, share: float) -> Iterator[None]:
    """While inside, ``index.search`` (this object only) skips what ``selector`` rejects: lets
    tuning and latency measurement see the index as queries will."""
    if selector is None:
        yield
        return
    original = index.search
    index.search = lambda x, k, **_: _search(index, original, x, k, selector, share)
    try:
        yield
    finally:
        del index.search
