"""Streaming reads of user tables: CSV/TSV (separator detected), JSONL and Parquet.

open_clip's loader assumes tabs and dies with ``KeyError: 'filepath'``; here the
separator is sniffed, and a missing column is reported by name together with the
columns that are present.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from embedsearch.errors import InputError

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
_BLOCK_BYTES = 1 << 22


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


def read_table_batches(path: str | Path, batch_rows: int = 8192) -> Iterator[pa.RecordBatch]:
    """Stream a table as record batches; memory is bounded by the block size.

    Example:
        >>> for batch in read_table_batches("captions.csv"):   # doctest: +SKIP
        ...     print(batch.column_names)
    """
    path = Path(path)
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
                convert_options=pc.ConvertOptions(strings_can_be_null=True),
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
    for batch in read_table_batches(path):
        return list(batch.schema.names)
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
