"""Budget-starved PQ indexes: the OPQ rotation auto puts in front of PQ codes earns its bytes."""

from __future__ import annotations

import faiss
import numpy as np

from embedsearch.index import build
from embedsearch.index.opq import pca_start
from embedsearch.index.plan import IndexPlan, choose_index, pq_bits, training_rows
from embedsearch.index.samples import Sample
from embedsearch.index.search_params import apply_search_params, ivf_of, search_param_grid
from embedsearch.index.tune import ExactTopK, measure_recall
from embedsearch.progress import NullProgress


def _built(plan: IndexPlan, corpus: np.ndarray):
    sample = Sample(corpus, np.arange(len(corpus)), np.zeros(len(corpus), np.int32))
    index = build._trained_index(plan, corpus.shape[1], sample, "cpu", NullProgress())
    index.add_with_ids(corpus, np.arange(len(corpus), dtype=np.int64))
    return index


def _best_recall(index, queries: np.ndarray, truth: np.ndarray) -> float:
    """Best recall@10 over the whole nprobe ladder (fresh queries, not corpus rows)."""
    best = 0.0
    for params in search_param_grid(index)[0]:
        apply_search_params(index, params)
        best = max(best, measure_recall(index, queries, np.full(len(queries), -1), truth, 10)[0])
    return best


def test_opq_beats_plain_pq_of_the_same_bytes_on_a_starved_budget(vectors) -> None:
    n, dim, budget = 10_000, 32, 200_000
    corpus, queries = vectors(n, dim, 0), vectors(300, dim, 1)
    plan = choose_index(n, dim, budget)  # only 8 bytes a vector of codes fit
    assert plan.factory.startswith("OPQ8_16,IVF")
    assert plan.factory.endswith(",PQ8x8np")
    assert plan.fits
    rotated = _built(plan, corpus)
    assert plan.estimated_bytes * 0.95 <= faiss.serialize_index(rotated).nbytes <= budget
    apply_search_params(rotated, {"nprobe": 7})  # reaches the IVF behind the rotation
    assert ivf_of(rotated).nprobe == 7
    assert ivf_of(rotated).d == 16

    plain = _built(
        IndexPlan("ivfpq", plan.factory.split(",", 1)[1], plan.nlist, 0, True, ""), corpus
    )
    exact = ExactTopK(queries, np.full(len(queries), -1), 10)
    exact.add(corpus, np.arange(n))
    truth = exact.keys()
    with_opq, without = _best_recall(rotated, queries, truth), _best_recall(plain, queries, truth)
    assert with_opq >= without + 0.05, (with_opq, without)


def test_pca_start_is_orthonormal_and_keeps_a_low_rank_signal(vectors) -> None:
    x = vectors(2000, 64, 0)  # 8-d signal plus a little noise, in 64 dims
    start = pca_start(x, 16)
    assert start.shape == (16, 64)
    assert np.allclose(start @ start.T, np.eye(16), atol=1e-5)
    centred = x - x.mean(0)
    kept = np.linalg.norm(centred @ start.T) ** 2 / np.linalg.norm(centred) ** 2
    assert kept > 0.9  # a random 16-of-64 rotation would keep about a quarter
    assert pca_start(x[:5], 16).shape == (16, 64)  # fewer rows than output dims: basis completed


def test_ten_bit_codebooks_beat_eight_bit_ones_of_the_same_bytes(vectors) -> None:
    n, dim = 50_000, 32  # rows enough for 1,024 centroids a codebook (>= 39 each)
    corpus, queries = vectors(n, dim, 0), vectors(300, dim, 1)
    plan = choose_index(n, dim, 20 * n)  # ~20 bytes a vector: PQ codes
    assert pq_bits(plan.factory) == 10, plan.factory
    assert plan.factory.endswith("x10np"), plan.factory
    assert training_rows(plan, n, dim) == min(n, 50 * 1024)  # 50 points a centroid
    exact = ExactTopK(queries, np.full(len(queries), -1), 10)
    exact.add(corpus, np.arange(n))
    truth = exact.keys()
    # 10 bytes of codes both ways: 8 sub-quantizers of 10 bits against 10 of 8 bits.
    ten = _built(
        IndexPlan("ivfpq", f"OPQ8_16,IVF{plan.nlist},PQ8x10np", plan.nlist, 0, True, ""), corpus
    )
    eight = _built(
        IndexPlan("ivfpq", f"OPQ10_20,IVF{plan.nlist},PQ10x8np", plan.nlist, 0, True, ""), corpus
    )
    assert ivf_of(ten).code_size == ivf_of(eight).code_size == 10
    recall_ten, recall_eight = (
        _best_recall(ten, queries, truth),
        _best_recall(eight, queries, truth),
    )
    assert recall_ten >= recall_eight + 0.02, (recall_ten, recall_eight)
