"""Streaming reads of user tables: CSV/TSV (separator detected), JSONL and Parquet.

open_clip's loader assumes tabs and dies with ``KeyError: 'filepath'``; here the
separator is sniffed, and a missing column is reported by name together with the
columns that are present.

Text must be UTF-8. Arrow would type a CSV column holding one bad byte as ``binary`` (so
every cell of it came out as ``b'…'``) and hand JSONL's bad bytes through unchecked; here
each block's text columns are validated, and a cell that is not UTF-8 becomes null while
its row is reported in :attr:`TableBlock.errors` (``embed`` lists it in ``errors.parquet``,
CLIP pairs count it as skipped). The other rows are read as usual.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from embedsearch.errors import InputError

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
_BLOCK_BYTES = 1 << 22


@dataclass
class TableBlock:
    """A block of table rows; ``errors`` maps a row of the block to why it is unusable."""

    batch: pa.RecordBatch
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return int(self.batch.num_rows)


def is_table(path: str | Path) -> bool:
    """True for the table formats ``embed`` reads (by suffix)."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def detect_separator(path: str | Path) -> str:
    """Sniff the field separator of a delimited text file (``,`` ``\\t`` ``;`` or ``|``).

    Example:
        >>> detect_separator("pairs.tsv")   # doctest: +SKIP
        '\\t'
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        sample = f.read(1 << 16)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        return "\t" if path.suffix.lower() == ".tsv" else ","


def read_table_batches(path: str | Path, batch_rows: int = 8192) -> Iterator[TableBlock]:
    """Stream a table as blocks of rows; memory is bounded by the block size.

    Example:
        >>> for block in read_table_batches("captions.csv"):   # doctest: +SKIP
        ...     print(block.batch.column_names, block.errors)
        ['caption', 'n'] {1: "'caption' is not UTF-8 text (invalid start byte at byte 4)"}
    """
    for batch in _read_batches(Path(path), batch_rows):
        yield check_utf8(batch)


def check_utf8(batch: pa.RecordBatch) -> TableBlock:
    """Null the text cells of ``batch`` that are not valid UTF-8 and report their rows.

    Example:
        >>> batch = pa.RecordBatch.from_arrays(
        ...     [pa.array([b"ok", b"bad \\xff"], pa.binary()).view(pa.string())], ["caption"])
        >>> block = check_utf8(batch)
        >>> block.batch.column(0).to_pylist(), block.errors
        (['ok', None], {1: "'caption' is not UTF-8 text (invalid start byte at byte 4)"})
    """
    errors: dict[int, str] = {}
    columns = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            column = _null_bad_text(name, column, errors)
        columns.append(column)
    if not errors:
        return TableBlock(batch)
    return TableBlock(pa.RecordBatch.from_arrays(columns, schema=batch.schema), errors)


def _null_bad_text(name: str, column: pa.Array, errors: dict[int, str]) -> pa.Array:
    """``column`` with its non-UTF-8 cells nulled; each bad row's reason goes to ``errors``."""
    if pa.types.is_string(column.type):
        raw = column.view(pa.binary()).to_pylist()
    elif pa.types.is_large_string(column.type):
        raw = column.view(pa.large_binary()).to_pylist()
    else:
        raise InputError(f"column {name!r} holds text that is not UTF-8 (type {column.type})")
    values: list[str | None] = []
    for row, value in enumerate(raw):
        try:
            values.append(None if value is None else value.decode("utf-8"))
        except UnicodeDecodeError as e:
            values.append(None)
            errors.setdefault(row, f"{name!r} is not UTF-8 text ({e.reason} at byte {e.start})")
    return pa.array(values, column.type)


def _read_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
        elif suffix in (".jsonl", ".ndjson"):
            import pyarrow.json as pj

            yield from pj.open_json(path, read_options=pj.ReadOptions(block_size=_BLOCK_BYTES))
        elif suffix in (".csv", ".tsv"):
            import pyarrow.csv as pc

            reader = pc.open_csv(
                path,
                read_options=pc.ReadOptions(block_size=_BLOCK_BYTES),
                parse_options=pc.ParseOptions(
                    delimiter=detect_separator(path), newlines_in_values=True
                ),
                # Keep text columns typed string even with a bad byte; check_utf8() finds it.
                convert_options=pc.ConvertOptions(strings_can_be_null=True, check_utf8=False),
            )
            yield from reader
        else:
            raise InputError(
                f"{path}: unsupported table type {suffix!r} (use {', '.join(TABLE_SUFFIXES)})"
            )
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"cannot read table {path}: {str(e).splitlines()[0]}") from e


def table_columns(path: str | Path) -> list[str]:
    """Column names of a table (reads only its first block)."""
    for block in read_table_batches(path):
        return list(block.batch.schema.names)
    return []


def require_column(path: str | Path, column: str, option: str) -> list[str]:
    """Check that ``column`` exists; the error names it and lists the columns present."""
    columns = table_columns(path)
    if column not in columns:
        raise InputError(
            f"table {path} has no column {column!r} ({option}); "
            f"columns present: {', '.join(columns) or 'none'}"
        )
    return columns
