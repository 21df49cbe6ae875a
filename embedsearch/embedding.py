"""``embed``: turn an image or text corpus into Parquet embedding shards (the `embed` command).

Streaming end to end: items are enumerated lazily, decoded in DataLoader workers,
embedded in batches and written as shards fill, so memory is bounded by batch and
shard size, not by the corpus. Reruns embed only what is missing (matched by source
and content hash); a changed file gets a new id and its old row is superseded, and the rows of
inputs that are gone are recorded as deleted (the ``prune`` policy: :mod:`embedsearch.data.gone`).

Ids are ``base + item index`` where ``base`` is the dir's ``next_id`` when the run
starts: reproducible, unique across ranks (each rank takes every N-th item), and
never reused (``next_id`` moves past every id a run may use).

A run holds the dir's run lock from start to end (:mod:`embedsearch.store.runlock`): a second
``embed`` into the same dir is refused with the holder named, while the ranks of one torchrun
launch (or the slices of one ``--num-shards`` job) share it. Shards that fail their checksum are
unlisted at the start, so the rerun re-embeds what they held.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from embedsearch.choices import Device, Modality, Precision
from embedsearch.data.batches import Batch, ImageBatches, identity_collate, text_batches
from embedsearch.data.gone import Gone, find_gone
from embedsearch.data.sources import RankSlice, Source, open_source
from embedsearch.data.workers import default_workers, worker_init
from embedsearch.encoders.locate import (
    carry_run_dir,
    is_path_spec,
    is_run_dir,
    recorded_spec,
    run_dir_digest,
)
from embedsearch.errors import InputError, ModelError
from embedsearch.progress import NullProgress, Progress
from embedsearch.store.embedding_dir import ERRORS, MANIFEST, META_DIR, EmbeddingDir
from embedsearch.store.reader import KnownRows, load_known_rows
from embedsearch.store.writer import DEFAULT_COMMIT_SECONDS, DEFAULT_SHARD_ROWS, ShardWriter

if TYPE_CHECKING:
    from embedsearch.encoders.base import Encoder

# Where an embedding dir carries the run dir that made it (hidden: readers see only shards).
MODEL_COPY = f"{META_DIR}/model"


@dataclass
class EmbedSummary:
    """What one ``embed`` run did (per rank)."""

    out: Path
    embedded: int = 0
    already_present: int = 0
    failed: int = 0
    superseded: int = 0
    seconds: float = 0.0
    shards_written: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    repaired_shards: list[str] = field(default_factory=list)
    gone: Gone = field(default_factory=Gone)  # rows whose input is gone (deleted when recorded)
    rank: int = 0
    world_size: int = 1

    @property
    def items_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def distributed_slice(num_shards: int | None, shard_index: int | None) -> tuple[int, int]:
    """(rank, world size) from ``--num-shards/--shard-index`` or torchrun's environment."""
    if num_shards is not None or shard_index is not None:
        world, rank = int(num_shards or 1), int(shard_index or 0)
    else:
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world < 1 or not 0 <= rank < world:
        raise InputError(
            f"--shard-index must be in [0, {world}) for --num-shards {world}; got {rank}"
        )
    return rank, world


def _all_ranks_have_read(world: int) -> bool:
    """Under torchrun, wait until every rank has read the dir's ``next_id`` and rows.

    Each rank numbers its rows from the ``next_id`` it read; a rank that read it after another
    rank's first commit would start past that run's ids (seen: rank 0 numbering from 20 in a
    20-image run), and the union would differ from a single-process run. Returns whether this
    call joined a process group (gloo) that the caller must destroy.
    """
    if world < 2 or "MASTER_ADDR" not in os.environ:
        return False
    import torch.distributed as dist

    if not dist.is_available():
        return False
    joined = not dist.is_initialized()
    if joined:
        dist.init_process_group("gloo")
    dist.barrier()
    return joined


def job_key(num_shards: int | None, world: int, source: str | Path, model: str) -> str | None:
    """The key the processes of one job share the run lock under; None for a lone run.

    Example:
        >>> job_key(None, 1, "photos", "tiny") is None
        True
        >>> job_key(4, 4, "/data/photos", "tiny")
        'slices:4:/data/photos:tiny'
    """
    if num_shards is not None:
        return f"slices:{num_shards}:{Path(source).resolve()}:{model}"
    if world > 1:
        launch = ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
        return "torchrun:" + ":".join(os.environ.get(name, "") for name in launch)
    return None


def record_gone(src: Source, known: KnownRows, emb_dir: EmbeddingDir, prune: bool | None) -> Gone:
    """Find the stored rows whose input ``src`` no longer lists; record them as deleted when the
    ``prune`` policy allows (and forget them in ``known``, so nothing supersedes them)."""
    if not known.ids_by_source:
        return Gone()
    gone = find_gone(src, known.ids_by_source, prune)
    if gone.recorded:
        emb_dir.record_deleted(gone.ids)
        for name in gone.sources:
            known.ids_by_source.pop(name, None)
    return gone


def embed(
    source: str | Path,
    *,
    model: str,
    out: str | Path,
    modality: Modality | None = None,
    text_col: str | None = None,
    image_col: str | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    device: Device = "auto",
    precision: Precision = "fp32",
    image_size: int | None = None,
    flip_average: bool = False,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    commit_seconds: float | None = DEFAULT_COMMIT_SECONDS,
    num_shards: int | None = None,
    shard_index: int | None = None,
    prune: bool | None = None,
    progress: Progress | None = None,
) -> EmbedSummary:
    """Embed ``source`` (image folder, text file or table) with ``model`` into ``out``.

    ``flip_average`` embeds each image and its mirror image and averages them: mirror-invariant
    vectors for copy detection (``dedup``), at twice the model work. ``commit_seconds``: commit
    at least this often (a crash loses at most that much work); None: only full shards.
    ``prune``: record the rows of inputs that are gone as deleted -- None: for image folders only
    (:mod:`embedsearch.data.gone`).

    Example:
        >>> s = embed("photos/", model="simclr:resnet18", out="emb/")  # doctest: +SKIP
        >>> s.embedded, s.failed                                       # doctest: +SKIP
        (2000, 3)
    """
    from embedsearch.encoders import load_encoder

    started = time.perf_counter()
    progress = progress or NullProgress()
    if batch_size < 1 or shard_rows < 1:
        raise InputError("--batch-size and --shard-rows must be at least 1")
    if commit_seconds is not None and not commit_seconds > 0:
        raise InputError(f"--commit-seconds must be positive; got {commit_seconds}")
    rank, world = distributed_slice(num_shards, shard_index)
    src = open_source(source, modality, text_col, image_col)
    encoder = load_encoder(model, image_size=image_size, flip_average=flip_average)
    if src.modality not in encoder.modalities:
        raise ModelError(
            f"model {model} cannot embed {src.modality} "
            f"(it embeds: {', '.join(sorted(encoder.modalities))})"
        )
    encoder.to(device, precision)
    emb_dir = EmbeddingDir.create_or_open(
        out,
        model=recorded_spec(model),
        model_options=encoder.options,
        fingerprint=encoder.fingerprint,
        modality=src.modality,
        dim=encoder.dim,
        source=src.description,
        preprocess=encoder.config.preprocess_cfg,
    )
    summary = EmbedSummary(Path(out), rank=rank, world_size=world)
    with emb_dir.writing(job_key(num_shards, world, source, encoder.spec)):
        record_model(emb_dir, model, encoder.trained)
        summary.repaired_shards = emb_dir.drop_damaged_shards()
        emb_dir.remove_debris()
        total = src.count()
        if total == 0:
            raise InputError(_nothing_message(src))
        base = emb_dir.next_id
        known = load_known_rows(emb_dir)
        if rank == 0:  # one process lists the source again; the others embed
            summary.gone = record_gone(src, known, emb_dir, prune)
        joined = _all_ranks_have_read(world) if num_shards is None else False
        writer = ShardWriter(
            emb_dir, base + total, shard_rows=shard_rows, commit_seconds=commit_seconds
        )
        mine = RankSlice(src, rank, world)
        progress.start(
            f"embed {src.modality}s" + (f" (rank {rank}/{world})" if world > 1 else ""),
            len(range(rank, total, world)),
        )
        try:
            for batch in _batches(src, mine, known, encoder, batch_size, workers):
                _write_batch(batch, encoder, base, writer, summary)
                progress.advance(batch.size)
            writer.close()
        except BaseException:
            writer.abort()  # committed shards stay; a rerun embeds the rest
            raise
        finally:
            progress.stop()
            if joined:
                import torch.distributed as dist

                dist.destroy_process_group()
    summary.shards_written = writer.written_shards
    summary.seconds = time.perf_counter() - started
    if summary.embedded == 0 and summary.already_present == 0 and summary.failed > 0:
        first = summary.failures[0]
        raise InputError(
            f"nothing could be embedded: {summary.failed} input(s) failed, "
            f"e.g. {first[0]}: {first[1]} "
            f"(all listed in {Path(out) / ERRORS})"
        )
    return summary


def record_model(emb_dir: EmbeddingDir, spec: str, trained: bool) -> None:
    """Record the model robustly in ``emb_dir``'s manifest; carry a run dir into the dir.

    The manifest gets the resolved spec (an absolute run dir path, never the path as typed),
    whether the weights are trained, and for a run dir its files' digest and a copy under
    ``.embedsearch/model`` (hard links where possible): the dir's model is found again from any
    working dir and after a move (:mod:`embedsearch.encoders.locate`). Run under the dir's run
    lock; the manifest is rewritten under its commit lock. Example:

        >>> record_model(EmbeddingDir.open("emb"), "runs/a", True)   # doctest: +SKIP
    """
    recorded = recorded_spec(spec)
    copy = digest = None
    if is_path_spec(recorded):
        digest = run_dir_digest(recorded)
        copy = MODEL_COPY
        carried = emb_dir.path / MODEL_COPY
        if not is_run_dir(carried) or run_dir_digest(carried) != digest:
            carry_run_dir(recorded, carried, digest)
    with emb_dir.locked():
        m = emb_dir.manifest
        record = (recorded, trained, copy, digest)
        if (m.model, m.model_trained, m.model_copy, m.model_digest) != record:
            m.model, m.model_trained, m.model_copy, m.model_digest = record
            m.write(emb_dir.path / MANIFEST)


def _batches(
    src: Source,
    items: RankSlice,
    known: KnownRows,
    encoder: Encoder,
    batch_size: int,
    workers: int | None,
) -> Iterator[Batch]:
    if src.modality == "text":
        return text_batches(items, known, batch_size)
    import torch

    device_type = encoder.device.type
    workers = default_workers(device_type) if workers is None else workers
    dataset = ImageBatches(items, known, encoder.preprocess, batch_size)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        collate_fn=identity_collate,
        pin_memory=device_type == "cuda",
        prefetch_factor=4 if workers else None,
        worker_init_fn=worker_init if workers else None,
    )
    return iter(loader)


def _write_batch(
    batch: Batch, encoder: Encoder, base: int, writer: ShardWriter, summary: EmbedSummary
) -> None:
    if batch.indices:
        vectors = (
            encoder.embed_images(batch.pixels)
            if batch.pixels is not None
            else encoder.embed_texts(batch.texts)
        )
        metadata = {key: [m.get(key) for m in batch.metadata] for key in batch.metadata[0]}
        writer.add(
            [base + i for i in batch.indices],
            batch.sources,
            batch.hashes,
            vectors,
            metadata,
            batch.superseded,
        )
    for source, reason in batch.failures:
        writer.add_failure(source, reason)
    summary.embedded += len(batch.indices)
    summary.failed += len(batch.failures)
    summary.already_present += batch.skipped
    summary.superseded += len(batch.superseded)
    if len(summary.failures) < 1000:
        summary.failures.extend(batch.failures[: 1000 - len(summary.failures)])


def _nothing_message(src: Source) -> str:
    if src.modality == "image" and Path(src.description).is_dir():
        from embedsearch.data.decode import IMAGE_EXTENSIONS

        looked_for = ", ".join(sorted(IMAGE_EXTENSIONS))
        return f"no images found in {src.description} (looked for {looked_for})"
    return f"no inputs found in {src.description}"


__all__ = [
    "EmbedSummary",
    "distributed_slice",
    "embed",
    "job_key",
    "load_known_rows",
    "record_model",
]
