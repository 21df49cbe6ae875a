"""``build_index``: embedding dirs in, a tuned, self-contained index dir out.

Two streaming passes over the shards: the first draws the training sample and the
query samples (and refuses NaN/inf), the second adds rows in blocks, writes the
metadata store and accumulates the exact neighbours of the queries. Then the search
parameters are tuned to the recall target and everything is published atomically.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.errors import InputError
from embedsearch.index import layout
from embedsearch.index.budget import default_max_memory, parse_memory
from embedsearch.index.factory import IndexPlan, choose_index, ivf_of, training_rows
from embedsearch.index.opq import quicker_opq
from embedsearch.index.sources import Sample, open_sources, sample_rows
from embedsearch.index.writing import IndexParts, add_rows, finish_index, new_index_info
from embedsearch.progress import NullProgress, Progress

QUERY_SAMPLE = 500
DEFAULT_K = 10
DEFAULT_TARGET = 0.95


@dataclass
class BuildSummary:
    """What ``build_index`` did; ``info`` is the written ``index.json``."""

    out: Path
    kind: str
    factory: str
    ntotal: int
    added: int
    recall: float
    target_recall: float
    met: bool
    search_params: dict[str, int]
    memory_bytes: int
    build_seconds: float
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def build_index(
    sources: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    kind: str = "auto",
    max_memory: str | int | None = None,
    target_recall: float = DEFAULT_TARGET,
    k: int = DEFAULT_K,
    append: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    seed: int = 0,
    progress: Progress | None = None,
) -> BuildSummary:
    """Build (or ``append`` to) the index dir ``out`` from one or more embedding dirs.

    ``kind``: auto|flat|hnsw|ivf|ivfpq. ``max_memory``: index memory budget ("500M", "4G",
    bytes; default half the available RAM). ``target_recall``: recall@``k`` that the search
    parameters are tuned to on held-out sample queries.

    Example:
        >>> s = build_index(["emb/"], "indexes/photos", max_memory="100M")   # doctest: +SKIP
        >>> s.kind, round(s.recall, 3), s.met                                  # doctest: +SKIP
        ('ivfsq', 0.962, True)
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    if not 0 < target_recall <= 1:
        raise InputError(f"--target-recall must be in (0, 1], got {target_recall}")
    if k < 1:
        raise InputError(f"-k must be at least 1, got {k}")
    out = Path(out).expanduser().resolve()
    progress = progress or NullProgress()
    if append:
        from embedsearch.index.append import append_index

        return append_index(
            sources,
            out,
            target_recall=target_recall,
            k=k,
            device=device,
            seed=seed,
            progress=progress,
        )
    layout.check_out_dir(out, overwrite)
    started = time.perf_counter()
    dirs = open_sources(sources)
    budget = parse_memory(max_memory) if max_memory is not None else default_max_memory()
    n = sum(d.live_rows for d in dirs)
    plan = choose_index(n, dirs[0].dim, budget, kind)
    queries = min(QUERY_SAMPLE, max(1, n // 8))
    train, tuning, held_out = sample_rows(
        dirs, [training_rows(plan, n, dirs[0].dim), queries, queries], seed=seed, progress=progress
    )
    index = _trained_index(plan, dirs[0].dim, train, device, progress)
    del train
    info = new_index_info(plan, dirs, budget, target_recall, k)
    parts = IndexParts(index=index, info=info, tuning=tuning, held_out=held_out, k=k)
    with layout.Staging(out) as staged:
        add_rows(parts, dirs, list(range(len(dirs))), staged, skip=None, progress=progress)
        return finish_index(parts, staged, out, started, [plan.reason], progress)


def _trained_index(
    plan: IndexPlan, dim: int, train: Sample, device: str, progress: Progress
) -> Any:
    import faiss

    from embedsearch.index.gpu import train_on_device, use_gpu

    try:
        index = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:  # a faiss bug or an unsupported combination: name the factory
        raise InputError(f"faiss cannot build {plan.factory!r} for dim {dim}: {e}") from e
    gpu = use_gpu(device)
    if not index.is_trained:
        ivf = ivf_of(index)
        if ivf is not None and hasattr(faiss.downcast_index(ivf), "pq"):
            # PQ k-means on 2-4-d subspaces converges on few points and iterations; faiss's
            # defaults (256 points a centroid, 25 iterations) take minutes on 2 cores.
            faiss.downcast_index(ivf).pq.cp.max_points_per_centroid = 64
            faiss.downcast_index(ivf).pq.cp.niter = 15
        progress.start(f"training {plan.factory} on {len(train.vectors):,} rows", None)
        with quicker_opq(index, train.vectors):
            train_on_device(index, np.ascontiguousarray(train.vectors), gpu)
        progress.stop()
    return index
