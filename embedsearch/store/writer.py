"""Buffered shard writing: rows in, ``part-NNNNN.parquet`` files out, committed atomically.

:class:`ShardWriter` collects embedded rows and failures; whenever ``shard_rows``
rows are buffered (and on :meth:`ShardWriter.close`) it writes one shard to a
temporary file and commits it through :meth:`EmbeddingDir.commit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedsearch.store.embedding_dir import ERRORS_SCHEMA, EmbeddingDir

DEFAULT_SHARD_ROWS = 100_000


def embedding_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """(n, dim) float32 -> ``fixed_size_list<float32>[dim]`` without copying row by row."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


class ShardWriter:
    """Accumulates rows and commits a shard every ``shard_rows`` rows.

    Example:
        >>> writer = ShardWriter(emb_dir, reserve_next_id=100)               # doctest: +SKIP
        >>> writer.add(ids, sources, hashes, vectors, {"label": labels})     # doctest: +SKIP
        >>> writer.close()                                                   # doctest: +SKIP
    """

    def __init__(self, emb_dir: EmbeddingDir, reserve_next_id: int, shard_rows: int = DEFAULT_SHARD_ROWS) -> None:
        self.emb_dir = emb_dir
        self.reserve_next_id = reserve_next_id
        self.shard_rows = max(1, int(shard_rows))
        self._tables: list[pa.Table] = []
        self._rows = 0
        self._failures: list[tuple[str, str]] = []
        self._superseded: list[int] = []
        self._schema: pa.Schema | None = None
        self.written_shards: list[str] = []
        self.rows_written = 0
        self.failures_written = 0

    def add(
        self,
        ids: Sequence[int],
        sources: Sequence[str],
        hashes: Sequence[str],
        vectors: np.ndarray,
        metadata: dict[str, Sequence[Any]] | None = None,
        superseded: Sequence[int] = (),
    ) -> None:
        """Buffer embedded rows; ``superseded`` are ids these rows replace."""
        if len(ids) == 0:
            return
        columns = {
            "id": pa.array(ids, pa.int64()),
            "source": pa.array(sources, pa.string()),
            "content_hash": pa.array(hashes, pa.string()),
            "embedding": embedding_array(vectors),
        }
        for name, values in (metadata or {}).items():
            columns[name] = pa.array(values)
        table = pa.table(columns)
        if self._schema is None:
            self._schema = table.schema
        else:
            table = _conform(table, self._schema)
        self._tables.append(table)
        self._rows += table.num_rows
        self._superseded.extend(int(i) for i in superseded)
        while self._rows >= self.shard_rows:
            self._commit(self.shard_rows)

    def add_failure(self, source: str, reason: str) -> None:
        """Record an input that could not be embedded (written to ``errors.parquet``)."""
        self._failures.append((source, reason))

    def close(self) -> None:
        """Commit what is buffered (rows and failures)."""
        if self._rows or self._failures or self._superseded:
            self._commit(self._rows)

    def _commit(self, rows: int) -> None:
        table = pa.concat_tables(self._tables) if self._tables else None
        shard, rest = (table.slice(0, rows), table.slice(rows)) if table is not None else (None, None)
        self._tables = [rest] if rest is not None and rest.num_rows else []
        self._rows = rest.num_rows if rest is not None else 0
        tmp: Path | None = None
        ids_range = None
        if shard is not None and shard.num_rows:
            tmp = self.emb_dir.temp_shard_path()
            pq.write_table(shard, tmp, compression="zstd")
            ids = shard.column("id").to_numpy()
            ids_range = (int(ids.min()), int(ids.max()))
        failures = pa.table(
            {"source": [f[0] for f in self._failures], "reason": [f[1] for f in self._failures]},
            schema=ERRORS_SCHEMA,
        )
        succeeded = shard.column("source").to_pylist() if shard is not None else []
        name = self.emb_dir.commit(
            tmp, ids_range, shard.num_rows if shard is not None else 0, failures, succeeded,
            self._superseded, self.reserve_next_id,
        )
        if name:
            self.written_shards.append(name)
            self.rows_written += shard.num_rows
        self.failures_written += len(self._failures)
        self._failures, self._superseded = [], []


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
