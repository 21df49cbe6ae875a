"""``--where`` filters: a SQL predicate over an index's metadata -> the faiss keys it keeps.

The predicate is DuckDB SQL, evaluated over the index dir's own metadata files (``id``,
``source``, ``dir``, ``content_hash`` and every metadata column the embedding dirs carried):
``license = 'cc0' AND year >= 2020``, ``source LIKE '%/cats/%'``, ``id IN (3, 17)``.

Why DuckDB rather than pyarrow compute expressions: pyarrow has no parser for expressions
written as text, so a command-line or HTTP filter would need a home-made parser or ``eval`` of
Python (unsafe in ``serve``); DuckDB parses the SQL users already write against these files
(the embedding dir is documented as readable by DuckDB), names an unknown column with the
candidates it resembles, scans the memory-mapped Arrow tables without a copy, and runs in a
sandbox here: a fresh in-memory connection with external access off, so a predicate cannot
read files (``read_csv(...)`` in a subquery is refused) and only ever sees the metadata.
A predicate must be a true/false condition (``--where bucket`` is refused, not read as
``bucket <> 0``); rows where it is NULL are left out, as in SQL.

Example:
    >>> import pyarrow as pa
    >>> table = pa.table({"key": [1, 2, 3], "id": [1, 2, 3], "source": ["a", "b", "c"],
    ...                   "license": ["cc0", "by", "cc0"]})
    >>> matching_keys([table], "license = 'cc0'").tolist()
    [1, 3]
    >>> matching_keys([table], "licence = 'cc0'")
    Traceback (most recent call last):
    ...
    embedsearch.errors.InputError: bad --where "licence = 'cc0'": column "licence" not found \
(did you mean "license"?); columns: id, source, license
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from embedsearch.errors import InputError

# what a user filters on besides the metadata columns; key/dir/content_hash work but are internal
SHOWN_FIRST = ("id", "source")
_HIDDEN = ("key", "dir", "content_hash")


def matching_keys(tables: Sequence[pa.Table], where: str) -> np.ndarray:
    """Sorted faiss keys of the rows of ``tables`` (an index's metadata) where ``where`` holds.

    Raises :class:`InputError` naming the problem (unknown column, syntax, type) in one line.
    """
    import duckdb

    if not where or not where.strip():
        raise InputError("--where is empty: give a condition such as \"license = 'cc0'\"")
    table = _one_table(tables)
    connection = duckdb.connect(":memory:", config={"enable_external_access": False})
    try:
        rows = connection.from_arrow(table)
        # typed on no rows first: a non-boolean predicate is refused before any row is read
        kind = str(connection.from_arrow(table.slice(0, 0)).project(f"({where}) AS w").types[0])
        if kind not in ("BOOLEAN", '"NULL"', "NULL"):
            raise InputError(
                f'bad --where "{where}": it is a {kind} value, not a condition '
                "(write e.g. `bucket > 0`, `license = 'cc0'`)"
            )
        keys = rows.filter(where).project("key").fetchnumpy()["key"]
    except duckdb.Error as e:
        raise InputError(f'bad --where "{where}": {_one_line(e, table.column_names)}') from e
    finally:
        connection.close()
    return np.sort(np.asarray(keys, np.int64))


def _one_table(tables: Sequence[pa.Table]) -> pa.Table:
    """The metadata files as one table (no copy; a column one file lacks is null in its rows)."""
    if not tables:
        return pa.table({"key": pa.array([], pa.int64()), "id": pa.array([], pa.int64())})
    return pa.concat_tables(tables, promote_options="default")


def filter_columns(names: Sequence[str]) -> list[str]:
    """The columns a user filters on, in the order shown: ``id``, ``source``, then metadata.

    Example:
        >>> filter_columns(["key", "dir", "id", "source", "content_hash", "label"])
        ['id', 'source', 'label']
    """
    rest = [n for n in names if n not in (*SHOWN_FIRST, *_HIDDEN)]
    return [n for n in SHOWN_FIRST if n in names] + rest


def _one_line(error: Exception, names: Sequence[str]) -> str:
    """DuckDB's several-line message as one line, with the columns a filter can use."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("LINE ") and set(line) != {"^"}]
    text = re.sub(r"^[A-Za-z ]+ Error: ", "", lines[0] if lines else str(error))
    missing = re.match(r'Referenced column "([^"]+)" not found', text)
    if missing:
        text = f'column "{missing.group(1)}" not found'
        candidates = [re.findall(r'"([^"]+)"', line) for line in lines[1:]]
        suggested = [c for found in candidates for c in found if c not in _HIDDEN]
        if suggested:
            text += f' (did you mean "{suggested[0]}"?)'
    text = text.replace(" when casting from source column", " in column")
    return f"{text}; columns: {', '.join(filter_columns(names))}"
