"""Query results for people (a rich table, a contact-sheet PNG) and for scripts (json, jsonl,
csv on a stream): the one place hits are rendered; the library returns data.

JSON schema (``--format json``): ``[{"type", "query", ["source",] ["score_scale",] "hits":
[{"rank", "id", "score", ["percentile",] "source", "dir", <metadata columns>...}]}]``. ``jsonl``
and ``csv`` have one line per hit with ``query_index``, ``query_type`` and ``query`` in front
of the hit fields. A metadata column named like one of those fields is written as
``input_<name>``. ``source``: the file an ``--id`` query stands for. ``percentile`` and
``score_scale`` say what a score means in this index (:class:`~embedsearch.index.scores.
ScoreScale`): the % of random pairs of the index that score lower (1…99), and the recorded
percentiles it is read from; both are absent for an index built before they were recorded.

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
from embedsearch.index.scores import ScoreScale
from embedsearch.index.searcher import Hit

HitFormat = Literal["json", "jsonl", "csv"]
THUMB = 128
LABEL = 30  # two lines under a tile: rank and score, file name
PAD = 6
MAX_ROWS = 32


def hit_dict(hit: Hit, scale: ScoreScale | None = None) -> dict[str, Any]:
    """A hit's fields, with its ``percentile`` after the score when ``scale`` knows it."""
    fields = list(hit.to_dict().items())
    percentile = scale.percentile(hit.score) if scale is not None else None
    if percentile is None:
        return dict(fields)
    at = [name for name, _ in fields].index("score") + 1
    return dict([*fields[:at], ("percentile", percentile), *fields[at:]])


def _scale_of(result: QueryResult, scale: ScoreScale | None) -> ScoreScale | None:
    """``scale`` when it describes ``result``'s scores (not a text query of an image index)."""
    return scale if scale is not None and scale.applies_to(result.kind) else None


def result_dict(result: QueryResult, scale: ScoreScale | None = None) -> dict[str, Any]:
    """One query of the ``json`` format: its fields, ``score_scale``, hits with percentiles."""
    scale = _scale_of(result, scale)
    data = result.to_dict()
    data["hits"] = [hit_dict(hit, scale) for hit in result.hits]
    if scale is not None and scale.known:
        hits = data.pop("hits")
        data["score_scale"] = scale.to_dict()
        data["hits"] = hits  # last, as before: the long part of each query
    return data


def hit_rows(
    results: Sequence[QueryResult], scale: ScoreScale | None = None
) -> list[dict[str, Any]]:
    """One flat dict per hit, led by the query it answers."""
    return [
        {
            "query_index": number,
            "query_type": result.kind,
            "query": result.query,
            **hit_dict(hit, _scale_of(result, scale)),
        }
        for number, result in enumerate(results)
        for hit in result.hits
    ]


def write_hits(
    results: Sequence[QueryResult],
    output_format: HitFormat,
    stream: IO[str],
    scale: ScoreScale | None = None,
) -> None:
    """Write ``results`` as ``json``, ``jsonl`` or ``csv`` to ``stream``; with ``scale`` (the
    index's :class:`ScoreScale`) every hit carries its ``percentile`` too."""
    if output_format == "json":
        json.dump([result_dict(r, scale) for r in results], stream, indent=2, default=str)
        stream.write("\n")
        return
    rows = hit_rows(results, scale)
    if output_format == "jsonl":
        stream.writelines(json.dumps(row, default=str) + "\n" for row in rows)
        return
    columns: list[str] = []
    for row in rows:
        columns.extend(name for name in row if name not in columns)
    writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


def hits_table(result: QueryResult, width: int = 120, scale: ScoreScale | None = None) -> Any:
    """A rich table of one query's hits: rank, id, score, percentile (with ``scale``), source,
    then the metadata columns that fit ``width``.

    Numbers are never cut: their columns are as wide as their longest value; a source too long
    for the room left loses its leading folders (``…/dir/file.png``, :func:`shorten_path`).
    """
    from rich.table import Table

    scale = _scale_of(result, scale)
    percentiles = [scale.percentile(h.score) if scale is not None else None for h in result.hits]
    numbers: dict[str, list[str]] = {
        "rank": [str(h.rank) for h in result.hits],
        "id": [str(h.id) for h in result.hits],
        "score": [f"{h.score:.4f}" for h in result.hits],
    }
    if any(p is not None for p in percentiles):
        numbers["pct"] = [_percentile_text(p) for p in percentiles]
    widths = {name: max([len(name), *map(len, cells)]) for name, cells in numbers.items()}
    longest = max((len(h.source) for h in result.hits), default=6)
    # each column: its text, a space either side and a rule; one more rule closes the row
    free = width - 1 - sum(w + 3 for w in widths.values()) - 3
    wanted = min(MAX_SOURCE, longest)
    room = free - min(wanted, SOURCE_KEPT)  # metadata may take what the source can spare
    shown = []
    # narrow terminals: leave out metadata columns that do not fit rather than wrap every cell
    for name in _metadata_names(result):
        column_width = min(24, _longest(result, name)) + 3
        if column_width <= room:
            shown.append(name)
            room -= column_width
    used = sum(min(24, _longest(result, name)) + 3 for name in shown)
    source_width = max(MIN_SOURCE, min(wanted, free - used))
    table = Table(title=_title(result, width), title_justify="left")
    for name in numbers:
        table.add_column(name, justify="right", no_wrap=True, min_width=widths[name])
    table.add_column("source", no_wrap=True, overflow="ellipsis", max_width=source_width)
    for name in shown:
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=24)
    for row, hit in enumerate(result.hits):
        table.add_row(
            *(cells[row] for cells in numbers.values()),
            shorten_path(hit.source, source_width),
            *(str(hit.metadata.get(name, "")) for name in shown),
        )
    return table


MIN_SOURCE = 12  # a source column narrower than this says nothing
MAX_SOURCE = 60
SOURCE_KEPT = 28  # what a source keeps before metadata columns get room: …/folder/file.png


def _percentile_text(percentile: float | None) -> str:
    """``99.0`` and ``1.0`` are the ends of the recorded range: at least / at most that."""
    if percentile is None:
        return "-"
    if percentile >= 99:
        return ">=99"
    if percentile <= 1:
        return "<=1"
    return f"{percentile:.0f}" if percentile >= 10 else f"{percentile:.1f}"


def _metadata_names(result: QueryResult) -> list[str]:
    names = [name for hit in result.hits for name in hit.metadata]
    return list(dict.fromkeys(m for m in names if m != "content_hash"))


def _longest(result: QueryResult, name: str) -> int:
    return max([len(name)] + [len(str(h.metadata.get(name, ""))) for h in result.hits])


def _title(result: QueryResult, width: int) -> str:
    title = f"{result.kind}: {result.query}"
    if result.source is not None:  # an --id query: which file it stands for
        title += f" ({shorten_path(result.source, max(MIN_SOURCE, width - len(title) - 3))})"
    return title


def shorten_path(path: str, width: int) -> str:
    """``path`` in at most ``width`` characters, losing leading folders first (``…/dir/f.png``),
    then the start of the file name; the end of a path is what tells files apart.

    Example:
        >>> shorten_path("/data/photos/2026/holiday/cat.png", 20)
        '…/holiday/cat.png'
        >>> shorten_path("/data/a-very-long-file-name.png", 12)
        '…le-name.png'
    """
    if len(path) <= width:
        return path
    parts = path.split("/")
    for start in range(1, len(parts)):
        shortened = "…/" + "/".join(parts[start:])
        if len(shortened) <= width:
            return shortened
    return "…" + path[len(path) - max(width - 1, 0) :] if width > 1 else "…"


def write_grid(
    results: Sequence[QueryResult],
    path: str | Path,
    thumb: int = THUMB,
    frames: Sequence[Sequence[str]] | None = None,
    legend: Sequence[tuple[str, str]] = (),
) -> Path:
    """A contact sheet at ``path`` (written atomically): a row per query (at most 32), the query
    (its image: the file of an image query or of an ``--id`` row; else its text) and then its
    hits, image hits as thumbnails, each tile labelled with rank, score and file name, others as
    their source text. ``frames``: a colour a hit for its frame (e.g. green = a correct hit);
    ``legend``: ``(colour, meaning)`` pairs drawn under the rows, saying what the frames mean.

    Example:
        >>> results = run_queries("indexes/photos", QuerySpec(text="a cat"))   # doctest: +SKIP
        >>> write_grid(results, "grid.png")                                   # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"--grid {path} must be a .png file")
    rows = []
    for row, result in enumerate(list(results)[:MAX_ROWS]):
        own = result.source if result.kind == "id" else result.query
        query_image = Path(own) if own is not None and result.kind in ("image", "id") else None
        name = _tile_name(str(query_image), thumb) if query_image is not None else ""
        cells = [Tile(query_image, result.query, f"query ({result.kind})", "#1f4e99", name)]
        colours = frames[row] if frames is not None else ["#444444"] * len(result.hits)
        for hit, colour in zip(result.hits, colours, strict=True):
            label = f"#{hit.rank}  {hit.score:.3f}"
            cells.append(
                Tile(Path(hit.source), hit.source, label, colour, _tile_name(hit.source, thumb))
            )
        rows.append(cells)
    return write_sheet(rows, path, thumb, legend=legend)


@dataclass(frozen=True)
class Tile:
    """One cell of a sheet: the image at ``image`` as a thumbnail (else ``text`` in words),
    ``label`` and ``name`` under it, ``colour`` its frame and label."""

    image: Path | None
    text: str
    label: str
    colour: str = "#444444"
    name: str = ""


LEGEND = 18  # height of a legend line
LEGEND_W = 420  # the sheet is at least this wide when it has a legend, so its lines fit


def write_sheet(
    rows: Sequence[Sequence[Tile]],
    path: str | Path,
    thumb: int = THUMB,
    title: str = "",
    legend: Sequence[tuple[str, str]] = (),
) -> Path:
    """Rows of tiles as one PNG/JPEG at ``path`` (written atomically), ``title`` above them and
    ``legend`` (``(colour, meaning)`` pairs) below.

    Each image is decoded at thumbnail size (JPEG draft mode), so the cost is the tiles', not the
    files'.
    """
    from PIL import Image, ImageDraw

    path = Path(path)
    columns = max((len(r) for r in rows), default=1)
    cell_w, cell_h = thumb + PAD, thumb + LABEL + PAD
    width = max(columns * cell_w, LEGEND_W if legend else 0) + PAD
    lines = textwrap.wrap(title, width=max(20, (width - 2 * PAD) // 6))  # ~6 px a character
    top = max(LABEL, 12 * len(lines) + PAD) if lines else 0
    legend_h = LEGEND * len(legend) + (PAD if legend else 0)
    height = max(1, len(rows)) * cell_h + PAD + top + legend_h
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.multiline_text((PAD, PAD), "\n".join(lines), fill="black", spacing=2)
    for row, cells in enumerate(rows):
        for col, cell in enumerate(cells):
            x, y = PAD + col * cell_w, PAD + top + row * cell_h
            _cell(sheet, draw, x, y, thumb, cell)
    bottom = PAD + top + max(1, len(rows)) * cell_h
    for number, (colour, meaning) in enumerate(legend):
        y = bottom + number * LEGEND
        draw.rectangle([PAD, y + 2, PAD + 12, y + 14], outline=colour, width=2)
        draw.text((PAD + 20, y + 3), meaning, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image_format = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    with replacing(path) as tmp:
        sheet.save(tmp, format=image_format)
    return path


def _tile_name(source: str, thumb: int) -> str:
    """The file name shown under a tile: the end of ``source``, as much as a tile's width holds
    (about 6 pixels a character in PIL's default font)."""
    return shorten_path(Path(source).name, max(4, thumb // 6))


def _cell(sheet: Any, draw: Any, x: int, y: int, thumb: int, tile: Tile) -> None:
    from embedsearch.data.decode import DecodeError, is_image_file, load_image

    image = None
    if tile.image is not None and is_image_file(tile.image) and tile.image.is_file():
        with contextlib.suppress(DecodeError):  # an unreadable image is drawn as its words
            image = load_image(tile.image, draft_size=thumb)
    draw.rectangle([x - 1, y - 1, x + thumb, y + thumb], outline=tile.colour, width=2)
    if image is not None:
        scale = thumb / max(image.size)  # small images are enlarged too, so every tile is legible
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        )
        sheet.paste(image, (x + (thumb - image.width) // 2, y + (thumb - image.height) // 2))
    else:  # a text query or a non-image hit: its words
        wrapped = textwrap.wrap(tile.text, width=max(8, thumb // 7))[: thumb // 12]
        draw.multiline_text((x + 4, y + 4), "\n".join(wrapped), fill="black", spacing=1)
    draw.text((x, y + thumb + 3), tile.label, fill=tile.colour)
    draw.text((x, y + thumb + 15), tile.name, fill="black")
