"""The index dir's own key -> source + metadata store (``meta-NNNNN.arrow`` files).

Each file is an uncompressed Arrow IPC file (readable by pyarrow, pandas, polars, duckdb)
holding ``key`` (the faiss id), ``dir`` (which entry of ``index.json["sources"]``), ``id``
(the embedding id), ``source``, ``content_hash`` and the metadata columns carried by the
embedding dir. Readers memory-map the files: looking up the hits of a query touches only
their pages, so opening a million-row index costs the key column (8 bytes a row), not the
metadata, and lookups cost O(hits).

Example:
    >>> store = MetadataStore(index_dir, ["meta-00000.arrow"])   # doctest: +SKIP
    >>> store.take(np.array([42])).column("source").to_pylist()  # doctest: +SKIP
    ['photos/cat.jpg']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from embedsearch.errors import FormatError

SKIPPED_COLUMNS = ("embedding",)
KEY_COLUMNS = ("key", "dir", "id")  # what a faiss key encodes


class MetadataWriter:
    """Streams record batches of one embedding dir into one ``meta-NNNNN.arrow``.

    Rows are gathered into large record batches (up to ``batch_rows`` rows or ``batch_bytes``)
    before they are written: pyarrow takes rows from a one-piece column several times faster
    than from one split into 64k-row pieces (benchmarks/RESULTS.md, issue 3). The buffer stays
    bounded, so the build still streams.
    """

    def __init__(self, path: Path, batch_rows: int = 1 << 20, batch_bytes: int = 64 << 20) -> None:
        self.path = path
        self.rows = 0
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._sink: pa.OSFile | None = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, keys: np.ndarray, dir_number: int, batch: pa.RecordBatch) -> None:
        """Append rows: ``batch`` holds ``id``, ``source`` and metadata columns (not embeddings)."""
        columns = {
            "key": pa.array(keys, pa.int64()),
            "dir": pa.array(np.full(len(keys), dir_number, np.int32)),
        }
        for name in batch.schema.names:
            if name not in SKIPPED_COLUMNS:
                columns[name] = batch.column(name)
        table = pa.table(columns)
        if self._schema is None:
            self._schema = table.schema
        elif not table.schema.equals(self._schema):
            table = table.select(self._schema.names).cast(self._schema)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        self.rows += len(keys)
        if self._pending_rows >= self.batch_rows or self._pending_bytes >= self.batch_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the gathered rows as one record batch (call it when no more rows are coming for a
        while, so that several open writers do not all hold a buffer)."""
        if not self._pending:
            return
        if self._writer is None:
            self._sink = pa.OSFile(str(self.path), "wb")
            self._writer = pa.ipc.new_file(self._sink, self._schema)
        merged = pa.concat_tables(self._pending).combine_chunks()
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        self._writer.write_table(merged, max_chunksize=max(merged.num_rows, 1))

    def close(self) -> None:
        """Finish the file (nothing is written when no row came)."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
        if self._sink is not None:
            self._sink.close()


def read_metadata_file(path: Path) -> pa.Table:
    """A memory-mapped metadata table (no copy into the heap)."""
    try:
        return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    except (OSError, pa.ArrowException) as e:
        raise FormatError(f"index metadata {path} is unreadable: {e}") from e


class MetadataStore:
    """Key -> row reads over an index dir's metadata files.

    Example:
        >>> store = MetadataStore(index_dir, ["meta-00000.arrow"])   # doctest: +SKIP
        >>> store.take(np.array([42])).column("source").to_pylist()  # doctest: +SKIP
        ['photos/cat.jpg']
    """

    def __init__(self, index_dir: Path, files: Sequence[str]) -> None:
        self.tables = [read_metadata_file(Path(index_dir) / name) for name in files]
        keys = [table.column("key").to_numpy() for table in self.tables]
        self.keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        order = np.argsort(self.keys, kind="stable")
        self._sorted = self.keys[order]
        # (file number, row in that file) of each key, in sorted-key order
        self._file = np.repeat(np.arange(len(keys)), [len(k) for k in keys])[order]
        self._row = np.concatenate([np.arange(len(k)) for k in keys])[order] if keys else order
        # The usual index, one dir with unbroken ids: a key's sorted position is key - first key.
        # Measured to matter for search_table's goal (benchmarks/RESULTS.md, issue 16).
        self._dense = bool(len(self._sorted)) and (
            int(self._sorted[-1] - self._sorted[0]) == len(self._sorted) - 1
        )

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``keys`` are stored."""
        return self._positions(np.asarray(keys, np.int64))[0]

    def _positions(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, positions in the sorted keys of the found ones)."""
        if not len(self._sorted):
            return np.zeros(len(keys), bool), np.zeros(0, np.int64)
        if self._dense:
            pos = keys - self._sorted[0]
            found = (pos >= 0) & (pos < len(self._sorted))
            return found, pos[found]
        pos = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
        found = self._sorted[pos] == keys
        return found, pos[found]

    def take(self, keys: np.ndarray) -> pa.Table:
        """One row a key, in the order of ``keys``, with every stored column; a key that is not
        stored (e.g. faiss's -1) gives a row of nulls, its ``key`` included. With several files,
        a column that one file lacks is null in its rows."""
        keys = np.asarray(keys, np.int64)
        found, positions = self._positions(keys)
        files, rows = self._file[positions], self._row[positions]
        parts = [table.take(pa.array(rows[files == n])) for n, table in enumerate(self.tables)]
        merged = pa.concat_tables(parts, promote_options="default")
        # the parts hold the found keys file by file: put them back in the order of ``keys``
        order = np.zeros(len(keys), np.int64)
        order[np.flatnonzero(found)[np.argsort(files, kind="stable")]] = np.arange(len(rows))
        return merged.take(pa.array(order, mask=~found))

    def columns_of_dirs(self, dirs: Sequence[int]) -> dict[int, list[str]]:
        """Payload columns stored for each source dir (dirs' files may carry different ones)."""
        names: dict[int, list[str]] = {number: [] for number in dirs}
        for number, table in zip(dirs, self.tables, strict=True):
            known = names[number]
            known += [c for c in table.column_names if c not in (*KEY_COLUMNS, *known)]
        return names
