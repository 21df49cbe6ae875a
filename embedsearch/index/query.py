"""Queries as the CLI states them: one text, image, id, vector file, or a file of many.

:func:`run_queries` is the one library call behind ``embedsearch query``: it opens the
index, embeds the queries with the index's own model and returns one
:class:`QueryResult` per query.

Example:
    >>> results = run_queries("indexes/photos", QuerySpec(text="a red circle"))  # doctest: +SKIP
    >>> results[0].hits[0].source                                                 # doctest: +SKIP
    'shapes/00017.png'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.choices import Device
from embedsearch.data.decode import is_image_file
from embedsearch.errors import InputError
from embedsearch.index.searcher import Hit, Searcher


@dataclass
class QuerySpec:
    """Exactly one of the fields is set (``dir`` goes with ``embedding_id``)."""

    text: str | None = None
    image: Path | None = None
    embedding_id: int | None = None
    dir: int = 0
    vector: Path | None = None
    queries: Path | None = None


@dataclass
class QueryResult:
    """One query and its hits. ``kind``: text, image, id or vector."""

    kind: str
    query: str
    hits: list[Hit] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "query": self.query, "hits": [h.to_dict() for h in self.hits]}


def run_queries(
    index_dir: str | Path, spec: QuerySpec, k: int = 10, device: Device = "auto"
) -> list[QueryResult]:
    """Search ``index_dir`` with the query in ``spec``; one :class:`QueryResult` per query."""
    given = [
        name
        for name in ("text", "image", "embedding_id", "vector", "queries")
        if getattr(spec, name) is not None
    ]
    if len(given) != 1:
        raise InputError("give exactly one of --text, --image, --id, --vector, --queries")
    searcher = Searcher.open(index_dir, device=device)
    if spec.text is not None:
        return [QueryResult("text", spec.text, searcher.search_text(spec.text, k))]
    if spec.image is not None:
        return [QueryResult("image", str(spec.image), searcher.search_image(spec.image, k))]
    if spec.embedding_id is not None:
        return [
            QueryResult(
                "id", str(spec.embedding_id), searcher.search_id(spec.embedding_id, k, spec.dir)
            )
        ]
    if spec.vector is not None:
        vectors = _load_vectors(spec.vector)
        return [
            QueryResult("vector", f"{spec.vector}[{row}]", hits)
            for row, hits in enumerate(searcher.search_vectors(vectors, k))
        ]
    assert spec.queries is not None  # exactly one field is set (checked above)
    return _run_file(searcher, spec.queries, k)


def _load_vectors(path: Path) -> np.ndarray:
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"--vector {path} is not a readable .npy file: {e}") from e
    if vectors.ndim not in (1, 2) or not np.issubdtype(vectors.dtype, np.number):
        raise InputError(
            f"--vector {path} must hold a numeric (dim,) or (n, dim) array, got {vectors.shape}"
        )
    return np.atleast_2d(vectors).astype(np.float32)


def _run_file(searcher: Searcher, path: Path, k: int) -> list[QueryResult]:
    """Lines naming an existing image file are image queries, the rest texts; each kind a batch."""
    try:
        lines = [
            line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--queries {path} is not a readable text file: {e}") from e
    if not lines:
        raise InputError(f"--queries {path} holds no queries")
    base = path.parent
    images = {i: _as_image(line, base) for i, line in enumerate(lines)}
    image_rows = [i for i, p in images.items() if p is not None]
    text_rows = [i for i, p in images.items() if p is None]
    results: dict[int, QueryResult] = {}
    if image_rows:
        for i, hits in zip(
            image_rows, searcher.search_images([images[i] for i in image_rows], k), strict=False
        ):
            results[i] = QueryResult("image", lines[i], hits)
    if text_rows:
        for i, hits in zip(
            text_rows, searcher.search_texts([lines[i] for i in text_rows], k), strict=False
        ):
            results[i] = QueryResult("text", lines[i], hits)
    return [results[i] for i in range(len(lines))]


def _as_image(line: str, base: Path) -> Path | None:
    for candidate in (Path(line).expanduser(), base / line):
        if is_image_file(candidate) and candidate.is_file():
            return candidate
    return None
