"""What search-time exclusion of deleted rows costs an index that cannot remove them (issue 13).

HNSW graphs and refined PQ indexes cannot ``remove_ids``: ``index --append`` keeps their deleted
rows and every search skips them through a faiss ``IDSelector``
(:mod:`embedsearch.index.exclusions`). This script deletes a growing share of the rows of an
HNSW index and of a refined IVF-PQ index and measures, side by side on the same queries:

- ``excluded``: the appended index searched with the exclusion (efSearch raised by 1/(1-share)),
- ``no raise``: the same without raising efSearch (recall only),
- ``rebuilt``: the same kind built over the live rows only (what a rebuild gives),

recall@10 against exact search over the live rows, and the single-query p50 latency. The share
where the excluded index falls behind the rebuilt one is the rebuild threshold
(``REBUILD_SHARE``). Timings alternate the two sides; medians of ``--repeats`` runs.

Run: ``python benchmarks/exclusions.py [--rows 50000] [--dim 64]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import faiss
import numpy as np
from common import machine, print_table

from embedsearch.index.exclusions import search_with_selector, selector_of

HEADERS = [
    "kind",
    "deleted",
    "recall excl.",
    "recall no raise",
    "recall rebuilt",
    "p50 ms excl.",
    "p50 ms rebuilt",
    "latency ratio",
]
SHARES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
FACTORIES = {"hnsw": "IDMap2,HNSW32,Flat", "ivfpq": "IDMap2,IVF{nlist},PQ{m}x4fs,Refine(SQ8)"}


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors near a low-dimensional subspace, in clusters (tests/index/conftest.py)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1000 + dim).standard_normal((8, dim)).astype(np.float32)
    centres = np.random.default_rng(2000 + dim).standard_normal((50, 8)).astype(np.float32)
    z = centres[rng.integers(0, 50, n)] + 0.4 * rng.standard_normal((n, 8)).astype(np.float32)
    x = z @ basis + 0.2 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def build(kind: str, x: np.ndarray, keys: np.ndarray) -> faiss.Index:
    n, dim = x.shape
    factory = FACTORIES[kind].format(nlist=int(4 * np.sqrt(n)), m=dim // 4)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    index.train(x[: min(n, 40 * int(4 * np.sqrt(n)))])
    index.add_with_ids(x, keys)
    if kind == "hnsw":
        faiss.downcast_index(
            faiss.downcast_index(index).index
        ).hnsw.efSearch = 16  # a low tuned setting: recall feels the exclusion
    else:
        inner = faiss.downcast_index(faiss.downcast_index(index).index)
        faiss.extract_index_ivf(inner.base_index).nprobe = 32
        inner.k_factor = 8
    return index


def recall_of(index, queries, truth, selector, share=None) -> float:
    _, found = search_with_selector(index, queries, 10, selector, share)
    pairs = zip(found, truth, strict=True)
    return float(np.mean([len(np.intersect1d(a, b)) / 10 for a, b in pairs]))


def run_side(index, queries, truth, selector) -> tuple[float, float]:
    recall = recall_of(index, queries, truth, selector)
    times = []
    for row in queries[:200]:
        start = time.perf_counter()
        search_with_selector(index, row[None, :], 10, selector)
        times.append((time.perf_counter() - start) * 1000)
    return recall, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)  # single-query latency on one core, stable under load
    x = clustered(args.rows, args.dim, 0)
    queries = clustered(500, args.dim, 1)
    keys = np.arange(args.rows, dtype=np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(args.rows)
    rows = []
    for kind in FACTORIES:
        full = build(kind, x, keys)
        for share in SHARES:
            dead = np.sort(order[: int(share * args.rows)])
            live = np.setdiff1d(keys, dead)
            exact = faiss.IndexFlatIP(args.dim)
            exact.add(x[live])
            truth = live[exact.search(queries, 10)[1]]
            rebuilt = build(kind, x[live], live)
            excluded_recall, rebuilt_recall, excluded_ms, rebuilt_ms = [], [], [], []
            for _ in range(args.repeats):  # alternate the sides
                r, ms = run_side(full, queries, truth, selector_of(dead))
                excluded_recall.append(r)
                excluded_ms.append(ms)
                r, ms = run_side(rebuilt, queries, truth, None)
                rebuilt_recall.append(r)
                rebuilt_ms.append(ms)
            e_ms, r_ms = statistics.median(excluded_ms), statistics.median(rebuilt_ms)
            no_raise = recall_of(full, queries, truth, selector_of(dead), share=0.0)
            rows.append(
                [
                    kind,
                    f"{share:.0%}",
                    f"{statistics.median(excluded_recall):.3f}",
                    f"{no_raise:.3f}",
                    f"{statistics.median(rebuilt_recall):.3f}",
                    f"{e_ms:.3f}",
                    f"{r_ms:.3f}",
                    f"{e_ms / r_ms:.2f}",
                ]
            )
            print_table(
                HEADERS,
                rows[-1:],
                flush=True,
            )
    print(machine())
    print_table(
        HEADERS,
        rows,
    )


if __name__ == "__main__":
    main()
