"""Query results for people (a rich table, a contact-sheet PNG) and for scripts (json, jsonl,
csv on a stream): the one place hits are rendered; the library returns data.

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

import contextlib
import csv
import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from embedsearch.atomic import replacing
from embedsearch.errors import InputError
from embedsearch.index.query import QueryResult

HitFormat = Literal["json", "jsonl", "csv"]
THUMB = 128
LABEL = 30
PAD = 6
MAX_ROWS = 32


def hit_rows(results: Sequence[QueryResult]) -> list[dict[str, Any]]:
    """One flat dict per hit, led by the query it answers."""
    return [
        {"query_index": number, "query_type": result.kind, "query": result.query, **hit.to_dict()}
        for number, result in enumerate(results)
        for hit in result.hits
    ]


def write_hits(results: Sequence[QueryResult], output_format: HitFormat, stream: IO[str]) -> None:
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
    """A rich table of one query's hits: rank, id, score, source, then the metadata columns
    that fit ``width``."""
    from rich.table import Table

    metadata = [name for hit in result.hits for name in hit.metadata]
    metadata = list(dict.fromkeys(m for m in metadata if m != "content_hash"))
    source_width = min(60, max((len(h.source) for h in result.hits), default=6))
    room = width - (6 + 8 + 9 + source_width + 4)
    shown = []
    # narrow terminals: leave out metadata columns that do not fit rather than wrap every cell
    for name in metadata:
        longest = max([len(name)] + [len(str(h.metadata.get(name, ""))) for h in result.hits])
        column_width = min(24, longest) + 3
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


def write_grid(
    results: Sequence[QueryResult],
    path: str | Path,
    thumb: int = THUMB,
    frames: Sequence[Sequence[str]] | None = None,
) -> Path:
    """A contact sheet at ``path`` (written atomically): a row per query (at most 32), the query
    (image or text) and then its hits, image hits as thumbnails with rank and score, others as
    their source text. ``frames``: a colour a hit for its frame (e.g. green = a correct hit).

    Example:
        >>> results = run_queries("indexes/photos", QuerySpec(text="a cat"))   # doctest: +SKIP
        >>> write_grid(results, "grid.png")                                   # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"--grid {path} must be a .png file")
    rows = []
    for row, result in enumerate(list(results)[:MAX_ROWS]):
        query_image = Path(result.query) if result.kind == "image" else None
        cells = [Tile(query_image, result.query, f"query ({result.kind})", "#1f4e99")]
        colours = frames[row] if frames is not None else ["#444444"] * len(result.hits)
        for hit, colour in zip(result.hits, colours, strict=True):
            cells.append(
                Tile(Path(hit.source), hit.source, f"#{hit.rank}  {hit.score:.3f}", colour)
            )
        rows.append(cells)
    return write_sheet(rows, path, thumb)


@dataclass(frozen=True)
class Tile:
    """One cell of a sheet: the image at ``image`` as a thumbnail (else ``text`` in words),
    ``label`` under it, ``colour`` its frame and label."""

    image: Path | None
    text: str
    label: str
    colour: str = "#444444"


def write_sheet(
    rows: Sequence[Sequence[Tile]], path: str | Path, thumb: int = THUMB, title: str = ""
) -> Path:
    """Rows of tiles as one PNG/JPEG at ``path`` (written atomically), ``title`` above them.

    Each image is decoded at thumbnail size (JPEG draft mode), so the cost is the tiles', not the
    files'.
    """
    from PIL import Image, ImageDraw

    path = Path(path)
    columns = max((len(r) for r in rows), default=1)
    cell_w, cell_h = thumb + PAD, thumb + LABEL + PAD
    width = columns * cell_w + PAD
    lines = textwrap.wrap(title, width=max(20, (width - 2 * PAD) // 6))  # ~6 px a character
    top = max(LABEL, 12 * len(lines) + PAD) if lines else 0
    sheet = Image.new("RGB", (width, max(1, len(rows)) * cell_h + PAD + top), "white")
    draw = ImageDraw.Draw(sheet)
    draw.multiline_text((PAD, PAD), "\n".join(lines), fill="black", spacing=2)
    for row, cells in enumerate(rows):
        for col, cell in enumerate(cells):
            x, y = PAD + col * cell_w, PAD + top + row * cell_h
            _cell(sheet, draw, x, y, thumb, cell.image, cell.text, cell.label, cell.colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_format = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    with replacing(path) as tmp:
        sheet.save(tmp, format=image_format)
    return path


def _cell(
    sheet: Any,
    draw: Any,
    x: int,
    y: int,
    thumb: int,
    image_path: Path | None,
    text: str,
    label: str,
    colour: str,
) -> None:
    from embedsearch.data.decode import DecodeError, is_image_file, load_image

    image = None
    if image_path is not None and is_image_file(image_path) and image_path.is_file():
        with contextlib.suppress(DecodeError):  # an unreadable image is drawn as its words
            image = load_image(image_path, draft_size=thumb)
    draw.rectangle([x - 1, y - 1, x + thumb, y + thumb], outline=colour, width=2)
    if image is not None:
        scale = thumb / max(image.size)  # small images are enlarged too, so every tile is legible
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        )
        sheet.paste(image, (x + (thumb - image.width) // 2, y + (thumb - image.height) // 2))
    else:  # a text query or a non-image hit: its words
        wrapped = textwrap.wrap(text, width=max(8, thumb // 7))[: thumb // 12]
        draw.multiline_text((x + 4, y + 4), "\n".join(wrapped), fill="black", spacing=1)
    draw.text((x, y + thumb + 4), label, fill=colour)
