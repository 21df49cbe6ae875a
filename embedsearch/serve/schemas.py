"""Request bodies of the JSON API (pydantic models: validated, and documented at ``/docs``),
and the checks that need the index (``k`` cap, vector dim) turned into :class:`Query` objects.

Example:
    >>> SearchBody(text="a red square", k=5).kind()
    'text'
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from embedsearch.errors import InputError
from embedsearch.serve.config import Limits
from embedsearch.serve.execute import Query, QueryKind
from embedsearch.serve.registry import Generation

_FIELDS: tuple[QueryKind | str, ...] = ("text", "id", "vector", "image_base64")
MAX_DIR = (1 << 23) - 1  # keys (dir << 40 | id) stay within int64
MAX_TEXT = 10_000


class QueryBody(BaseModel):
    """One query: exactly one of ``text``, ``id`` (with ``dir``), ``vector``, ``image_base64``."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(
        None, description="Text query (needs a model with a text tower).", max_length=MAX_TEXT
    )
    id: int | None = Field(
        None, description="Embedding id of an indexed row: search by its vector."
    )
    dir: int = Field(0, ge=0, le=MAX_DIR, description="With id: which source dir (0 = first).")
    vector: list[float] | None = Field(None, description="A query vector of the index's dim.")
    image_base64: str | None = Field(None, description="An image file, base64-encoded.")

    @model_validator(mode="after")
    def _exactly_one(self) -> QueryBody:
        given = [name for name in _FIELDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of text, id, vector, image_base64 "
                f"(got {', '.join(given) or 'none'})"
            )
        return self

    def kind(self) -> QueryKind:
        return (
            "image"
            if self.image_base64 is not None
            else next(name for name in ("text", "id", "vector") if getattr(self, name) is not None)
        )


WHERE_HELP = (
    "Only rows where this SQL condition holds, over the metadata columns, id and source "
    "(DuckDB syntax), e.g. \"license = 'cc0'\"."
)
MIN_SCORE_HELP = "Leave out hits scoring below this (fewer than k may come back)."


class FilterFields(BaseModel):
    """``where`` and ``min_score``: what every search request may add."""

    where: str | None = Field(None, description=WHERE_HELP, max_length=MAX_TEXT)
    min_score: float | None = Field(None, description=MIN_SCORE_HELP)


class SearchBody(QueryBody, FilterFields):
    """``POST /api/indexes/{name}/search``: one query, ``k`` and the filters."""

    k: int = Field(10, description="Hits to return (capped by the server).")


class BatchBody(FilterFields):
    """``POST /api/indexes/{name}/search/batch``: many queries, answered in order (the filters
    apply to all of them)."""

    model_config = ConfigDict(extra="forbid")

    queries: list[QueryBody] = Field(..., min_length=1)
    k: int = Field(10, description="Hits per query (capped by the server).")


def check_k(k: int, limits: Limits) -> int:
    if not 1 <= k <= limits.max_k:
        raise InputError(f"k must be between 1 and {limits.max_k}, got {k}")
    return k


def to_query(
    gen: Generation,
    body: QueryBody,
    k: int,
    limits: Limits,
    filters: FilterFields | None = None,
) -> Query:
    """A validated :class:`Query` (dim, finiteness, image size checked here, not in the batch);
    ``filters``: its ``where`` and ``min_score``."""
    kind = body.kind()
    value: Any
    if kind == "text":
        if not body.text or not body.text.strip():
            raise InputError("text query is empty")
        value = body.text
    elif kind == "id":
        value = body.id
    elif kind == "vector":
        value = vector_of(body.vector or [], gen.searcher.dim, gen.name)
    else:
        value = image_from_base64(body.image_base64 or "", limits)
    where, min_score = (filters.where, filters.min_score) if filters else (None, None)
    return Query(gen, kind, value, check_k(k, limits), body.dir, where, min_score)


def vector_of(values: list[float], dim: int, name: str) -> np.ndarray:
    with np.errstate(over="ignore"):  # 1e39 becomes inf, refused just below
        vector = np.asarray(values, np.float32)
    if vector.shape != (dim,):
        raise InputError(
            f"vector has {vector.size} numbers; index {name} holds vectors of dim {dim}"
        )
    if not np.isfinite(vector).all():
        raise InputError("vector contains NaN or infinite values")
    return vector


def image_from_base64(text: str, limits: Limits) -> bytes:
    if len(text) > limits.max_upload_bytes * 4 // 3 + 4:
        raise InputError(f"image is over the {limits.max_upload_bytes:,}-byte upload limit")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"image_base64 is not valid base64: {e}") from e
