"""``--append``: add new embedding dirs, or new rows of indexed ones, without retraining.

Rows whose key is already in the index's metadata store are skipped, so appending the
same dir twice adds nothing. The search parameters are re-tuned (cheap: no training) and
recall re-measured against exact search over every source, when all sources are still
on disk; otherwise the previous figures are kept and a note says so.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.index import layout
from embedsearch.index.factory import set_search_params
from embedsearch.index.metadata import MetadataStore
from embedsearch.index.sources import check_compatible, open_sources, sample_rows
from embedsearch.index.writing import IndexParts, add_rows, finish_index, source_entry
from embedsearch.progress import Progress
from embedsearch.store.embedding_dir import EmbeddingDir

QUERY_SAMPLE = 500


def append_index(
    sources: Sequence[str | Path],
    out: Path,
    *,
    target_recall: float,
    k: int,
    device: str,
    seed: int,
    progress: Progress,
) -> Any:
    """Add rows of ``sources`` to the index dir ``out`` (see the module docstring)."""
    import faiss

    started = time.perf_counter()
    info = layout.read_info(out)
    named = open_sources(sources)
    check_compatible(info["fingerprint"], info["model"], int(info["dim"]), named)
    numbers = _source_numbers(info, named)
    available, avail_numbers, missing = _available_sources(info, named, numbers)
    index = faiss.read_index(str(out / layout.INDEX_FILE))
    set_search_params_safe(index, info.get("search_params", {}))
    store = MetadataStore(out, [m["file"] for m in info["metadata_files"]])
    total = sum(d.live_rows for d in available)
    queries = min(QUERY_SAMPLE, max(1, total // 8))
    _, tuning, held_out = sample_rows(
        available, [0, queries, queries], numbers=avail_numbers, seed=seed + 1, progress=progress
    )
    info["recall"]["target"], info["recall"]["k"] = target_recall, k
    parts = IndexParts(index=index, info=info, tuning=tuning, held_out=held_out, k=k)
    with layout.Staging(out) as staged:
        for entry in info["metadata_files"]:
            _link(out / entry["file"], staged / entry["file"])
        add_rows(
            parts,
            available,
            avail_numbers,
            staged,
            skip=store,
            progress=progress,
            add_to=set(numbers),
        )
        notes = [f"appended {parts.added:,} rows from {', '.join(str(d.path) for d in named)}"]
        notes += _remove_superseded(parts, store, named, numbers)
        if missing:
            # Exact neighbours over a subset of the rows would misstate recall: keep the old figures.
            return _finish_unmeasured(
                parts,
                staged,
                out,
                started,
                notes
                + [f"recall and latency not re-measured: source dirs gone: {', '.join(missing)}"],
            )
        return finish_index(
            parts, staged, out, started, notes, progress, seconds_key="append_seconds"
        )


def set_search_params_safe(index: Any, params: dict[str, int]) -> None:
    """Apply stored search parameters (an empty dict for flat indexes)."""
    if params:
        set_search_params(index, params)


def _source_numbers(info: dict[str, Any], named: Sequence[EmbeddingDir]) -> list[int]:
    """Position of each named dir in ``info["sources"]``, adding entries for new dirs."""
    known = {entry["path"]: number for number, entry in enumerate(info["sources"])}
    numbers = []
    for d in named:
        path = str(Path(d.path).resolve())
        if path not in known:
            known[path] = len(info["sources"])
            info["sources"].append(source_entry(d))
        else:
            entry = info["sources"][known[path]]
            entry.update(
                rows=d.live_rows,
                next_id=d.next_id,
                shards=len(d.shards),
                manifest_updated=d.manifest.get("updated", d.manifest.get("created")),
            )
        numbers.append(known[path])
    return numbers


def _available_sources(
    info: dict[str, Any], named: Sequence[EmbeddingDir], numbers: Sequence[int]
) -> tuple[list[EmbeddingDir], list[int], list[str]]:
    by_number = dict(zip(numbers, named, strict=False))
    available, avail_numbers, missing = [], [], []
    for number, entry in enumerate(info["sources"]):
        d = by_number.get(number)
        if d is None and EmbeddingDir.is_embedding_dir(entry["path"]):
            d = EmbeddingDir.open(entry["path"])
            if d.fingerprint != info["fingerprint"]:
                d = None
        if d is None:
            missing.append(entry["path"])
            continue
        available.append(d)
        avail_numbers.append(number)
    return available, avail_numbers, missing


def _remove_superseded(
    parts: IndexParts, store: MetadataStore, named: Sequence[EmbeddingDir], numbers: Sequence[int]
) -> list[str]:
    """Drop indexed rows that their embedding dir has since superseded (the file changed and was
    embedded again under a new id, which this append adds): stale rows must not be found."""
    import faiss

    stale = [
        layout.make_keys(np.array(sorted(d.superseded_ids), np.int64), number)
        for d, number in zip(named, numbers, strict=False)
        if d.superseded_ids
    ]
    stale_keys = np.concatenate(stale) if stale else np.zeros(0, np.int64)
    stale_keys = stale_keys[store.contains(stale_keys)]
    if not len(stale_keys):
        return []
    try:
        removed = int(parts.index.remove_ids(faiss.IDSelectorArray(stale_keys)))
    except RuntimeError:  # HNSW and refined indexes cannot remove rows
        kind = parts.info["kind"]
        return [
            f"{len(stale_keys):,} superseded rows stay in this {kind} index (it cannot remove rows): rebuild it"
        ]
    removed_per_dir = np.bincount(
        layout.split_keys(stale_keys)[1], minlength=len(parts.info["sources"])
    )
    for number, count in enumerate(removed_per_dir):
        parts.info["sources"][number]["indexed_rows"] -= int(count)
    parts.info["removed_keys"] = sorted(
        set(parts.info.get("removed_keys", [])) | set(stale_keys.tolist())
    )
    return [f"removed {removed:,} superseded rows"]


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # metadata files never change once written: share them
    except OSError:
        shutil.copy2(src, dst)


def _finish_unmeasured(
    parts: IndexParts, staged: Path, out: Path, started: float, notes: list[str]
) -> Any:
    import faiss

    from embedsearch.index.build import BuildSummary

    info = parts.info
    faiss.write_index(parts.index, str(staged / layout.INDEX_FILE))
    info.update(
        ntotal=int(parts.index.ntotal),
        memory_bytes=(staged / layout.INDEX_FILE).stat().st_size,
        append_seconds=round(time.perf_counter() - started, 3),
        notes=notes,
    )
    layout.write_info(staged, info)
    layout.publish(staged, out)
    recall = info["recall"]
    return BuildSummary(
        out,
        info["kind"],
        info["factory"],
        info["ntotal"],
        parts.added,
        recall.get("recall_at_k") or 0.0,
        recall["target"],
        bool(recall.get("met")),
        info["search_params"],
        info["memory_bytes"],
        info["append_seconds"],
        notes,
        info,
    )
