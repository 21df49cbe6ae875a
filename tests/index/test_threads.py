"""Small batches search on one OpenMP thread; the caller's thread count always comes back.

Issue 17.4: one query took 28 ms with 2 OpenMP threads on busy cores and 0.008 ms with one.
"""

from __future__ import annotations

from collections.abc import Iterator

import faiss
import numpy as np
import pytest

from embedsearch.index import Searcher, build_index
from embedsearch.index.threads import SMALL_BATCH


@pytest.fixture
def three_threads() -> Iterator[int]:
    """The caller's faiss thread count set to 3 (not 1, so a switch to 1 shows), then put back."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(3)
    yield 3
    faiss.omp_set_num_threads(before)


class _Recorder:
    """Stands in for the faiss index: records the thread count each search ran with."""

    def __init__(self, index, fail: bool = False) -> None:
        self.index, self.fail, self.threads = index, fail, []
        self.ntotal = index.ntotal

    def search(self, vectors, k):
        self.threads.append(faiss.omp_get_max_threads())
        if self.fail:
            raise RuntimeError("faiss failed")
        return self.index.search(vectors, k)


@pytest.fixture
def searcher(tmp_path, vectors, write_emb) -> Searcher:
    write_emb(tmp_path / "e", vectors(300, 16, 1))
    build_index([tmp_path / "e"], tmp_path / "idx", kind="flat")
    return Searcher.open(tmp_path / "idx")


def test_a_single_query_searches_on_one_thread(searcher, three_threads) -> None:
    searcher.index = _Recorder(searcher.index)
    searcher.search_raw(np.ones((1, 16), np.float32), k=3)
    assert searcher.index.threads == [1]


def test_a_large_batch_keeps_the_callers_threads(searcher, three_threads) -> None:
    searcher.index = _Recorder(searcher.index)
    searcher.search_raw(np.ones((SMALL_BATCH, 16), np.float32), k=3)
    assert searcher.index.threads == [three_threads]


def test_thread_count_is_restored_after_a_search(searcher, three_threads) -> None:
    searcher.search_raw(np.ones((1, 16), np.float32), k=3)
    assert faiss.omp_get_max_threads() == three_threads


def test_thread_count_is_restored_when_the_search_raises(searcher, three_threads) -> None:
    searcher.index = _Recorder(searcher.index, fail=True)
    with pytest.raises(RuntimeError, match="faiss failed"):
        searcher.search_raw(np.ones((1, 16), np.float32), k=3)
    assert faiss.omp_get_max_threads() == three_threads


class _Sleeper:
    """A search that waits 20 ms without using the CPU, as a search on busy cores waits."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def search(self, vectors, k):
        import time

        self.threads.append(faiss.omp_get_max_threads())
        time.sleep(0.02)
        return np.zeros((len(vectors), k), np.float32), np.zeros((len(vectors), k), np.int64)


def test_recorded_latency_counts_cpu_time_not_time_spent_waiting() -> None:
    from embedsearch.index.tune import measure_latency

    latency = measure_latency(_Sleeper(), np.ones((4, 8), np.float32), k=2, singles=3)
    assert latency["p99_ms"] < 10  # each search waited 20 ms of wall time, using ~no CPU


def test_recorded_latency_is_measured_on_one_thread(three_threads) -> None:
    from embedsearch.index.tune import measure_latency

    index = _Sleeper()
    measure_latency(index, np.ones((4, 8), np.float32), k=2, singles=3)
    assert set(index.threads) == {1}
