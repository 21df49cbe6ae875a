"""Queries as the CLI states them: one text, image, id, vector file, or a file of many.

:func:`run_queries` is the one library call behind ``embedsearch query``: it opens the
index, embeds the queries with the index's own model and returns one
:class:`QueryResult` per query.

Example:
    >>> results = run_queries("indexes/photos", QuerySpec(text="a red circle"))  # doctest: +SKIP
    >>> results[0].hits[0].source                                                 # doctest: +SKIP
    'shapes/00017.png'
    >>> run_queries("indexes/photos", QuerySpec(text="a cat"), where="license = 'cc0'",
    ...             min_score=0.25)                                               # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.choices import Device
from embedsearch.data.decode import DecodeError, is_image_file, load_image
from embedsearch.errors import InputError
from embedsearch.index.layout import make_keys
from embedsearch.index.searcher import Hit, Searcher

_PATH_PREFIXES = ("/", "./", "../", "~/")


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
    """One query and its hits. ``kind``: text, image, id or vector.

    ``error`` says why a query of a ``--queries`` file could not be run (its hits are
    empty); the other lines are still answered.
    """

    kind: str
    query: str
    hits: list[Hit] = field(default_factory=list)
    error: str | None = None
    source: str | None = None  # an id query: the source of that row (its image, for a grid)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind, "query": self.query}
        if self.source is not None:
            data["source"] = self.source
        data["hits"] = [h.to_dict() for h in self.hits]
        if self.error is not None:
            data["error"] = self.error
        return data


def run_queries(
    index_dir: str | Path,
    spec: QuerySpec,
    k: int = 10,
    device: Device = "auto",
    notes: list[str] | None = None,
    model: str | None = None,
    *,
    where: str | None = None,
    min_score: float | None = None,
) -> list[QueryResult]:
    """Search ``index_dir`` with the query in ``spec``; one :class:`QueryResult` per query.

    ``where``: a SQL condition over the metadata columns, ``id`` and ``source`` (only rows where
    it holds are found); ``min_score``: hits scoring below it are left out. ``notes`` (when
    given) receives one-line remarks for the user, e.g. that ``k`` was capped at the number of
    indexed rows, or how many rows ``where`` keeps. ``model``: the run dir that embeds text/image
    queries when the index's own cannot be found (``query --model``; checked by fingerprint).
    """
    given = [
        name
        for name in ("text", "image", "embedding_id", "vector", "queries")
        if getattr(spec, name) is not None
    ]
    if len(given) != 1:
        raise InputError("give exactly one of --text, --image, --id, --vector, --queries")
    searcher = Searcher.open(index_dir, device=device, model=model)
    if k > searcher.ntotal and notes is not None:
        notes.append(
            f"-k {k:,} is more than the {searcher.ntotal:,} indexed rows; using {searcher.ntotal:,}"
        )
    filters = _Filters(searcher, where, min_score)
    if where is not None and notes is not None:
        notes.append(filters.note())
    if spec.text is not None:
        return [QueryResult("text", spec.text, filters.search(searcher.search_text, spec.text, k))]
    if spec.image is not None:
        hits = filters.search(searcher.search_image, spec.image, k)
        return [QueryResult("image", str(spec.image), hits)]
    if spec.embedding_id is not None:
        hits = filters.search(searcher.search_id, spec.embedding_id, k, spec.dir)
        source = _source_of(searcher, spec.embedding_id, spec.dir)
        return [QueryResult("id", str(spec.embedding_id), hits, source=source)]
    if spec.vector is not None:
        vectors = _load_vectors(spec.vector)
        return [
            QueryResult("vector", f"{spec.vector}[{row}]", hits)
            for row, hits in enumerate(filters.search(searcher.search_vectors, vectors, k))
        ]
    assert spec.queries is not None  # exactly one field is set (checked above)
    return _run_file(searcher, spec.queries, k, filters)


@dataclass
class _Filters:
    """``where`` and ``min_score`` of a ``query`` run, passed to every search."""

    searcher: Searcher
    where: str | None
    min_score: float | None

    def search(self, method: Any, *args: Any) -> Any:
        return method(*args, where=self.where, min_score=self.min_score)

    def note(self) -> str:
        plan = self.searcher.filter_plan(self.where)
        return (
            f"--where keeps {plan.allowed:,} of {self.searcher.ntotal:,} rows ({plan.describe()})"
        )


def _source_of(searcher: Searcher, embedding_id: int, dir: int) -> str | None:
    """The ``source`` an indexed row was embedded from (search_id has checked it is there)."""
    rows = searcher.store.take(make_keys(np.array([embedding_id]), dir))
    return rows.column("source")[0].as_py()


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


def _run_file(searcher: Searcher, path: Path, k: int, filters: _Filters) -> list[QueryResult]:
    """Lines that look like image paths are image queries, the rest texts; each kind a batch.

    A line looks like an image path when it ends in an image extension or starts with
    ``/``, ``./``, ``../`` or ``~/``; if it names no readable image, that line gets an
    ``error`` instead of silently running as a text query.
    """
    try:
        lines = [
            line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--queries {path} is not a readable text file: {e}") from e
    if not lines:
        raise InputError(f"--queries {path} holds no queries")
    results: dict[int, QueryResult] = {}
    images: dict[int, Any] = {}
    for i, line in enumerate(lines):
        if not looks_like_image_path(line):
            continue
        try:
            images[i] = load_image(_image_path(line, path.parent))
        except DecodeError as e:
            results[i] = QueryResult("image", line, error=f"line {i + 1}: {e}")
    if images:
        rows = list(images)
        found = filters.search(searcher.search_images, [images[i] for i in rows], k)
        for i, hits in zip(rows, found, strict=True):
            results[i] = QueryResult("image", lines[i], hits)
    text_rows = [i for i in range(len(lines)) if i not in results]
    if text_rows:
        texts = [lines[i] for i in text_rows]
        for i, hits in zip(text_rows, filters.search(searcher.search_texts, texts, k), strict=True):
            results[i] = QueryResult("text", lines[i], hits)
    return [results[i] for i in range(len(lines))]


def looks_like_image_path(line: str) -> bool:
    """True for a ``--queries`` line meant as an image file rather than a text.

    Example:
        >>> looks_like_image_path("photos/cat.jpg"), looks_like_image_path("./cat")
        (True, True)
        >>> looks_like_image_path("a cat and/or a dog")
        False
    """
    return is_image_file(line) or line.startswith(_PATH_PREFIXES)


def _image_path(line: str, base: Path) -> Path:
    """The file a path line names: as written (``~`` expanded), else relative to ``base``."""
    given = Path(line).expanduser()
    if given.is_absolute() or given.exists():
        return given
    return base / given
