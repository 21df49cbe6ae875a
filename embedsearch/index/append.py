"""``append_index``: add new embedding dirs, or new rows of indexed ones, without retraining.

Rows whose key is already in the index's metadata store are skipped, so appending the
same dir twice adds nothing. The search parameters are re-tuned (cheap: no training) and
recall re-measured against exact search over every source, when all sources are still
on disk; otherwise the previous figures are kept and a note says so. The index keeps its
kind and memory budget: options that would change them belong to a rebuild.

Example:
    >>> append_index(["emb/new"], "indexes/photos").added   # doctest: +SKIP
    1200
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.atomic import link_or_copy, staged_dir
from embedsearch.choices import Device
from embedsearch.index import layout
from embedsearch.index.adding import IndexParts, add_rows
from embedsearch.index.build import (
    DEFAULT_K,
    DEFAULT_TARGET,
    carry_model,
    check_recall_target,
    open_sources,
    source_entry,
)
from embedsearch.index.exclusions import (
    REBUILD_SHARE,
    read_excluded_keys,
    searching_with,
    selector_of,
    write_excluded_keys,
)
from embedsearch.index.finish import BuildSummary, finish_index, write_and_publish
from embedsearch.index.layout import IndexInfo
from embedsearch.index.metadata import MetadataStore
from embedsearch.index.samples import draw_samples, query_sample_size
from embedsearch.index.search_params import apply_search_params
from embedsearch.progress import NullProgress, Progress
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.reader import require_same_model


def append_index(
    sources: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    target_recall: float = DEFAULT_TARGET,
    k: int = DEFAULT_K,
    device: Device = "auto",
    seed: int = 0,
    progress: Progress | None = None,
) -> BuildSummary:
    """Add the rows of ``sources`` that the index dir ``out`` lacks (see the module docstring).

    ``device`` is accepted for symmetry with :func:`build_index`; appending trains nothing.
    The index dir's run lock is held throughout: a second append (or any writer) of the same
    dir is refused with the holder named, where it used to publish over the first's rows.
    """
    paths = [sources] if isinstance(sources, (str, Path)) else list(sources)
    check_recall_target(target_recall, k)
    out = Path(out).expanduser().resolve()
    with layout.index_writer_lock(out):
        return _append_locked(paths, out, target_recall, k, seed, progress)


def _append_locked(
    paths: list[str | Path],
    out: Path,
    target_recall: float,
    k: int,
    seed: int,
    progress: Progress | None,
) -> BuildSummary:
    progress = progress or NullProgress()
    started = time.perf_counter()
    info = layout.read_info(out)
    named = open_sources(paths)
    require_same_model(named, fingerprint=info.fingerprint, model=info.model, dim=info.dim)
    numbers = _source_numbers(info, named)
    available, avail_numbers, missing = _available_sources(info, named, numbers)
    index = layout.read_index(out, info, mmap=False)  # whole (rows are added); damage refused
    excluded = read_excluded_keys(out, info)
    apply_search_params(index, info.search_params)
    store = MetadataStore(out, info.metadata_file_names())
    queries = query_sample_size(sum(d.live_rows for d in available))
    _, tuning, held_out = draw_samples(
        available, [0, queries, queries], numbers=avail_numbers, seed=seed + 1, progress=progress
    )
    info.recall.target, info.recall.k = target_recall, k
    parts = IndexParts(index=index, info=info, tuning=tuning, held_out=held_out, k=k)
    with staged_dir(out) as staged:
        for name in info.metadata_file_names():
            link_or_copy(out / name, staged / name)  # metadata files never change
        carry_model(info, named[0], staged, previous=out)
        add_rows(parts, available, avail_numbers, staged, store, progress, add_to=set(numbers))
        notes = [f"appended {parts.added:,} rows from {', '.join(str(d.path) for d in named)}"]
        removed_notes, excluded = _remove_dead(parts, store, available, avail_numbers, excluded)
        notes += removed_notes
        write_excluded_keys(staged, info, excluded)
        if missing:
            # Exact neighbours over a subset of the rows would misstate recall: keep the old figures
            gone = f"recall and latency not re-measured: source dirs gone: {', '.join(missing)}"
            return write_and_publish(parts, staged, out, started, [*notes, gone], appending=True)
        share = len(excluded) / max(int(index.ntotal), 1)
        with searching_with(index, selector_of(excluded), share):  # tuned as queries will search
            return finish_index(parts, staged, out, started, notes, progress, appending=True)


def _source_numbers(info: IndexInfo, named: Sequence[EmbeddingDir]) -> list[int]:
    """Position of each named dir in ``info.sources``, adding entries for new dirs."""
    known = {entry.path: number for number, entry in enumerate(info.sources)}
    numbers = []
    for d in named:
        path = str(Path(d.path).resolve())
        if path not in known:
            known[path] = len(info.sources)
            info.sources.append(source_entry(d))
        else:
            entry = info.sources[known[path]]
            entry.rows = d.live_rows
            entry.next_id = d.next_id
            entry.shards = len(d.shards)
            entry.manifest_updated = d.updated
        numbers.append(known[path])
    return numbers


def _available_sources(
    info: IndexInfo, named: Sequence[EmbeddingDir], numbers: Sequence[int]
) -> tuple[list[EmbeddingDir], list[int], list[str]]:
    """The source dirs still on disk (with their numbers), and the paths of those gone."""
    by_number = dict(zip(numbers, named, strict=True))
    available, avail_numbers, missing = [], [], []
    for number, entry in enumerate(info.sources):
        d = by_number.get(number)
        if d is None and EmbeddingDir.is_embedding_dir(entry.path):
            d = EmbeddingDir.open(entry.path)
            if d.fingerprint != info.fingerprint:
                d = None
        if d is None:
            missing.append(entry.path)
            continue
        available.append(d)
        avail_numbers.append(number)
    return available, avail_numbers, missing


def _remove_dead(
    parts: IndexParts,
    store: MetadataStore,
    dirs: Sequence[EmbeddingDir],
    numbers: Sequence[int],
    excluded: np.ndarray,
) -> tuple[list[str], np.ndarray]:
    """Take out the indexed rows that their embedding dir has since superseded (the file changed
    and was embedded again under a new id) or deleted (the input is gone): dead rows must not be
    found. Removed with faiss ``remove_ids``; kinds that cannot remove rows (HNSW, refined) add
    them to the ``excluded`` keys that searches skip. Returns the notes and the excluded keys."""
    import faiss

    info = parts.info
    dead = [
        layout.make_keys(np.array(sorted(d.dead_ids), np.int64), number)
        for d, number in zip(dirs, numbers, strict=True)
        if d.dead_ids
    ]
    keys = np.concatenate(dead) if dead else np.zeros(0, np.int64)
    keys = keys[store.contains(keys)]
    keys = np.setdiff1d(keys, np.union1d(np.array(info.removed_keys, np.int64), excluded))
    if not len(keys):
        return _exclusion_notes(info, excluded, parts.index), excluded
    try:
        removed = int(parts.index.remove_ids(faiss.IDSelectorArray(keys)))
    except RuntimeError:  # HNSW and refined indexes cannot remove rows: skip them at search time
        removed = 0
    gone_per_dir = np.bincount(layout.split_keys(keys)[1], minlength=len(info.sources))
    for number, count in enumerate(gone_per_dir):
        info.sources[number].indexed_rows -= int(count)
    if removed:
        info.removed_keys = sorted(set(info.removed_keys) | set(keys.tolist()))
        return [f"removed {removed:,} deleted or superseded rows"], excluded
    excluded = np.union1d(excluded, keys)
    return _exclusion_notes(info, excluded, parts.index), excluded


def _exclusion_notes(info: IndexInfo, excluded: np.ndarray, index: Any) -> list[str]:
    """What the excluded rows cost, and the advice to rebuild once they are many."""
    if not len(excluded):
        return []
    share = len(excluded) / max(int(index.ntotal), 1)
    note = (
        f"{len(excluded):,} deleted or superseded rows ({share:.1%}) stay in this {info.kind} "
        "index, which cannot remove rows: every search skips them"
    )
    if share > REBUILD_SHARE:
        note += (
            f"; past {REBUILD_SHARE:.0%} they cost recall and speed: rebuild it with "
            "`embedsearch index ... --overwrite`"
        )
    return [note]
