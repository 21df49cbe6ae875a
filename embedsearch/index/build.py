"""``build_index``: embedding dirs in, a tuned, self-contained index dir out.

Two streaming passes over the shards: the first draws the training sample and the query
samples, the second adds rows in blocks, writes the metadata store and accumulates the exact
neighbours of the queries (:mod:`~embedsearch.index.adding`). Then the search parameters are
tuned to the recall target and the dir is published atomically
(:mod:`~embedsearch.index.finish`). Adding to an existing index is
:func:`~embedsearch.index.append.append_index`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.atomic import staged_dir
from embedsearch.choices import Device
from embedsearch.errors import InputError
from embedsearch.index import layout
from embedsearch.index.adding import IndexParts, add_rows
from embedsearch.index.budget import default_max_memory, parse_memory, require_room
from embedsearch.index.centring import (
    CENTRE_SAMPLE,
    CENTRED,
    RAW,
    CentreMode,
    concentration,
    wants_centring,
    with_centring,
)
from embedsearch.index.finish import BuildSummary, finish_index
from embedsearch.index.layout import IndexInfo, RecallInfo, SourceEntry
from embedsearch.index.opq import quicker_opq
from embedsearch.index.plan import IndexPlan, Kind, choose_index, training_rows
from embedsearch.index.samples import (
    Sample,
    draw_samples,
    iter_numbered_batches,
    query_sample_size,
)
from embedsearch.index.search_params import ivf_of
from embedsearch.progress import NullProgress, Progress
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.reader import open_embedding_dirs

DEFAULT_K = 10
DEFAULT_TARGET = 0.95


def build_index(
    sources: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    kind: Kind = "auto",
    max_memory: str | int | None = None,
    target_recall: float = DEFAULT_TARGET,
    k: int = DEFAULT_K,
    overwrite: bool = False,
    device: Device = "auto",
    seed: int = 0,
    centre: CentreMode = "no",
    progress: Progress | None = None,
) -> BuildSummary:
    """Build the index dir ``out`` from one or more embedding dirs (same model).

    ``kind``: see :data:`~embedsearch.index.plan.Kind`. ``max_memory``: index memory budget
    ("500M", "4G", bytes; default half the available RAM). ``target_recall``: recall@``k`` that
    the search parameters are tuned to on held-out sample queries. ``centre``: remove the corpus
    mean inside the index (scores become centred cosines): ``yes``, ``no`` (the default: on real
    photo embeddings it did not find copies better), or ``auto`` when the vectors are
    concentrated (:mod:`~embedsearch.index.centring`).

    Example:
        >>> s = build_index(["emb/"], "indexes/photos", max_memory="100M")   # doctest: +SKIP
        >>> s.kind, round(s.recall, 3), s.met                                  # doctest: +SKIP
        ('ivfsq', 0.962, True)
    """
    paths = [sources] if isinstance(sources, (str, Path)) else list(sources)
    check_recall_target(target_recall, k)
    out = Path(out).expanduser().resolve()
    progress = progress or NullProgress()
    with layout.index_writer_lock(out):
        layout.check_out_dir(out, overwrite)
        started = time.perf_counter()
        trained = plan_and_train(
            paths, kind, max_memory, target_recall, k, device, seed, centre, progress
        )
        dirs = trained.dirs
        parts = IndexParts(trained.index, trained.info, trained.tuning, trained.held_out, k)
        numbers = list(range(len(dirs)))
        parts.replay = lambda: (v for _, _, v in iter_numbered_batches(dirs, numbers, ["id"]))
        with staged_dir(out) as staged:
            carry_model(trained.info, dirs[0], staged)
            add_rows(parts, dirs, numbers, staged, skip=None, progress=progress)
            return finish_index(parts, staged, out, started, [trained.plan.reason], progress)


@dataclass
class Trained:
    """A planned, trained, empty index with its draft ``index.json`` and query samples."""

    index: Any
    info: IndexInfo
    plan: IndexPlan
    tuning: Sample
    held_out: Sample
    dirs: list[EmbeddingDir]


def plan_and_train(
    paths: Sequence[str | Path],
    kind: Kind,
    max_memory: str | int | None,
    target_recall: float,
    k: int,
    device: Device,
    seed: int,
    centre: CentreMode,
    progress: Progress,
) -> Trained:
    """Open the sources, choose the index, draw the samples (one pass) and train: the step a
    one-process build and a build in shards (:mod:`~embedsearch.index.shards`) share."""
    dirs = open_sources(paths)
    n = sum(d.live_rows for d in dirs)
    budget = parse_memory(max_memory) if max_memory is not None else default_max_memory()
    dim = dirs[0].dim
    require_room(n, dim, budget)
    plan = choose_index(n, dim, budget, kind)
    queries = query_sample_size(n)
    train, tuning, held_out, centring = draw_samples(
        dirs,
        [training_rows(plan, n, dim), queries, queries, CENTRE_SAMPLE],
        seed=seed,
        progress=progress,
    )
    mean = centring.vectors.mean(0) if wants_centring(centre, centring.vectors) else None
    index = _trained_index(plan, dim, train, device, progress, mean)
    del train
    info = _new_info(plan, dirs, budget, target_recall, k)
    info.similarity = RAW if mean is None else CENTRED
    info.concentration = round(concentration(centring.vectors), 4)
    return Trained(index, info, plan, tuning, held_out, dirs)


def carry_model(
    info: IndexInfo, first: EmbeddingDir, staged: Path, previous: Path | None = None
) -> None:
    """Record the model in ``info`` and carry a run dir into the index dir (``model/``).

    The run dir comes from the index dir being appended to (``previous``), else from the embedding
    dir's own carried copy or its recorded path, checked by the files' digest (older embedding
    dirs have none: their model is loaded and checked by fingerprint). Without a run dir found,
    the index records the path only, as before. Warns (``embedsearch`` logger) for an untrained
    model. See :mod:`embedsearch.encoders.locate`.
    """
    from embedsearch.encoders import logger, untrained_warning
    from embedsearch.encoders.locate import (
        ModelRecord,
        carry_run_dir,
        find_run_dir,
        is_path_spec,
        load_recorded,
    )
    from embedsearch.errors import EmbedsearchError

    manifest = first.manifest
    if info.model_trained is None:
        info.model_trained = manifest.model_trained
    if info.model_trained is False:
        logger.warning(untrained_warning(info.model))
    if not is_path_spec(info.model):
        return
    if previous is not None and info.model_copy is not None:
        record = ModelRecord.of(info, previous)
    else:
        record = ModelRecord.of(manifest, first.path)
    source = find_run_dir(record)
    if source is None and record.digest is None:
        try:  # an older dir: only loading the model can tell which candidate holds it
            source = Path(load_recorded(record).spec)
        except EmbedsearchError:
            return
    if source is None:
        return
    if source != record.carried():
        info.model = str(source.resolve())
    info.model_digest = carry_run_dir(source, staged / layout.MODEL_COPY, record.digest)
    info.model_copy = layout.MODEL_COPY


def open_sources(paths: Sequence[str | Path]) -> list[EmbeddingDir]:
    """The embedding dirs to index (one model); refuses input without rows."""
    dirs = open_embedding_dirs(paths)
    if sum(d.live_rows for d in dirs) == 0:
        given = ", ".join(str(p) for p in paths)
        raise InputError(f"no embeddings to index: {given} hold 0 rows")
    return dirs


def check_recall_target(target_recall: float, k: int) -> None:
    """Refuse a recall target outside (0, 1] and a k below 1."""
    if not 0 < target_recall <= 1:
        raise InputError(f"--target-recall must be in (0, 1], got {target_recall}")
    if k < 1:
        raise InputError(f"-k must be at least 1, got {k}")


def source_entry(d: EmbeddingDir) -> SourceEntry:
    """The ``index.json`` ``sources`` entry of one embedding dir, before its rows are added."""
    return SourceEntry(
        path=str(Path(d.path).resolve()),
        fingerprint=d.fingerprint,
        model=d.model,
        modality=d.modality,
        rows=d.live_rows,
        indexed_rows=0,
        next_id=d.next_id,
        shards=len(d.shards),
        manifest_updated=d.updated,
    )


def _new_info(
    plan: IndexPlan, dirs: Sequence[EmbeddingDir], budget: int, target: float, k: int
) -> IndexInfo:
    """``index.json`` of a new index, before rows are added and parameters tuned."""
    first = dirs[0]
    return IndexInfo(
        kind=plan.kind,
        factory=plan.factory,
        nlist=plan.nlist,
        recall=RecallInfo(k=k, target=target),
        estimated_bytes=plan.estimated_bytes,
        max_memory=budget,
        dim=first.dim,
        model=first.model,
        model_options=first.model_options,
        fingerprint=first.fingerprint,
        modality=first.modality,
        sources=[source_entry(d) for d in dirs],
    )


def _trained_index(
    plan: IndexPlan,
    dim: int,
    train: Sample,
    device: Device,
    progress: Progress,
    mean: np.ndarray | None = None,
) -> Any:
    import faiss

    from embedsearch.index.gpu import train_on_device, use_gpu

    try:
        index = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:  # a faiss bug or an unsupported combination: name the factory
        raise InputError(f"faiss cannot build {plan.factory!r} for dim {dim}: {e}") from e
    if mean is not None:
        index = with_centring(index, mean)
    gpu = use_gpu(device)
    if not index.is_trained:
        ivf = ivf_of(index)
        codes: Any = faiss.downcast_index(ivf) if ivf is not None else None
        if hasattr(codes, "pq"):
            # PQ k-means on 2-4-d subspaces converges on few points and iterations; faiss's
            # defaults (256 points a centroid, 25 iterations) take minutes on 2 cores.
            codes.pq.cp.max_points_per_centroid = 64
            codes.pq.cp.niter = 15
        progress.start(f"training {plan.factory} on {len(train.vectors):,} rows", None)
        with quicker_opq(index, train.vectors):
            train_on_device(index, np.ascontiguousarray(train.vectors), gpu)
        progress.stop()
    return index
