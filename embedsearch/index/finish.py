"""Finishing a build or an append: tune, measure, write ``index.faiss`` then ``index.json``
(last), publish the staged dir, and say what was done (:class:`BuildSummary`).

Example:
    >>> summary = finish_index(parts, staged, out, started, [], NullProgress())   # doctest: +SKIP
    >>> summary.recall >= summary.target_recall                                 # doctest: +SKIP
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedsearch.atomic import publish_dir
from embedsearch.index import layout
from embedsearch.index.adding import IndexParts
from embedsearch.index.exact_refine import (
    FLAT_REFINE,
    SQ8_REFINE,
    exact_refine_bytes,
    swap_in_exact_refine,
)
from embedsearch.index.layout import IndexInfo, RecallInfo
from embedsearch.index.limits import shortfall_note
from embedsearch.index.scores import score_percentiles
from embedsearch.index.tune import measure_latency, tune
from embedsearch.progress import Progress


@dataclass(kw_only=True)
class BuildSummary:
    """What ``build_index``/``append_index`` did; ``info`` is the written ``index.json``."""

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
    build_seconds: float  # of this build or append
    notes: list[str] = field(default_factory=list)
    info: IndexInfo


def finish_index(
    parts: IndexParts,
    staged: Path,
    out: Path,
    started: float,
    notes: list[str],
    progress: Progress,
    appending: bool = False,
) -> BuildSummary:
    """Tune to the recall target, measure latency, write and publish (see the module docstring)."""
    info, k = parts.info, parts.k
    target = info.recall.target
    progress.start("tuning search parameters", None)
    tuning = (parts.tuning.vectors, parts.tuning.keys(), parts.truth[0])
    held_out = (parts.held_out.vectors, parts.held_out.keys(), parts.truth[1])
    result = tune(parts.index, tuning, held_out, k, target)
    if not result.met and _exact_refine(parts):
        result = tune(parts.index, tuning, held_out, k, target)
    queries = np.concatenate([parts.tuning.vectors, parts.held_out.vectors])
    info.latency = measure_latency(parts.index, queries, k)
    info.score_percentiles = score_percentiles(
        parts.index, tuning[0], tuning[1], parts.held_out.vectors, k
    )
    progress.stop()
    notes = list(notes)
    if not result.met:
        rows = sum(entry.indexed_rows for entry in info.sources)
        notes.append(shortfall_note(parts.index, result, info, tuning, rows))
    if info.estimated_bytes > info.max_memory and info.storage != "ondisk":  # on disk: by design
        notes.append(
            f"no index kind fits --max-memory {info.max_memory:,} bytes; built the smallest"
        )
    info.search_params = result.params
    info.recall = RecallInfo(
        k=k,
        target=target,
        recall_at_k=round(result.recall, 4),
        met=result.met,
        queries=len(parts.held_out.vectors),
    )
    info.tuning = [
        {"params": t.params, "recall": round(t.recall, 4), "seconds": round(t.seconds, 5)}
        for t in result.trials
    ]
    return write_and_publish(parts, staged, out, started, notes, appending)


def _exact_refine(parts: IndexParts) -> bool:
    """Escalate ``...,Refine(SQ8)`` to ``...,Refine(Flat)`` when full vectors fit the budget and
    the rows can be replayed (:mod:`~embedsearch.index.exact_refine`); True when it did."""
    info = parts.info
    rows = sum(entry.indexed_rows for entry in info.sources)
    size = exact_refine_bytes(rows, info.dim)
    if parts.replay is None or SQ8_REFINE not in info.factory or size > info.max_memory:
        return False
    if not swap_in_exact_refine(parts.index, parts.replay()):
        return False
    info.factory = info.factory.replace(SQ8_REFINE, FLAT_REFINE)
    info.estimated_bytes = size
    return True


def write_and_publish(
    parts: IndexParts,
    staged: Path,
    out: Path,
    started: float,
    notes: list[str],
    appending: bool,
) -> BuildSummary:
    """Write ``index.faiss``, then ``index.json`` with the sizes and timings, and publish."""
    import faiss

    info = parts.info
    faiss.write_index(parts.index, str(staged / layout.INDEX_FILE))
    info.ntotal = int(parts.index.ntotal)
    info.memory_bytes = (staged / layout.INDEX_FILE).stat().st_size
    layout.record_index_checksum(staged, info)
    layout.record_ivf_data(staged, info)  # an on-disk index's lists (embedsearch.index.merge)
    seconds = round(time.perf_counter() - started, 3)
    if appending:
        info.append_seconds = seconds
    else:
        info.build_seconds = seconds
    info.notes = notes
    layout.write_info(staged, info)
    publish_dir(staged, out)
    return BuildSummary(
        out=out,
        kind=info.kind,
        factory=info.factory,
        ntotal=info.ntotal,
        added=parts.added,
        recall=info.recall.recall_at_k or 0.0,
        target_recall=info.recall.target,
        met=bool(info.recall.met),
        search_params=info.search_params,
        memory_bytes=info.memory_bytes,
        build_seconds=seconds,
        notes=notes,
        info=info,
    )
