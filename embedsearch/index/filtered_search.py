"""Filtered search inside faiss: an ``IDSelector`` of the allowed rows, search parameters raised
for low selectivity, and exact search over the allowed rows where a graph cannot reach them.

Over-fetching k/s hits and dropping the filtered ones fails exactly when filters matter (a
filter keeping 1 % of rows needs 100x the hits, and still comes back short when the rows it
keeps are far from the query). Here faiss itself only ever returns allowed rows:

- the allowed keys become an ``IDSelectorBitmap`` (dense keys) or ``IDSelectorBatch`` (a hash
  set), placed on the innermost index through the wrappers the builds make (``IDMap2`` -- where
  the selector sees row positions, so keys are translated once --, ``IndexPreTransform`` for
  centring/OPQ, ``IndexRefine``), composed with any other selector (e.g. excluded rows) by
  ``IDSelectorAnd``;
- IVF: ``nprobe`` is raised to ``nprobe / s`` (s = share of rows allowed), capped at ``nlist``:
  the lists scanned then hold as many allowed rows as the tuned search scanned in all; when the
  allowed rows are fewer than 1/64 of the ids that search would check (a 0.1 % filter makes it
  check nearly every id), they are scanned exactly instead, their codes decoded;
- HNSW: ``efSearch`` is raised to ``efSearch / s`` while the graph walk costs less than an exact
  scan of the allowed rows; below that (few allowed rows, e.g. a 0.1 % filter, where the walk
  would need a candidate list longer than the rows it looks for) the allowed rows' stored
  vectors are scanned exactly (brute force), which is both faster and exact;
- flat: the selector alone (the scan is exact).

An exact scan streams the allowed rows in blocks (memory bounded by the block) and scores them
as the index does (queries through its centring / OPQ transforms).

The figures behind these rules: benchmarks/RESULTS.md, "Issue 13 -- filtered search".

Example:
    >>> plan = plan_filtered(index, allowed=50_000)          # doctest: +SKIP
    >>> plan.describe()                                      # doctest: +SKIP
    'ivf, nprobe 32 -> 640 for 5.0 % of rows'
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from embedsearch.index.search_params import hnsw_of, innermost, ivf_of

Method = Literal["selector", "exact"]
# a bitmap over keys costs max_key/8 bytes; use it while that is at most this many bytes a key, or
# at most BITMAP_BYTES in all (a hash set costs ~30 bytes a key and a slower lookup a candidate)
BITMAP_BYTES_PER_KEY = 32
BITMAP_BYTES = 1 << 20
EF_SEARCH_CAP = 4096
# exact scan of the allowed rows: rows decoded at a time, and (queries x rows) scores at a time
ROW_BLOCK = 16_384
QUERY_BLOCK_FLOATS = 1 << 22
# IVF: scan the allowed rows exactly when they are at most 1/64 of the ids the widened search
# would check (decoding and scoring a row cost ~50x checking an id on a 1M-row IVF index:
# benchmarks/RESULTS.md, issue 13)
EXACT_PER_CHECK = 64


@dataclass
class FilteredPlan:
    """How a filtered search runs: ``selector`` with ``params`` (raised search parameters), or
    ``exact`` over the allowed rows' stored vectors."""

    method: Method
    allowed: int
    total: int
    kind: str
    params: dict[str, int] = field(default_factory=dict)
    tuned: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for notes and benchmarks, e.g. ``hnsw, exact scan of 1,000 rows``."""
        share = f"{100 * self.allowed / max(self.total, 1):.3g} % of rows"
        if self.method == "exact":
            return f"{self.kind}, exact scan of {self.allowed:,} rows ({share})"
        raised = [f"{n} {self.tuned.get(n, v)} -> {v}" for n, v in self.params.items()]
        return f"{self.kind}, {', '.join(raised) or 'selector'} for {share}"


def plan_filtered(index: Any, allowed: int) -> FilteredPlan:
    """The search of ``index`` (CPU, as built) restricted to ``allowed`` of its rows."""
    total = max(int(index.ntotal), 1)
    share = max(allowed, 1) / total
    ivf, hnsw = ivf_of(index), hnsw_of(index)
    if ivf is not None:
        nprobe = min(int(ivf.nlist), math.ceil(int(ivf.nprobe) / share))
        scanned = nprobe * total // max(int(ivf.nlist), 1)  # ids the widened search checks
        if allowed * EXACT_PER_CHECK <= scanned:
            return FilteredPlan("exact", allowed, total, "ivf")
        return FilteredPlan("selector", allowed, total, "ivf", {"nprobe": nprobe},
                            {"nprobe": int(ivf.nprobe)})  # fmt: skip
    if hnsw is not None:
        tuned = int(hnsw.hnsw.efSearch)
        ef = math.ceil(tuned / share)
        walk = min(ef, EF_SEARCH_CAP) * int(hnsw.hnsw.nb_neighbors(0))  # distances it computes
        if (ef > EF_SEARCH_CAP or allowed <= walk) and _flat_storage(hnsw) is not None:
            return FilteredPlan("exact", allowed, total, "hnsw")
        return FilteredPlan("selector", allowed, total, "hnsw",
                            {"efSearch": min(ef, EF_SEARCH_CAP)}, {"efSearch": tuned})  # fmt: skip
    return FilteredPlan("selector", allowed, total, "flat")


class KeyPositions:
    """Key -> row position of an ``IDMap2`` index (whose inner index sees positions), sorted once
    a searcher; ``None`` keys map to themselves (IVF lists hold the keys)."""

    def __init__(self, index: Any) -> None:
        import faiss

        node: Any = faiss.downcast_index(index)
        self.wrapper: Any = (
            node if isinstance(node, (faiss.IndexIDMap, faiss.IndexIDMap2)) else None
        )
        self.id_map = None if self.wrapper is None else faiss.vector_to_array(node.id_map)
        self._order = None if self.id_map is None else np.argsort(self.id_map, kind="stable")

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """Sorted positions of the held ``keys`` (the keys themselves without an IDMap)."""
        if self.id_map is None or self._order is None:
            return keys
        ordered = self.id_map[self._order]
        if not len(ordered):
            return np.zeros(0, np.int64)
        at = np.minimum(np.searchsorted(ordered, keys), len(ordered) - 1)
        return np.sort(self._order[at[ordered[at] == keys]])

    def keys(self, positions: np.ndarray) -> np.ndarray:
        return positions if self.id_map is None else self.id_map[positions]


class Selection:
    """The allowed rows of one index as one faiss selector, kept alive with what it points at.

    ``keys``: sorted allowed keys (None: every row); ``extra``: another selector over keys
    (e.g. rows excluded at search time) or None; both must hold for a row to be found.
    """

    def __init__(self, lookup: KeyPositions, keys: np.ndarray | None, extra: Any | None) -> None:
        import faiss

        self._alive: list[Any] = []
        self.lookup = lookup
        self.positions = None if keys is None else lookup.positions(keys)
        self.extra = extra
        if extra is not None and lookup.wrapper is not None:  # ours is in positions: translate
            self.extra = self._keep(faiss.IDSelectorTranslated(lookup.wrapper.id_map, extra))
        parts = [] if self.positions is None else [self._set_selector(self.positions)]
        parts += [] if self.extra is None else [self.extra]
        self.selector: Any = parts[0] if len(parts) == 1 else None
        if len(parts) == 2:
            self.selector = self._keep(faiss.IDSelectorAnd(parts[0], parts[1]))

    def _keep(self, thing: Any) -> Any:
        self._alive.append(thing)  # faiss selectors hold raw pointers to what they select over
        return thing

    def _set_selector(self, values: np.ndarray) -> Any:
        import faiss

        if not len(values):
            return self._keep(faiss.IDSelectorBatch(np.array([-1], np.int64)))
        top = int(values[-1]) + 1
        if top // 8 <= max(BITMAP_BYTES_PER_KEY * len(values), BITMAP_BYTES):
            bits = np.zeros(top, bool)
            bits[values] = True
            bitmap = self._keep(np.packbits(bits, bitorder="little"))
            # its size is in bytes: ids past the last byte are not members
            return self._keep(faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)))
        return self._keep(faiss.IDSelectorBatch(np.ascontiguousarray(values, np.int64)))

    def allowed_positions(self) -> np.ndarray:
        """The positions both selectors allow (the extra one asked row by row: few rows here)."""
        assert self.positions is not None
        if self.extra is None:
            return self.positions
        ok = np.fromiter((self.extra.is_member(int(p)) for p in self.positions), bool)
        return self.positions[ok]


class CompiledFilters:
    """A searcher's compiled filters: (``where``, exclusion) -> selection, plan and faiss
    parameters, the last ``size`` kept (each costs up to ~9 bytes a row); thread-safe."""

    def __init__(self, index: Any, size: int = 4) -> None:
        self.index = index
        self.size = size
        self._cache: OrderedDict[tuple[str | None, int], Compiled] = OrderedDict()
        self._lock = threading.Lock()
        self._lookup: KeyPositions | None = None

    def get(
        self, where: str | None, exclusion: Any | None, keys_of: Callable[[str], np.ndarray]
    ) -> Compiled:
        """The compiled filter; ``keys_of(where)`` gives the sorted allowed keys."""
        cache_key = (where, id(exclusion))
        with self._lock:
            if cache_key in self._cache:
                self._cache.move_to_end(cache_key)
                return self._cache[cache_key]
            if self._lookup is None:
                self._lookup = KeyPositions(self.index)
            keys = None if where is None else keys_of(where)
            allowed = int(self.index.ntotal) if keys is None else len(keys)
            plan = plan_filtered(self.index, allowed)
            if keys is None:  # only the exclusion: no rarer rows to reach, nothing raised
                plan = FilteredPlan("selector", allowed, allowed, plan.kind)
            selection = Selection(self._lookup, keys, exclusion)
            if plan.method == "exact":
                prepare_exact(self.index)
            compiled = Compiled(
                selection, plan, search_parameters(self.index, selection, plan.params)
            )
            self._cache[cache_key] = compiled
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
            return compiled

    def search(
        self, compiled: Compiled, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, keys) of ``queries`` among the rows ``compiled`` allows."""
        if compiled.plan.method == "exact":
            return exact_search(self.index, compiled.selection, queries, k)
        scores, keys = self.index.search(queries, k, params=compiled.params)
        return scores, keys


@dataclass
class Compiled:
    """One compiled filter: its selector, how the search runs, the faiss parameters holding both."""

    selection: Selection
    plan: FilteredPlan
    params: Any


def search_parameters(index: Any, selection: Selection, params: dict[str, int]) -> Any:
    """faiss ``SearchParameters`` for ``index`` with ``selection`` on its innermost index and
    ``params`` (nprobe, efSearch) raised there; nested through PreTransform and Refine."""
    import faiss

    node: Any = faiss.downcast_index(index)
    wrappers = []
    while True:
        if isinstance(node, (faiss.IndexIDMap, faiss.IndexIDMap2)):
            node = faiss.downcast_index(node.index)  # its selector is ours, in positions
        elif isinstance(node, (faiss.IndexPreTransform, faiss.IndexRefine)):
            wrappers.append(node)
            node = faiss.downcast_index(
                node.index if isinstance(node, faiss.IndexPreTransform) else node.base_index
            )
        else:
            break
    if isinstance(node, faiss.IndexIVF):
        inner: Any = faiss.SearchParametersIVF()
        inner.nprobe = int(params.get("nprobe", node.nprobe))
    elif isinstance(node, faiss.IndexHNSW):
        inner = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # not in the stubs
        inner.efSearch = int(params.get("efSearch", node.hnsw.efSearch))
    else:
        inner = faiss.SearchParameters()
    if selection.selector is not None:
        inner.sel = selection.selector
    selection._keep(inner)
    for wrapper in reversed(wrappers):
        if isinstance(wrapper, faiss.IndexRefine):
            outer: Any = faiss.IndexRefineSearchParameters()
            outer.k_factor = float(wrapper.k_factor)
            outer.base_index_params = inner
        else:
            outer = faiss.SearchParametersPreTransform()
            outer.index_params = inner
        inner = selection._keep(outer)
    return inner


def exact_search(
    index: Any, selection: Selection, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over the stored vectors of the allowed rows (an HNSW graph's flat storage, or
    the codes of an IVF / refine stage decoded), scored as the index scores them, streamed in
    blocks of rows (memory bounded by the block, not by the rows allowed); (scores, keys) shaped
    (n, k), -1 keys past the allowed rows."""
    positions = selection.allowed_positions()
    rows_of = _row_reader(index)
    queries = _transformed(index, queries)
    # merged in numpy: faiss's ResultHeap runs an OpenMP loop a call, slow on busy cores
    best = np.full((len(queries), k), -np.inf, np.float32)
    best_keys = np.full((len(queries), k), -1, np.int64)
    step = max(1, QUERY_BLOCK_FLOATS // ROW_BLOCK)
    for start in range(0, len(positions), ROW_BLOCK):
        block = positions[start : start + ROW_BLOCK]
        vectors, keys = rows_of(block), selection.lookup.keys(block)
        for first in range(0, len(queries), step):
            rows = slice(first, first + step)
            scores = np.hstack([best[rows], queries[rows] @ vectors.T])
            found = np.hstack([best_keys[rows], np.broadcast_to(keys, (len(scores), len(keys)))])
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            best[rows] = np.take_along_axis(scores, top, axis=1)
            best_keys[rows] = np.take_along_axis(found, top, axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    return np.take_along_axis(best, order, axis=1), np.take_along_axis(best_keys, order, axis=1)


def _row_reader(index: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``rows -> vectors`` as the innermost index holds them (row = position under an IDMap2,
    else the key): a view of an HNSW graph's flat storage, else decoded codes."""
    import faiss

    inner = innermost(index)
    hnsw = hnsw_of(inner)
    storage = None if hnsw is None else _flat_storage(hnsw)
    if storage is not None:
        stored = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * storage.d)
        matrix = stored.reshape(storage.ntotal, storage.d)
        return lambda rows: matrix[rows]
    return lambda rows: inner.reconstruct_batch(np.ascontiguousarray(rows, np.int64))


def prepare_exact(index: Any) -> None:
    """Let :func:`exact_search` decode rows of an IVF index by key: a hash-table direct map
    (keys are sparse), built once (~16 bytes a row)."""
    import faiss

    direct_map: Any = faiss.DirectMap  # type: ignore[attr-defined]  # not in faiss's stubs
    inner = innermost(index)
    if isinstance(inner, faiss.IndexIVF) and inner.direct_map.type == direct_map.NoMap:
        inner.set_direct_map_type(direct_map.Hashtable)


def _transformed(index: Any, queries: np.ndarray) -> np.ndarray:
    """``queries`` as the innermost index sees them (centring / OPQ transforms applied)."""
    import faiss

    node: Any = faiss.downcast_index(index)
    while True:
        if isinstance(node, (faiss.IndexIDMap, faiss.IndexIDMap2)):
            node = faiss.downcast_index(node.index)
        elif isinstance(node, faiss.IndexPreTransform):
            chain: Any = node.chain
            for i in range(chain.size()):
                queries = faiss.downcast_VectorTransform(chain.at(i)).apply(queries)
            node = faiss.downcast_index(node.index)
        else:
            return np.ascontiguousarray(queries, np.float32)


def _flat_storage(hnsw: Any) -> Any:
    """The exact vectors under an HNSW graph (``HNSW32,Flat``), None for compressed storage."""
    import faiss

    storage = faiss.downcast_index(hnsw.storage)
    return storage if isinstance(storage, faiss.IndexFlat) else None
