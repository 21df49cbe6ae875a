"""Streaming shard writing: rows in, ``part-NNNNN.parquet`` files out, committed atomically.

:class:`ShardWriter` collects embedded rows and failures. Rows go to the open shard's
temporary file one Parquet row group (``ROW_GROUP_ROWS``) at a time; when the shard holds
``shard_rows`` rows (and on :meth:`ShardWriter.close`) the file is closed and committed
through :meth:`EmbeddingDir.commit`. Memory therefore stays at about one row group however
large ``shard_rows`` or the corpus is.

A shard is also committed once ``commit_seconds`` have passed since the last commit, so a crash
loses at most that much work whatever ``shard_rows`` is (a slow model filling 100k-row shards
took minutes per shard).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedsearch.store.embedding_dir import ERRORS_SCHEMA, EmbeddingDir

DEFAULT_SHARD_ROWS = 100_000
DEFAULT_COMMIT_SECONDS = 60.0
# Rows buffered before they are written out as one row group (8 MB of 512-d vectors).
ROW_GROUP_ROWS = 4096


def embedding_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """(n, dim) float32 -> ``fixed_size_list<float32>[dim]`` without copying row by row."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


class _VectorBuffer:
    """Vectors waiting for their row group, in one float32 array that is reused.

    One array allocated once keeps ``embed``'s memory flat; an array per batch made it grow
    (``benchmarks/RESULTS.md``, issue 2, "Memory").
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self._data: np.ndarray | None = None
        self._start = 0  # rows before this were written already
        self._end = 0

    @property
    def size(self) -> int:
        return self._end - self._start

    def append(self, vectors: np.ndarray) -> None:
        n = len(vectors)
        if self._data is not None and self._end + n > len(self._data) and self._start:
            live = self.size  # move the unwritten rows to the front (once, not per row group)
            self._data[:live] = self._data[self._start : self._end]
            self._start, self._end = 0, live
        if self._data is None or self._end + n > len(self._data):
            grown = np.empty((max(self.rows, self._end + n), vectors.shape[1]), dtype=np.float32)
            if self._data is not None:
                grown[: self._end] = self._data[: self._end]
            self._data = grown
        self._data[self._end : self._end + n] = vectors
        self._end += n

    def head(self, n: int) -> np.ndarray:
        if self._data is None:
            return np.empty((0, 0), np.float32)
        return self._data[self._start : self._start + n]

    def drop_head(self, n: int) -> None:
        self._start += n
        if self._start == self._end:
            self._start = self._end = 0


class ShardWriter:
    """Streams rows into shards of ``shard_rows`` rows, one row group at a time.

    Example:
        >>> writer = ShardWriter(emb_dir, reserve_next_id=100)               # doctest: +SKIP
        >>> writer.add(ids, sources, hashes, vectors, {"label": labels})     # doctest: +SKIP
        >>> writer.close()                                                   # doctest: +SKIP
    """

    def __init__(
        self,
        emb_dir: EmbeddingDir,
        reserve_next_id: int,
        shard_rows: int = DEFAULT_SHARD_ROWS,
        row_group_rows: int = ROW_GROUP_ROWS,
        commit_seconds: float | None = DEFAULT_COMMIT_SECONDS,
    ) -> None:
        self.emb_dir = emb_dir
        self.commit_seconds = commit_seconds
        self._last_commit = time.monotonic()
        self.reserve_next_id = reserve_next_id
        self.shard_rows = max(1, int(shard_rows))
        self.row_group_rows = max(1, int(row_group_rows))
        self._pending: list[pa.Table] = []  # columns other than the embedding, not yet written
        self._pending_rows = 0
        self._vectors = _VectorBuffer(2 * self.row_group_rows)
        self._failures: list[tuple[str, str]] = []
        self._superseded: list[int] = []
        self._schema: pa.Schema | None = None
        self._shard: _OpenShard | None = None
        self.written_shards: list[str] = []

    def add(
        self,
        ids: Sequence[int] | np.ndarray,
        sources: Sequence[str],
        hashes: Sequence[str],
        vectors: np.ndarray,
        metadata: Mapping[str, Sequence[Any]] | None = None,
        superseded: Sequence[int] = (),
    ) -> None:
        """Buffer embedded rows; ``superseded`` are ids these rows replace."""
        if len(ids) == 0:
            return
        columns = {
            "id": pa.array(ids, pa.int64()),
            "source": pa.array(sources, pa.string()),
            "content_hash": pa.array(hashes, pa.string()),
        }
        for name, values in (metadata or {}).items():
            columns[name] = pa.array(values)
        table = pa.table(columns)
        if self._schema is None:
            self._schema = _widen_nulls(table.schema)
        table = _conform(table, self._schema)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._vectors.append(np.asarray(vectors, dtype=np.float32))
        self._superseded.extend(int(i) for i in superseded)
        self._drain(final=False)
        if self._commit_due():
            self._drain(final=True)
            self._commit()

    def _commit_due(self) -> bool:
        if self.commit_seconds is None or (self._shard is None and not self._pending_rows):
            return False
        return time.monotonic() - self._last_commit >= self.commit_seconds

    def add_failure(self, source: str, reason: str) -> None:
        """Record an input that could not be embedded (written to ``errors.parquet``)."""
        self._failures.append((source, reason))

    def close(self) -> None:
        """Write and commit what is buffered (rows and failures)."""
        self._drain(final=True)
        if self._shard is not None or self._failures or self._superseded:
            self._commit()

    def abort(self) -> None:
        """Drop what is not committed yet and remove the open shard's temporary file."""
        shard, self._shard = self._shard, None
        if shard is not None:
            shard.close()
            shard.path.unlink(missing_ok=True)
        self._pending, self._pending_rows = [], 0
        self._vectors = _VectorBuffer(2 * self.row_group_rows)

    def _room(self) -> int:
        return self.shard_rows - (self._shard.rows if self._shard is not None else 0)

    def _drain(self, final: bool) -> None:
        """Write full row groups (all pending rows when ``final``), committing full shards."""
        while self._pending_rows and (
            final or self._pending_rows >= min(self.row_group_rows, self._room())
        ):
            take = min(self._pending_rows, self.row_group_rows, self._room())
            table = pa.concat_tables(self._pending)
            rest = table.slice(take)
            self._pending = [rest] if rest.num_rows else []
            self._pending_rows = rest.num_rows
            group = table.slice(0, take).add_column(
                3, "embedding", embedding_array(self._vectors.head(take))
            )
            if self._shard is None:
                self._shard = _OpenShard(self.emb_dir.temp_shard_path(), group.schema)
            self._shard.write(group)  # encodes the rows; the buffer can then be reused
            self._vectors.drop_head(take)
            if self._room() == 0:
                self._commit()

    def _commit(self) -> None:
        shard, self._shard = self._shard, None
        tmp, ids_range, rows, succeeded = None, None, 0, []
        if shard is not None:
            shard.close()
            tmp, ids_range, rows, succeeded = shard.path, shard.ids_range, shard.rows, shard.sources
        failures = pa.table(
            {"source": [f[0] for f in self._failures], "reason": [f[1] for f in self._failures]},
            schema=ERRORS_SCHEMA,
        )
        name = self.emb_dir.commit(
            tmp, ids_range, rows, failures, succeeded, self._superseded, self.reserve_next_id
        )
        if name:
            self.written_shards.append(name)
        self._failures, self._superseded = [], []
        self._last_commit = time.monotonic()


class _OpenShard:
    """A shard being written under its temporary name: row groups, id range, sources."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.rows = 0
        self.sources: list[str] = []
        self._min_id: int | None = None
        self._max_id: int | None = None

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=table.num_rows)
        ids = table.column("id").to_numpy()
        low, high = int(ids.min()), int(ids.max())
        self._min_id = low if self._min_id is None else min(self._min_id, low)
        self._max_id = high if self._max_id is None else max(self._max_id, high)
        self.sources.extend(table.column("source").to_pylist())
        self.rows += table.num_rows

    @property
    def ids_range(self) -> tuple[int, int] | None:
        if self._min_id is None or self._max_id is None:
            return None  # nothing written yet
        return self._min_id, self._max_id

    def close(self) -> None:
        self._writer.close()


def _widen_nulls(schema: pa.Schema) -> pa.Schema:
    """Columns typed ``null`` (all empty in the first batch) become strings.

    Their type is unknown until a value arrives, and a shard's schema is fixed when its first
    row group is written; string takes any later value through :func:`_conform`.

    Example:
        >>> _widen_nulls(pa.schema([("id", pa.int64()), ("caption", pa.null())])).types
        [DataType(int64), DataType(string)]
    """
    return pa.schema(
        [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema],
        metadata=schema.metadata,
    )


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast a later batch to the first batch's schema (tables may infer types per block)."""
    if table.schema.equals(schema):
        return table
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            columns.append(column.cast(pa.string()).cast(field.type, safe=False))
    return pa.Table.from_arrays(columns, schema=schema)
