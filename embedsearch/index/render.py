"""Query results for people (a rich table) and for scripts (json, jsonl, csv on a stream).

JSON schema (``--format json``): ``[{"type", "query", "hits": [{"rank", "id", "score",
"source", "dir", <metadata columns>...}]}]``. ``jsonl`` and ``csv`` have one line per
hit with ``query_index``, ``query_type`` and ``query`` in front of the hit fields. A metadata
column named like one of those fields is written as ``input_<name>``.

Example:
    >>> import io; buf = io.StringIO()
    >>> write_hits([], "jsonl", buf); buf.getvalue()
    ''
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import Any, TextIO

from embedsearch.index.query import QueryResult


def hit_rows(results: Sequence[QueryResult]) -> list[dict[str, Any]]:
    """One flat dict per hit, led by the query it answers."""
    return [
        {"query_index": number, "query_type": result.kind, "query": result.query, **hit.to_dict()}
        for number, result in enumerate(results)
        for hit in result.hits
    ]


def write_hits(results: Sequence[QueryResult], output_format: str, stream: TextIO) -> None:
    """Write ``results`` as ``json``, ``jsonl`` or ``csv`` to ``stream``."""
    if output_format == "json":
        json.dump([r.to_dict() for r in results], stream, indent=2, default=str)
        stream.write("\n")
        return
    rows = hit_rows(results)
    if output_format == "jsonl":
        stream.writelines(json.dumps(row, default=str) + "\n" for row in rows)
        return
    columns: list[str] = []
    for row in rows:
        columns.extend(name for name in row if name not in columns)
    writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


def hits_table(result: QueryResult, width: int = 120) -> Any:
    """A rich table of one query's hits: rank, id, score, source, then metadata columns that fit ``width``."""
    from rich.table import Table

    metadata = [name for hit in result.hits for name in hit.metadata]
    metadata = list(dict.fromkeys(m for m in metadata if m != "content_hash"))
    source_width = min(60, max((len(h.source) for h in result.hits), default=6))
    room = width - (6 + 8 + 9 + source_width + 4)
    shown = []
    for name in (
        metadata
    ):  # narrow terminals: leave out metadata columns that do not fit rather than wrap every cell
        column_width = (
            min(24, max([len(name)] + [len(str(h.metadata.get(name, ""))) for h in result.hits]))
            + 3
        )
        if column_width > room:
            continue
        shown.append(name)
        room -= column_width
    table = Table(title=f"{result.kind}: {result.query}", title_justify="left")
    table.add_column("rank", justify="right", no_wrap=True)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("source", no_wrap=True, overflow="ellipsis", max_width=60)
    for name in shown:
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=24)
    for hit in result.hits:
        table.add_row(
            str(hit.rank),
            str(hit.id),
            f"{hit.score:.4f}",
            hit.source,
            *(str(hit.metadata.get(name, "")) for name in shown),
        )
    return table
