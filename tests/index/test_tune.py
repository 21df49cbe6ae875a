"""Recall measurement and tuning pieces: own-key removal, streamed exact top-k, the ladder walk."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from embedsearch.index.search_params import apply_search_params, search_param_grid
from embedsearch.index.tune import ExactTopK, drop_own, recall_at_k, tune


def test_drop_own_and_recall() -> None:
    found = np.array([[7, 1, 2, 3], [4, 5, 6, 8]])
    assert drop_own(found, np.array([7, 0]), 3).tolist() == [[1, 2, 3], [4, 5, 6]]
    truth = np.array([[1, 2, 9], [4, -1, -1]])
    assert recall_at_k(np.array([[1, 2, 3], [4, 5, 6]]), truth) == pytest.approx(3 / 4)


def test_streamed_exact_top_k_equals_brute_force(vectors) -> None:
    corpus = vectors(3000, 24, 0)
    keys = np.arange(3000, dtype=np.int64) + 10**6
    picks = np.array([5, 500, 2999])
    truth = ExactTopK(corpus[picks], keys[picks], k=5)
    for start in range(0, 3000, 700):  # uneven blocks, the last one short
        truth.add(corpus[start : start + 700], keys[start : start + 700])
    _, rows = faiss.knn(corpus[picks], corpus, 6, metric=faiss.METRIC_INNER_PRODUCT)
    assert truth.keys().tolist() == [
        [keys[r] for r in row if r != p][:5] for row, p in zip(rows, picks, strict=False)
    ]


def test_tune_keeps_the_cheapest_setting_that_meets_the_target(vectors) -> None:
    corpus = vectors(4000, 32, 0)
    index = faiss.index_factory(32, "IVF64,Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(corpus)
    index.add_with_ids(corpus, np.arange(4000))
    samples = []
    for seed in (1, 2):
        picks = np.random.default_rng(seed).choice(4000, 200, replace=False)
        truth = ExactTopK(corpus[picks], picks, k=10)
        truth.add(corpus, np.arange(4000))
        samples.append((corpus[picks], picks.astype(np.int64), truth.keys()))
    result = tune(index, samples[0], samples[1], k=10, target=0.9)
    assert result.met
    assert result.recall >= 0.9
    cheaper = [t for t in result.trials if t.params["nprobe"] < result.params["nprobe"]]
    assert cheaper
    assert all(t.recall < 0.9 for t in cheaper)  # nothing cheaper met it on the tuning set
    assert index.nprobe == result.params["nprobe"]
    impossible = tune(index, samples[0], samples[1], k=10, target=1.01)
    best = max(t.recall for t in impossible.trials)
    assert not impossible.met  # says so, and keeps the cheapest setting on the recall plateau
    chosen = next(t for t in impossible.trials if t.params == impossible.params)
    assert chosen.recall >= best - 0.005
    assert (
        impossible.trials[-1].params["nprobe"] < 64
    )  # stopped climbing once recall stopped improving


def test_search_params_reach_wrapped_indexes() -> None:
    index = faiss.index_factory(16, "IDMap2,IVF8,PQ4x4fs,Refine(SQ8)", faiss.METRIC_INNER_PRODUCT)
    ladders = search_param_grid(index)
    assert len(ladders) == 5
    assert ladders[0][0] == {"nprobe": 1, "k_factor": 1}
    apply_search_params(index, {"nprobe": 4, "k_factor": 8})
    assert (
        faiss.extract_index_ivf(
            faiss.downcast_index(faiss.downcast_index(index).index).base_index
        ).nprobe
        == 4
    )
    assert search_param_grid(faiss.index_factory(16, "IDMap2,Flat")) == [[{}]]
    hnsw = search_param_grid(faiss.index_factory(16, "IDMap2,HNSW32,Flat"))
    assert hnsw[0][0] == {"efSearch": 16}
