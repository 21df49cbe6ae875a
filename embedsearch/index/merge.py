"""Merge the shards of an index built by many workers into its index dir (step 3 of
:mod:`~embedsearch.index.shards`).

The trained index receives every shard's blocks in shard order: in memory when they fit
``--max-memory`` (faiss ``merge_from``), otherwise into an on-disk index (faiss
``OnDiskInvertedLists.merge_from_multiple``, as faiss's ``contrib/ondisk.py`` ``merge_ondisk``):
``index.ivfdata`` beside a small ``index.faiss``, memory-mapped by every reader
(:mod:`~embedsearch.index.storage`). On disk, the blocks are memory-mapped too, so the merge
holds little more than the list table in memory. The exact neighbours of the query samples are
the best of each shard's; recall is measured on the merged index, and tuning, ``index.json``
and the atomic publication are those of a one-process build (:mod:`~embedsearch.index.finish`).

Example:
    >>> merge_shards("indexes/big").info.storage   # doctest: +SKIP
    'ondisk'
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.atomic import link_or_copy, staged_dir
from embedsearch.errors import InputError
from embedsearch.index import layout, storage
from embedsearch.index.adding import IndexParts
from embedsearch.index.build import carry_model
from embedsearch.index.finish import BuildSummary, finish_index
from embedsearch.index.layout import IndexInfo, IvfDataEntry, MetadataFileEntry
from embedsearch.index.samples import Sample
from embedsearch.index.search_params import ivf_of
from embedsearch.index.shards import (
    SHARD_FILE,
    TRAINED_FILE,
    ShardPlan,
    ShardRecord,
    open_planned_sources,
    read_plan,
    read_samples,
    shard_name,
    shards_dir_of,
)
from embedsearch.index.tune import drop_own
from embedsearch.progress import NullProgress, Progress

_SHARD_DIR = re.compile(r"^shard-(\d{5})-of-(\d{5})$")


def merge_shards(
    out: str | Path,
    *,
    overwrite: bool = False,
    keep_shards: bool = False,
    progress: Progress | None = None,
) -> BuildSummary:
    """Merge ``OUT.shards`` into the index dir ``out``, tune and publish it; the shards dir is
    removed once the index is published (``keep_shards`` keeps it)."""
    progress = progress or NullProgress()
    out = Path(out).expanduser().resolve()
    work = shards_dir_of(out)
    plan = read_plan(work)
    with layout.index_writer_lock(out):
        layout.check_out_dir(out, overwrite)
        records = complete_shards(work)
        info = plan.index_info()
        dirs = open_planned_sources(info)  # rows that changed since training are refused
        started = time.perf_counter()
        tuning, held_out = read_samples(work)
        with staged_dir(out) as staged:
            carry_model(info, dirs[0], staged)  # as a one-process build: queries from anywhere
            progress.start(f"merging {len(records)} shards", None)
            index = _merged_index(work, records, info, staged)
            _place_metadata(work, records, info, staged)
            progress.stop()
            k = info.recall.k
            parts = IndexParts(index=index, info=info, tuning=tuning, held_out=held_out, k=k)
            parts.added = sum(r.rows for r in records)
            parts.truth = [
                merged_truth(work, records, sample, name, k)
                for sample, name in ((tuning, "tuning"), (held_out, "held_out"))
            ]
            _record_steps(info, plan, records, time.perf_counter() - started)
            # build_seconds: training + the slowest worker + this merge (a fully parallel run)
            offset = plan.train_seconds + max(r.seconds for r in records)
            where = "on disk" if info.storage == storage.ONDISK else "in memory"
            notes = [f"built by {len(records)} workers, merged {where}"]
            summary = finish_index(parts, staged, out, started - offset, notes, progress)
    if not keep_shards:
        shutil.rmtree(work, ignore_errors=True)
    return summary


def complete_shards(work: Path) -> list[ShardRecord]:
    """The shards of one ``--num-shards``, in order; a one-line error naming any missing."""
    found: dict[int, dict[int, Path]] = {}
    for entry in work.iterdir():
        match = _SHARD_DIR.match(entry.name)
        if match and (entry / SHARD_FILE).is_file():
            found.setdefault(int(match[2]), {})[int(match[1])] = entry
    if not found:
        raise InputError(f"{work} holds no finished shard: run the workers first")
    if len(found) > 1:
        counts = ", ".join(str(n) for n in sorted(found))
        raise InputError(f"{work} holds shards of different --num-shards ({counts}): train again")
    num_shards, present = next(iter(found.items()))
    missing = sorted(set(range(num_shards)) - set(present))
    if missing:
        listed = ", ".join(str(i) for i in missing)
        raise InputError(
            f"shards {listed} of {num_shards} are not finished: rerun those workers "
            f"(`embedsearch index ... --num-shards {num_shards} --shard-index I`), then merge"
        )
    return [ShardRecord.read(present[i] / SHARD_FILE) for i in range(num_shards)]


def _block_paths(work: Path, records: list[ShardRecord]) -> list[Path]:
    return [
        work / shard_name(r.shard_index, r.num_shards) / block["file"]
        for r in records
        for block in r.blocks
    ]


def _merged_index(work: Path, records: list[ShardRecord], info: IndexInfo, staged: Path) -> Any:
    import faiss

    index = faiss.read_index(str(work / TRAINED_FILE))
    paths = _block_paths(work, records)
    size = sum(storage.file_size(p) for p in paths)
    ivf = ivf_of(index)
    if ivf is None or size <= info.max_memory:
        info.storage = storage.MEMORY
        for path in paths:  # read whole: merge_from empties the block it takes from
            block = faiss.read_index(str(path))
            target, source = (index, block) if ivf is None else (ivf, ivf_of(block))
            target.merge_from(source, 0)
            del block, source
    else:
        blocks = [storage.read_mapped(path) for path in paths]
        data = staged / storage.IVF_DATA_FILE
        lists = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(data))
        pointers = faiss.InvertedListsPtrVector()  # type: ignore[attr-defined]  # not in stubs
        for block in blocks:
            pointers.push_back(ivf_of(block).invlists)
        lists.merge_from_multiple(pointers.data(), pointers.size(), False, False)
        ivf.replace_invlists(lists, True)
        lists.this.disown()  # type: ignore[attr-defined]  # the index owns it now
        del blocks
        info.storage = storage.ONDISK
        info.ivf_data = IvfDataEntry(file=data.name, bytes=0, sha256="", written_as=str(data))
    _set_ntotal(index, sum(r.rows for r in records))
    return index


def _set_ntotal(index: Any, ntotal: int) -> None:
    """Set ``ntotal`` on every wrapper down to the IVF (merging lists does not)."""
    import faiss

    node = faiss.downcast_index(index)
    while True:
        node.ntotal = ntotal
        if not isinstance(node, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
            return
        node = faiss.downcast_index(node.index)


def _place_metadata(work: Path, records: list[ShardRecord], info: IndexInfo, staged: Path) -> None:
    """Link every shard's metadata files into the index dir, in shard order."""
    for record in records:
        folder = work / shard_name(record.shard_index, record.num_shards)
        for entry in record.metadata_files:
            name = layout.META_TEMPLATE.format(len(info.metadata_files))
            link_or_copy(folder / entry["file"], staged / name)
            info.metadata_files.append(
                MetadataFileEntry(file=name, dir=int(entry["dir"]), rows=int(entry["rows"]))
            )
            info.sources[int(entry["dir"])].indexed_rows += int(entry["rows"])


def merged_truth(
    work: Path, records: list[ShardRecord], sample: Sample, name: str, k: int
) -> np.ndarray:
    """Exact top-``k`` keys of a query sample over all shards (each query's own key dropped)."""
    import faiss

    heap = faiss.ResultHeap(len(sample.vectors), k + 1, keep_max=True)
    for record in records:
        path = work / shard_name(record.shard_index, record.num_shards) / "truth.npz"
        with np.load(path) as part:
            scores = np.ascontiguousarray(part[f"{name}_scores"], np.float32)
            heap.add_result(scores, np.ascontiguousarray(part[f"{name}_keys"], np.int64))
    heap.finalize()
    return drop_own(heap.I, sample.keys(), k)


def _record_steps(
    info: IndexInfo, plan: ShardPlan, records: list[ShardRecord], merge_seconds: float
) -> None:
    info.shards = {
        "num_shards": len(records),
        "train_seconds": plan.train_seconds,
        "shard_seconds": [r.seconds for r in records],
        "merge_seconds": round(merge_seconds, 3),
    }
