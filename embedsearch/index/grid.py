"""``--grid``: a contact-sheet PNG, one row per query: the query (image or text), then its hits.

Hits whose source is an image file show the image with rank and score; other hits (texts,
images that are gone) show their source text.

Example:
    >>> write_grid(run_queries("indexes/photos", QuerySpec(text="a cat")), "grid.png")  # doctest: +SKIP
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embedsearch.errors import InputError
from embedsearch.index.query import QueryResult

THUMB = 128
LABEL = 30
PAD = 6
MAX_ROWS = 32


def write_grid(results: Sequence[QueryResult], path: str | Path, thumb: int = THUMB) -> Path:
    """Draw ``results`` (at most 32 queries) into a PNG at ``path`` (written atomically)."""
    from PIL import Image, ImageDraw

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"--grid {path} must be a .png file")
    rows = list(results)[:MAX_ROWS]
    columns = 1 + max((len(r.hits) for r in rows), default=0)
    cell_w, cell_h = thumb + PAD, thumb + LABEL + PAD
    sheet = Image.new(
        "RGB", (max(1, columns) * cell_w + PAD, max(1, len(rows)) * cell_h + PAD), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for row, result in enumerate(rows):
        y = PAD + row * cell_h
        query_image = Path(result.query) if result.kind == "image" else None
        _cell(
            sheet,
            draw,
            PAD,
            y,
            thumb,
            query_image,
            result.query,
            f"query ({result.kind})",
            "#1f4e99",
        )
        for col, hit in enumerate(result.hits, start=1):
            _cell(
                sheet,
                draw,
                PAD + col * cell_w,
                y,
                thumb,
                Path(hit.source),
                hit.source,
                f"#{hit.rank}  {hit.score:.3f}",
                "#444444",
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sheet.save(tmp, format="PNG")
    tmp.replace(path)
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
        try:
            image = load_image(image_path, draft_size=thumb)
        except DecodeError:
            image = None
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
