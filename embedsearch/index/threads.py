"""How many OpenMP threads a faiss search gets: one for small batches.

A faiss search of a few queries does microseconds of work, but each OpenMP parallel region
wakes the pool's threads and waits at a barrier for all of them; on cores that other processes
keep busy, that wait is a scheduler time slice: milliseconds for microseconds of work
(``benchmarks/query_latency.py``, figures in ``benchmarks/RESULTS.md``, issue 17). Small batches
therefore search on the calling thread alone; large ones keep faiss's threads, where splitting
the work pays for the wake-ups.

The thread count is OpenMP's per-thread setting (``omp_set_num_threads`` sets the calling
thread's), and it is restored on the way out, also when the search raises: nothing leaks into
the caller's other faiss work or into other threads.

Example:
    >>> import faiss
    >>> before = faiss.omp_get_max_threads()
    >>> with search_threads(1):
    ...     faiss.omp_get_max_threads()
    1
    >>> faiss.omp_get_max_threads() == before
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

# Batches smaller than this search single-threaded (their work is smaller than the wake-ups).
SMALL_BATCH = 16


def threads_for(queries: int) -> int | None:
    """1 for a batch of fewer than :data:`SMALL_BATCH` queries, else None (faiss's default).

    Example:
        >>> threads_for(1), threads_for(1000)
        (1, None)
    """
    return 1 if queries < SMALL_BATCH else None


@contextmanager
def faiss_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` OpenMP threads for faiss (None: leave as it is)."""
    if threads is None:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def search_threads(queries: int) -> AbstractContextManager[None]:
    """:func:`faiss_threads` with :func:`threads_for` ``queries``: wrap one search call."""
    return faiss_threads(threads_for(queries))
