"""Reading vectors that another tool made: ``.npy`` files, tables with a vector column, and
another embedding dir's shards, as checked blocks of rows (``embedsearch import``).

Everything streams: a ``.npy`` file is memory-mapped and read a block at a time, tables come in
Arrow record batches, an embedding dir shard by shard. Every block is checked before anything is
written (:func:`check_block`): NaN/inf values, rows of another length (ragged), and a dim other
than ``--dim`` are refused with the row number (``.npy`` rows counted from 0, as numpy indexes
them; table rows from 1, as ``embed`` counts them).

Example:
    >>> for block in iter_vector_blocks("vectors.npy", sources_file="names.txt"):  # doctest: +SKIP
    ...     print(block.first_row, block.vectors.shape)
    0 (8192, 768)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedsearch.data.sources import RESERVED_COLUMNS
from embedsearch.data.tables import is_table, read_table_batches, table_columns
from embedsearch.errors import InputError
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.reader import iter_vector_batches

BLOCK_ROWS = 8192
VECTOR_COLUMN_NAMES = ("embedding", "vector", "embeddings", "vectors")


@dataclass
class VectorBlock:
    """Rows ``first_row ..`` of an input: vectors (n, dim) float32, sources, carried columns."""

    first_row: int
    vectors: np.ndarray
    sources: list[str]
    metadata: dict[str, list[Any]] = field(default_factory=dict)
    hashes: list[str] | None = None  # an embedding dir's own content hashes


def iter_vector_blocks(
    path: str | Path,
    *,
    vector_col: str | None = None,
    source_col: str | None = None,
    sources_file: str | Path | None = None,
    ids_file: str | Path | None = None,
    block_rows: int = BLOCK_ROWS,
) -> Iterator[VectorBlock]:
    """Blocks of an ``.npy`` file, a table (Parquet, CSV/TSV, JSONL) or an embedding dir.

    ``sources_file`` (text, one a line) and ``ids_file`` (``.npy`` or text) go with an ``.npy``
    file; their ids are carried as the ``input_id`` column (the dir gives its own ids).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        if not EmbeddingDir.is_embedding_dir(path):
            raise InputError(f"{path} is a folder but not an embedding dir: nothing to import")
        yield from _from_embedding_dir(path, block_rows)
    elif path.suffix.lower() == ".npy":
        yield from _from_npy(path, sources_file, ids_file, block_rows)
    elif is_table(path):
        yield from _from_table(path, vector_col, source_col, block_rows)
    else:
        raise InputError(
            f"{path}: import reads .npy files, tables (.parquet, .csv, .tsv, .jsonl) "
            "or an embedding dir"
        )


def check_block(vectors: np.ndarray, first_row: int, dim: int | None, where: str) -> None:
    """Refuse NaN/inf values and a width other than ``dim``, naming the first bad row."""
    if dim is not None and vectors.shape[1] != dim:
        raise InputError(f"{where}: row {first_row} has {vectors.shape[1]} values, not --dim {dim}")
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise InputError(f"{where}: row {first_row + int(bad[0])} holds NaN or infinite values")


def _from_npy(
    path: Path, sources_file: str | Path | None, ids_file: str | Path | None, block_rows: int
) -> Iterator[VectorBlock]:
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)  # never the whole file
    except (ValueError, OSError) as e:
        raise InputError(f"cannot read {path} as a .npy array: {e}") from e
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number):
        raise InputError(
            f"{path} holds a {matrix.dtype} array of shape {matrix.shape}: expected numbers of "
            "shape (rows, dim)"
        )
    names = _lines(sources_file) if sources_file is not None else None
    ids = _ids(ids_file) if ids_file is not None else None
    for start in range(0, len(matrix), block_rows):
        stop = min(start + block_rows, len(matrix))
        sources = _take(names, stop - start, sources_file, len(matrix))
        sources = sources or [f"{path.name}:row {row}" for row in range(start, stop)]
        metadata: dict[str, list[Any]] = {}
        taken = _take(ids, stop - start, ids_file, len(matrix))
        if taken is not None:
            metadata["input_id"] = taken
        yield VectorBlock(start, np.asarray(matrix[start:stop], np.float32), sources, metadata)
    for extra, name in ((names, sources_file), (ids, ids_file)):
        if extra is not None and next(extra, None) is not None:
            raise InputError(f"{name} has more lines than {path} has rows ({len(matrix)})")


def _lines(path: str | Path) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                yield line.rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from e


def _ids(path: str | Path) -> Iterator[Any]:
    if str(path).endswith(".npy"):
        ids = np.load(path, mmap_mode="r", allow_pickle=False)
        for start in range(0, len(ids), BLOCK_ROWS):
            yield from ids[start : start + BLOCK_ROWS].tolist()
    else:
        yield from _lines(path)


def _take(values: Iterator[Any] | None, n: int, name: Any, total: int) -> list[Any] | None:
    if values is None:
        return None
    taken = list(islice(values, n))
    if len(taken) != n:
        raise InputError(f"{name} has fewer lines than the vectors have rows ({total})")
    return taken


def _from_embedding_dir(path: Path, block_rows: int) -> Iterator[VectorBlock]:
    d = EmbeddingDir.open(path)
    carried = [c for c in d.column_names() if c not in RESERVED_COLUMNS]
    first = 0
    wanted = ["source", "content_hash", *carried]
    for batch, vectors in iter_vector_batches(d, wanted, block_rows):
        metadata = {name: batch.column(name).to_pylist() for name in carried}
        sources = batch.column("source").to_pylist()
        hashes = batch.column("content_hash").to_pylist()
        yield VectorBlock(first, vectors, sources, metadata, hashes)
        first += batch.num_rows


def _from_table(
    path: Path, vector_col: str | None, source_col: str | None, block_rows: int
) -> Iterator[VectorBlock]:
    columns = table_columns(path)
    vector_col = vector_col or next((c for c in VECTOR_COLUMN_NAMES if c in columns), None)
    if vector_col is None or vector_col not in columns:
        raise InputError(
            f"table {path} has no vector column {vector_col or ''!r}: name it with --vector-col "
            f"(columns present: {', '.join(columns) or 'none'})"
        )
    if source_col is not None and source_col not in columns:
        raise InputError(
            f"table {path} has no column {source_col!r} (--source-col); "
            f"columns present: {', '.join(columns)}"
        )
    source_col = source_col or ("source" if "source" in columns else None)
    first = 1  # table rows are counted from 1, as in embed's messages
    for block in read_table_batches(path, block_rows):
        batch = block.batch
        if block.errors:
            row, reason = min(block.errors.items())
            raise InputError(f"{path}: row {first + row}: {reason}")
        vectors = vector_matrix(batch.column(vector_col), first, f"{path} [{vector_col}]")
        sources = (
            [str(s) for s in batch.column(source_col).to_pylist()]
            if source_col is not None
            else [f"{path.name}:row {row}" for row in range(first, first + batch.num_rows)]
        )
        metadata = {
            (f"input_{name}" if name in RESERVED_COLUMNS else name): batch.column(name).to_pylist()
            for name in batch.schema.names
            if name not in (vector_col, source_col)
        }
        yield VectorBlock(first, vectors, sources, metadata)
        first += batch.num_rows


def vector_matrix(column: pa.Array, first_row: int, where: str) -> np.ndarray:
    """A list / fixed-size list column, or text cells like ``[0.1, 0.2]``, -> (n, dim) float32.

    Rows of different lengths (ragged) and empty cells are refused with the row number.

    Example:
        >>> vector_matrix(pa.array([[1, 2], [3, 4]]), 1, "t").tolist()
        [[1.0, 2.0], [3.0, 4.0]]
        >>> vector_matrix(pa.array(["[1, 2]", "3 4"]), 1, "t").tolist()
        [[1.0, 2.0], [3.0, 4.0]]
    """
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = _parse_text_vectors(column, first_row, where)
    if not (
        pa.types.is_list(column.type)
        or pa.types.is_large_list(column.type)
        or pa.types.is_fixed_size_list(column.type)
    ):
        raise InputError(f"{where}: holds {column.type}, not vectors (lists of numbers)")
    if column.null_count:
        row = int(np.flatnonzero(~np.asarray(column.is_valid()))[0])
        raise InputError(f"{where}: row {first_row + row} has no vector")
    lengths = np.asarray(pc.list_value_length(column), np.int64)
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise InputError(
            f"{where}: row {first_row + row} has {lengths[row]} values, row {first_row} has "
            f"{lengths[0]}: rows of different lengths"
        )
    width = int(lengths[0]) if len(lengths) else 0
    values = column.flatten()
    if values.null_count:
        row = int(np.flatnonzero(~np.asarray(values.is_valid()))[0]) // max(width, 1)
        raise InputError(f"{where}: row {first_row + row} holds an empty value")
    flat = np.asarray(values.to_numpy(zero_copy_only=False), np.float32)
    return flat.reshape(len(column), width)


def _parse_text_vectors(column: pa.Array, first_row: int, where: str) -> pa.Array:
    rows = []
    for offset, text in enumerate(column.to_pylist()):
        cleaned = (text or "").strip().strip("[]").replace(",", " ").replace(";", " ")
        try:
            rows.append([float(v) for v in cleaned.split()] if cleaned else None)
        except ValueError as e:
            raise InputError(f"{where}: row {first_row + offset} is not a list of numbers") from e
    return pa.array(rows, pa.list_(pa.float32()))
