"""Streaming reads of embedding dirs: blocks of ``(ids, vectors)`` or whole record batches.

Memory is bounded by ``batch_rows``, never by the corpus. Dead rows -- superseded (a file
that changed and was embedded again) or deleted (an input that is gone) -- are skipped unless
``live_only=False``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embedsearch.errors import FormatError, InputError, MismatchError
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.integrity import bad_rows, verify_shard


def column_to_numpy(array: pa.Array, dtype: type) -> np.ndarray:
    """A numpy view of a null-free primitive column, or a converted copy.

    ``Array.to_numpy`` imports pandas on first use (~50 MiB of RSS held for the whole run);
    reading the data buffer does not.

    Example:
        >>> column_to_numpy(pa.array(np.arange(10)).slice(3, 4), np.int64).tolist()
        [3, 4, 5, 6]
        >>> column_to_numpy(pa.array([1.5, None]), np.float32).dtype
        dtype('float32')
    """
    if array.null_count or array.type != pa.from_numpy_dtype(np.dtype(dtype)):
        return array.to_numpy(zero_copy_only=False).astype(dtype)
    data: np.ndarray = np.frombuffer(array.buffers()[1], dtype, array.offset + len(array))
    return data[array.offset :]


def embedding_matrix(column: pa.Array | pa.ChunkedArray, dim: int) -> np.ndarray:
    """``fixed_size_list<float32>[dim]`` column -> (n, dim) float32 (zero-copy when possible).

    A column of another width than ``dim`` (a manifest that lies about the dim) is a
    :class:`FormatError`, not a reshape error.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    width = getattr(column.type, "list_size", None)
    flat = column_to_numpy(column.flatten(), np.float32)
    if (width is not None and width != dim) or flat.size != len(column) * dim:
        raise FormatError(
            f"stored vectors have {width or 'varying'} values each, but the manifest says "
            f"dim {dim}: the embedding dir is damaged; re-embed it"
        )
    return flat.reshape(-1, dim)


# Parquet reads go through a 1 MiB buffered stream instead of pre-buffering whole column chunks:
# old shards hold one 100k-row group, which pre-buffering held whole per read, for no speed
# (``benchmarks/RESULTS.md``, dedup "Scale").
READ_BUFFER = 1 << 20


def iter_batches(
    emb_dir: EmbeddingDir | str | Path,
    columns: Sequence[str] | None = None,
    batch_rows: int = 65_536,
    live_only: bool = True,
    frugal: bool = False,
    shard_files: Collection[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of the committed shards, in shard order.

    ``shard_files``: only these shards (by manifest file name), e.g. one worker's slice of an
    index built by many workers.

    ``frugal``: decode on this thread and hand Arrow's freed pages back after every batch, for
    passes whose peak memory is held to the vectors' size (``dedup``; see RESULTS.md, no slower).

    Example:
        >>> for batch in iter_batches("emb/", columns=["id", "source"]):   # doctest: +SKIP
        ...     print(batch.num_rows)
    """
    d = emb_dir if isinstance(emb_dir, EmbeddingDir) else EmbeddingDir.open(emb_dir)
    # pa.array() imports pandas (~50 MiB of RSS) on first use: only pay for it when rows are dead
    dead_ids = d.dead_ids if live_only else set()
    dead = pa.array(sorted(dead_ids), pa.int64()) if dead_ids else None
    wanted = list(columns) if columns is not None else None
    if wanted is not None and dead is not None and "id" not in wanted:
        wanted = ["id", *wanted]
    pool = pa.default_memory_pool()
    for info in d.shards:
        if shard_files is not None and info.file not in shard_files:
            continue
        path = d.path / info.file
        verify_shard(path, info.sha256, d.path)  # once per pass: damage is refused by name
        shard = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
        for batch in shard.iter_batches(
            batch_size=batch_rows, columns=wanted, use_threads=not frugal
        ):
            if dead is not None:
                batch = batch.filter(pc.invert(pc.is_in(batch.column("id"), value_set=dead)))
            if columns is not None and wanted != list(columns):
                batch = batch.select(list(columns))
            if batch.num_rows:
                yield batch
            if frugal:
                pool.release_unused()


def iter_vector_batches(
    emb_dir: EmbeddingDir | str | Path,
    columns: Sequence[str] = ("id",),
    batch_rows: int = 65_536,
    live_only: bool = True,
    frugal: bool = False,
    shard_files: Collection[str] | None = None,
) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """``(record batch of columns, vectors (n, dim) float32)``; damaged vectors are refused.

    Refused: NaN/inf rows, and in normalised dirs rows whose norm is off 1 (what flipped bits
    in a shard that passed no checksum would look like).

    The one place that turns stored embeddings into arrays, so every reader (index, dedup,
    Python) refuses the same non-finite rows with the same message.

    Example:
        >>> for batch, vectors in iter_vector_batches("emb/", ["id", "source"]):  # doctest: +SKIP
        ...     print(batch.num_rows, vectors.shape)
    """
    d = emb_dir if isinstance(emb_dir, EmbeddingDir) else EmbeddingDir.open(emb_dir)
    wanted = list(dict.fromkeys([*columns, "embedding"]))
    for batch in iter_batches(d, wanted, batch_rows, live_only, frugal, shard_files):
        vectors = embedding_matrix(batch.column("embedding"), d.dim)
        bad = bad_rows(vectors, d.manifest.normalized)
        if bad.size:
            where = (
                f"ids {batch.column('id').to_numpy(zero_copy_only=False)[bad[:5]].tolist()}"
                if "id" in batch.column_names
                else f"{bad.size} rows"
            )
            raise FormatError(
                f"{d.path} holds NaN, infinite or not unit-length vectors ({where}): "
                "re-embed those inputs"
            )
        yield batch, vectors


def iter_vectors(
    emb_dir: EmbeddingDir | str | Path, batch_rows: int = 65_536, live_only: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of ``(ids int64 (n,), vectors float32 (n, dim))`` from one embedding dir.

    Example:
        >>> for ids, vectors in iter_vectors("emb/"):   # doctest: +SKIP
        ...     index.add_with_ids(vectors, ids)
    """
    for batch, vectors in iter_vector_batches(emb_dir, ["id"], batch_rows, live_only):
        ids = batch.column("id").to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        yield ids, vectors


def require_same_model(
    dirs: Sequence[EmbeddingDir],
    *,
    fingerprint: str | None = None,
    model: str | None = None,
    dim: int | None = None,
) -> None:
    """Refuse dirs whose vectors come from another model (fingerprint) or dim.

    Compared with the given ``fingerprint``/``dim`` (e.g. an index's) or else with the
    first dir's. The one compatibility rule for everything that mixes stored vectors.

    Example:
        >>> require_same_model(dirs, fingerprint=info.fingerprint, dim=info.dim)  # doctest: +SKIP
    """
    if not dirs:
        return
    first = dirs[0]
    fingerprint = fingerprint if fingerprint is not None else first.fingerprint
    model = model if model is not None else first.model
    dim = dim if dim is not None else first.dim
    for d in dirs:
        if d.fingerprint != fingerprint:
            raise MismatchError(
                f"{d.path} was embedded by {d.model} (fingerprint {d.fingerprint[:12]}), not by "
                f"{model} ({fingerprint[:12]}): vectors of different models cannot be mixed; "
                f"re-embed with one model and re-index"
            )
        if d.dim != dim:
            raise MismatchError(
                f"{d.path} holds vectors of dim {d.dim}, not {dim}: re-embed with one model"
            )


def open_embedding_dirs(paths: Sequence[str | Path]) -> list[EmbeddingDir]:
    """Open embedding dirs for reading together (duplicates dropped, one model required).

    Example:
        >>> dirs = open_embedding_dirs(["emb/a", "emb/b"])    # doctest: +SKIP
    """
    if not paths:
        raise InputError("no embedding dir given")
    dirs: list[EmbeddingDir] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if path in seen:
            continue
        seen.add(path)
        if not EmbeddingDir.is_embedding_dir(path):
            raise FormatError(
                f"{raw} is not an embedding dir (no manifest.json): make one with "
                "`embedsearch embed`"
            )
        dirs.append(EmbeddingDir.open(path))
    require_same_model(dirs)
    return dirs


@dataclass
class KnownRows:
    """What an embedding dir already holds: (source, hash) multiplicities and ids per source."""

    counts: Counter = field(default_factory=Counter)
    ids_by_source: dict[str, list[int]] = field(default_factory=dict)

    def claim(self, source: str, digest: str) -> tuple[bool, list[int]]:
        """-> (already stored, ids this item supersedes). Stored copies are used up one by one."""
        key = (source, digest)
        if self.counts[key] > 0:
            self.counts[key] -= 1
            return True, []
        return False, self.ids_by_source.pop(source, [])


def load_known_rows(emb_dir: EmbeddingDir) -> KnownRows:
    """Live rows already in ``emb_dir`` (source, hash, id), for skipping on rerun."""
    known = KnownRows()
    for batch in iter_batches(emb_dir, ["id", "source", "content_hash"]):
        for row_id, source, digest in zip(*(c.to_pylist() for c in batch.columns), strict=True):
            known.counts[(source, digest)] += 1
            known.ids_by_source.setdefault(source, []).append(row_id)
    return known
