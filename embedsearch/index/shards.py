"""Train once, add in parallel: the first two steps of an index built by many workers.

1. :func:`train_shards` draws the training and query samples in one pass (as
   :func:`~embedsearch.index.build.build_index` does), trains the index and writes the *shards
   dir* (``OUT.shards`` beside the index dir ``OUT``): ``trained.faiss`` (the trained, empty
   index), ``plan.json`` (:class:`ShardPlan`: the draft ``index.json``, which also records what
   the sources held) and ``samples.npz`` (the query samples recall is measured on).
2. :func:`add_shard`, once per worker (a torchrun rank, or ``--num-shards N --shard-index I``
   under any scheduler), adds a disjoint, contiguous slice of the rows (whole Parquet shards,
   balanced by rows) to copies of the trained index and writes ``shard-IIIII-of-NNNNN/``:
   blocks of at most ``block_bytes`` (so a worker's memory is bounded by a block, not by its
   slice), the metadata rows, and the exact neighbours of the query samples within the slice.
   A shard dir appears whole or not at all (staged, then renamed): a crashed worker leaves
   nothing that counts, and rerunning that worker alone completes the set.
3. :func:`~embedsearch.index.merge.merge_shards` merges them into the index dir.

Slices are contiguous in the order a one-process build adds rows, so the merged inverted lists
hold the same entries in the same order as a one-process build with the same trained index.

Example:
    >>> plan = train_shards(["emb/"], "indexes/big", max_memory="2G")    # doctest: +SKIP
    >>> add_shard("indexes/big", shard_index=0, num_shards=2).rows        # doctest: +SKIP
    5000000
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.atomic import staged_dir
from embedsearch.choices import Device
from embedsearch.documents import JsonDocument
from embedsearch.errors import InputError
from embedsearch.index import layout
from embedsearch.index.build import check_recall_target, plan_and_train
from embedsearch.index.centring import as_ranked, centre_of
from embedsearch.index.layout import IndexInfo
from embedsearch.index.metadata import MetadataWriter
from embedsearch.index.samples import Sample
from embedsearch.index.search_params import ivf_of, refine_of
from embedsearch.index.tune import ExactTopK
from embedsearch.progress import NullProgress, Progress
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.reader import iter_vector_batches, open_embedding_dirs
from embedsearch.store.runlock import writer_lock

TRAINED_FILE = "trained.faiss"
PLAN_FILE = "plan.json"
SAMPLES_FILE = "samples.npz"
SHARD_FILE = "shard.json"
# A worker writes its rows out in blocks of about this size: its memory is bounded by a block.
BLOCK_BYTES = 256 << 20


def shards_dir_of(out: str | Path) -> Path:
    """Where the shards of the index dir ``out`` are made: ``OUT.shards`` beside it.

    Example:
        >>> shards_dir_of("/data/indexes/big").name
        'big.shards'
    """
    out = Path(out).expanduser().resolve()
    return out.parent / f"{out.name}.shards"


def shard_name(shard_index: int, num_shards: int) -> str:
    """``shard-IIIII-of-NNNNN``.

    Example:
        >>> shard_name(3, 8)
        'shard-00003-of-00008'
    """
    return f"shard-{shard_index:05d}-of-{num_shards:05d}"


@dataclass(kw_only=True)
class ShardPlan(JsonDocument):
    """``plan.json``: the draft ``index.json`` of the trained index, and the training seconds."""

    FORMAT = "embedsearch-index-shards"
    VERSION = 1

    info: dict[str, Any]
    seed: int = 0
    train_seconds: float = 0.0
    # the sources and options it was trained with: a rerun of the same build reuses the plan
    request: dict[str, Any] = field(default_factory=dict)

    def index_info(self) -> IndexInfo:
        """A fresh :class:`IndexInfo` of the draft (each call a new object)."""
        return IndexInfo.from_json(self.info, where=PLAN_FILE)


@dataclass(kw_only=True)
class ShardRecord(JsonDocument):
    """``shard.json``: what one worker added -- written last, so its presence means complete."""

    FORMAT = "embedsearch-index-shard"
    VERSION = 1

    shard_index: int
    num_shards: int
    rows: int = 0
    blocks: list[dict[str, Any]] = field(default_factory=list)  # {"file", "rows"}
    metadata_files: list[dict[str, Any]] = field(default_factory=list)  # {"file", "dir", "rows"}
    seconds: float = 0.0


def check_shardable(index: Any, kind: str) -> None:
    """Refuse index types whose shards faiss cannot merge (HNSW graphs, refined indexes)."""
    if kind == "flat":
        return
    if ivf_of(index) is None or refine_of(index) is not None:
        raise InputError(
            f"a {kind} index cannot be built in shards (faiss cannot merge its parts): "
            "use --kind auto, ivf or ivfsq, or build it in one process"
        )


def request_of(paths: Sequence[str | Path], options: dict[str, Any]) -> dict[str, Any]:
    """What a plan was trained from: the resolved source paths and the build options.

    Example:
        >>> request_of(["/data/emb"], {"kind": "ivf", "seed": 0})
        {'sources': ['/data/emb'], 'kind': 'ivf', 'seed': 0}
    """
    return {"sources": [str(Path(p).expanduser().resolve()) for p in paths], **options}


def train_shards(
    sources: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    kind: Any = "auto",
    max_memory: str | int | None = None,
    target_recall: float = 0.95,
    k: int = 10,
    device: Device = "auto",
    seed: int = 0,
    centre: Any = "no",
    progress: Progress | None = None,
) -> ShardPlan:
    """Train the index of ``out`` once and write its shards dir (step 1, see the module doc).

    Options mean what they mean for :func:`~embedsearch.index.build.build_index`. Training again
    replaces the shards dir (shards added with other trained parameters cannot be merged).
    """
    paths = [sources] if isinstance(sources, (str, Path)) else list(sources)
    check_recall_target(target_recall, k)
    progress = progress or NullProgress()
    started = time.perf_counter()
    out = Path(out).expanduser().resolve()
    layout.check_out_dir(out, overwrite)  # refused now, not after the workers' hours
    work = shards_dir_of(out)
    options = {"kind": kind, "max_memory": max_memory, "target_recall": target_recall, "k": k}
    options |= {"device": device, "seed": seed, "centre": centre}
    with writer_lock(work.parent / f".{work.name}.lock", work):
        trained = plan_and_train(
            paths, kind, max_memory, target_recall, k, device, seed, centre, progress
        )
        check_shardable(trained.index, trained.info.kind)
        plan = ShardPlan(
            info=trained.info.to_json(),
            seed=seed,
            train_seconds=round(time.perf_counter() - started, 3),
            request=request_of(paths, options),
        )
        with staged_dir(work) as staged:
            import faiss

            faiss.write_index(trained.index, str(staged / TRAINED_FILE))
            np.savez(staged / SAMPLES_FILE, **_sample_arrays(trained.tuning, trained.held_out))
            plan.write(staged / PLAN_FILE)
            if work.exists():
                shutil.rmtree(work)
            os.rename(staged, work)
    return plan


def _sample_arrays(tuning: Sample, held_out: Sample) -> dict[str, Any]:
    arrays: dict[str, Any] = {}
    for name, sample in (("tuning", tuning), ("held_out", held_out)):
        arrays |= {f"{name}_vectors": sample.vectors, f"{name}_ids": sample.ids}
        arrays[f"{name}_dirs"] = sample.dirs
    return arrays


def read_samples(work: Path) -> tuple[Sample, Sample]:
    """The (tuning, held-out) query samples of a shards dir."""
    with np.load(work / SAMPLES_FILE) as data:
        return tuple(  # type: ignore[return-value]
            Sample(data[f"{n}_vectors"], data[f"{n}_ids"], data[f"{n}_dirs"])
            for n in ("tuning", "held_out")
        )


def read_plan(work: Path) -> ShardPlan:
    """The plan of a trained shards dir; a one-line error when the train step has not run."""
    if not (work / PLAN_FILE).is_file():
        raise InputError(
            f"{work} holds no trained index: run `embedsearch index ... --train-only` first"
        )
    return ShardPlan.read(work / PLAN_FILE)


def check_sources(out: str | Path, sources: Sequence[str | Path]) -> None:
    """Refuse a worker or merge whose embedding dirs are not those the index was trained on."""
    plan = read_plan(shards_dir_of(out))
    given = request_of(sources, {})["sources"]
    trained = [entry["path"] for entry in plan.info.get("sources", [])]
    if given != trained:
        raise InputError(
            f"the index was trained on {', '.join(trained)}; this step names "
            f"{', '.join(given)}: give the same embedding dirs in the same order"
        )


def open_planned_sources(info: IndexInfo) -> list[EmbeddingDir]:
    """The plan's embedding dirs, refused when they changed since training (other rows)."""
    dirs = open_embedding_dirs([entry.path for entry in info.sources])
    for d, entry in zip(dirs, info.sources, strict=True):
        if d.live_rows != entry.rows or d.updated != entry.manifest_updated:
            raise InputError(
                f"{d.path} changed since the index was trained ({entry.rows:,} rows then, "
                f"{d.live_rows:,} now): train again with --train-only"
            )
    return dirs


def slice_of(dirs: Sequence[EmbeddingDir], shard_index: int, num_shards: int) -> list[list[str]]:
    """The Parquet shards (per dir) of worker ``shard_index``: contiguous runs in add order,
    balanced by rows (a Parquet shard goes to the worker its middle row falls to)."""
    units = [(number, s.file, s.rows) for number, d in enumerate(dirs) for s in d.shards]
    total = max(1, sum(rows for _, _, rows in units))
    mine: list[list[str]] = [[] for _ in dirs]
    before = 0
    for number, file, rows in units:
        owner = min(num_shards - 1, int((before + rows / 2) * num_shards // total))
        if owner == shard_index:
            mine[number].append(file)
        before += rows
    return mine


def check_shard_args(shard_index: int, num_shards: int) -> None:
    """Refuse a shard index outside ``[0, num_shards)``."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise InputError(
            f"--shard-index must be in [0, {num_shards}) for --num-shards {num_shards}; "
            f"got {shard_index}"
        )


def add_shard(
    out: str | Path,
    *,
    shard_index: int,
    num_shards: int,
    block_bytes: int = BLOCK_BYTES,
    progress: Progress | None = None,
) -> ShardRecord:
    """Add worker ``shard_index``'s slice of the rows (step 2, see the module docstring).

    A complete shard is not redone (a rerun after a crash adds only the missing shards).
    """
    check_shard_args(shard_index, num_shards)
    progress = progress or NullProgress()
    work = shards_dir_of(out)
    plan = read_plan(work)
    target = work / shard_name(shard_index, num_shards)
    with writer_lock(work / f".{target.name}.lock", target):
        if (target / SHARD_FILE).is_file():
            return ShardRecord.read(target / SHARD_FILE)
        info = plan.index_info()
        dirs = open_planned_sources(info)
        files = slice_of(dirs, shard_index, num_shards)
        started = time.perf_counter()
        record = ShardRecord(shard_index=shard_index, num_shards=num_shards)
        with staged_dir(target) as staged:
            _ShardAdder(work, info, staged, record, block_bytes).run(dirs, files, progress)
            record.seconds = round(time.perf_counter() - started, 3)
            record.write(staged / SHARD_FILE)
            os.rename(staged, target)
    return record


class _ShardAdder:
    """Streams one worker's slice into blocks, metadata files and partial ground truth."""

    def __init__(
        self, work: Path, info: IndexInfo, staged: Path, record: ShardRecord, block_bytes: int
    ) -> None:
        import faiss

        self.trained = faiss.read_index(str(work / TRAINED_FILE))
        self.mean = centre_of(self.trained)
        tuning, held_out = read_samples(work)
        k = info.recall.k
        self.truths = [
            ExactTopK(as_ranked(s.vectors, self.mean), s.keys(), k) for s in (tuning, held_out)
        ]
        rows = sum(entry.rows for entry in info.sources)
        self.block_rows = max(1, block_bytes // max(1, info.estimated_bytes // max(1, rows)))
        self.staged, self.record = staged, record
        self.block: Any = None

    def run(self, dirs: Sequence[EmbeddingDir], files: list[list[str]], progress: Progress) -> None:
        total = sum(
            s.rows for d, mine in zip(dirs, files, strict=True) for s in d.shards if s.file in mine
        )
        progress.start(f"adding shard {self.record.shard_index}", total)
        for number, (d, mine) in enumerate(zip(dirs, files, strict=True)):
            if not mine:
                continue
            names = [n for n in d.column_names() if n != "embedding"]
            writer = MetadataWriter(self.staged / f"meta-{number:05d}.arrow")
            for batch, vectors in iter_vector_batches(d, names, shard_files=set(mine)):
                keys = layout.make_keys(batch.column("id").to_numpy(zero_copy_only=False), number)
                for truth in self.truths:
                    truth.add(as_ranked(vectors, self.mean), keys)
                self._add(vectors, keys)
                writer.write(keys, number, batch)
                progress.advance(batch.num_rows)
            writer.close()
            if writer.rows:
                entry = {"file": writer.path.name, "dir": number, "rows": writer.rows}
                self.record.metadata_files.append(entry)
        self._flush()
        progress.stop()
        parts = [truth.result() for truth in self.truths]
        np.savez(
            self.staged / "truth.npz",
            tuning_scores=parts[0][0],
            tuning_keys=parts[0][1],
            held_out_scores=parts[1][0],
            held_out_keys=parts[1][1],
        )

    def _add(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        import faiss

        start = 0
        while start < len(keys):
            if self.block is None:
                self.block = faiss.clone_index(self.trained)
            room = self.block_rows - int(self.block.ntotal)
            stop = start + room
            self.block.add_with_ids(np.ascontiguousarray(vectors[start:stop]), keys[start:stop])
            self.record.rows += len(keys[start:stop])
            start = stop
            if self.block.ntotal >= self.block_rows:
                self._flush()

    def _flush(self) -> None:
        import faiss

        if self.block is None or self.block.ntotal == 0:
            return
        name = f"index-{len(self.record.blocks):05d}.faiss"
        faiss.write_index(self.block, str(self.staged / name))
        self.record.blocks.append({"file": name, "rows": int(self.block.ntotal)})
        self.block = None
