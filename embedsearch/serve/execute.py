"""Answer a micro-batch of queries: one model forward per modality, one faiss search per k and
filter (``where``, ``min_score``).

Queries of one batch may name different indexes (generations) and kinds; they are grouped by
generation, embedded together (all texts in one forward, all images in another; the vectors of
all asked ids read in one pass over the embedding dir), then searched together. A query that
cannot be embedded (a corrupt upload, an id not in the index) fails alone.

Example:
    >>> process([Query(gen, "text", "a red square", k=5)])[0][0].source   # doctest: +SKIP
    '/data/shapes/square_red_0001.png'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from embedsearch.errors import EmbedsearchError, InputError
from embedsearch.serve.registry import Generation

QueryKind = Literal["text", "image", "id", "vector"]
KEY_BITS = 40  # embedsearch.index.layout: key = (dir << 40) | id


@dataclass(slots=True)
class Query:
    """One query: ``value`` is the text, the image bytes, the embedding id or the vector (dim,)."""

    generation: Generation
    kind: QueryKind
    value: Any
    k: int
    dir: int = 0
    where: str | None = None
    min_score: float | None = None


def process(queries: Sequence[Query]) -> list[Any]:
    """One outcome per query: its hit list, or the exception to answer it with."""
    outcomes: list[Any] = [None] * len(queries)
    groups: dict[int, list[int]] = {}
    for i, query in enumerate(queries):
        groups.setdefault(query.generation.number, []).append(i)
    for rows in groups.values():
        generation = queries[rows[0]].generation
        vectors, errors = embed_queries(generation, [queries[i] for i in rows])
        by_search: dict[tuple[int, str | None, float | None], list[int]] = {}
        for j, i in enumerate(rows):
            if errors[j] is not None:
                outcomes[i] = errors[j]
            else:
                query = queries[i]
                by_search.setdefault((query.k, query.where, query.min_score), []).append(j)
        for (k, where, min_score), members in by_search.items():
            try:
                hits = generation.searcher.search_vectors(
                    vectors[members], k, where=where, min_score=min_score
                )
            except EmbedsearchError as e:
                hits = [e] * len(members)
            for j, result in zip(members, hits, strict=True):
                outcomes[rows[j]] = result
    return outcomes


def embed_queries(
    gen: Generation, queries: Sequence[Query]
) -> tuple[np.ndarray, list[Exception | None]]:
    """(n, dim) query vectors and per-query errors (rows with an error hold zeros)."""
    vectors = np.zeros((len(queries), gen.searcher.dim), np.float32)
    errors: list[Exception | None] = [None] * len(queries)
    by_kind: dict[str, list[int]] = {}
    for i, query in enumerate(queries):
        by_kind.setdefault(query.kind, []).append(i)
    for kind, rows in by_kind.items():
        values = [queries[i].value for i in rows]
        try:
            if kind == "vector":
                vectors[rows] = np.stack(values)
                continue
            if kind == "text":
                gen.cache["encoder_used"] = True
                vectors[rows] = gen.searcher.encoder.embed_texts(values)
                continue
            if kind == "image":
                gen.cache["encoder_used"] = True
                found, failed = _embed_images(gen, values)
            else:
                found, failed = id_vectors(gen, [(queries[i].value, queries[i].dir) for i in rows])
        except EmbedsearchError as e:  # e.g. text queries on an image-only model: all of them fail
            for i in rows:
                errors[i] = e
            continue
        for j, i in enumerate(rows):
            if j in failed:
                errors[i] = failed[j]
            else:
                vectors[i] = found[j]
    return vectors, errors


def _embed_images(
    gen: Generation, blobs: list[bytes]
) -> tuple[dict[int, np.ndarray], dict[int, Exception]]:
    """Decode (with ``embed``'s limits: decompression bombs refused) and embed uploaded images."""
    import torch

    from embedsearch.data.decode import DecodeError, decode_image

    encoder = gen.searcher.encoder
    pixels, ok = [], []
    failed: dict[int, Exception] = {}
    for j, blob in enumerate(blobs):
        try:
            pixels.append(encoder.preprocess(decode_image(blob)))
            ok.append(j)
        except (DecodeError, OSError, ValueError, RuntimeError) as e:
            # untrusted bytes: whatever PIL or the transform make of them fails this query only
            failed[j] = InputError(f"cannot read the uploaded image: {str(e).splitlines()[0]}")
    found: dict[int, np.ndarray] = {}
    if pixels:
        embedded = encoder.embed_images(torch.stack(pixels))
        found = {j: embedded[n] for n, j in enumerate(ok)}
    return found, failed


def id_vectors(
    gen: Generation, asked: list[tuple[int, int]]
) -> tuple[dict[int, np.ndarray], dict[int, Exception]]:
    """Stored vectors of indexed rows ``(id, dir)``: one filtered read per embedding dir for all of
    them (the searcher's ``vector_of`` reads once per id), ``vector_of`` where that dir is gone."""
    found: dict[int, np.ndarray] = {}
    failed: dict[int, Exception] = {}
    wanted: dict[int, list[int]] = {}
    for j, (row_id, dir_number) in enumerate(asked):
        key = (
            (dir_number << KEY_BITS) | row_id
            if 0 <= row_id < (1 << KEY_BITS) and dir_number >= 0
            else -1
        )
        if key < 0 or gen.images.source_of(key) is None:
            failed[j] = InputError(
                f"id {row_id} (source dir #{dir_number}) is not in the index {gen.name}"
            )
        else:
            wanted.setdefault(dir_number, []).append(j)
    for dir_number, members in wanted.items():
        stored = _read_stored(gen, dir_number, sorted({asked[j][0] for j in members}))
        for j in members:
            vector = stored.get(asked[j][0])
            try:
                found[j] = (
                    vector
                    if vector is not None
                    else gen.searcher.vector_of(asked[j][0], dir_number)
                )
            except EmbedsearchError as e:
                failed[j] = e
    return found, failed


def _read_stored(gen: Generation, dir_number: int, ids: list[int]) -> dict[int, np.ndarray]:
    """id -> vector from ``sources[dir_number]``'s shards (empty when it is gone or differs)."""
    from embedsearch.serve.vectors import StoredVectors

    key = f"vectors:{dir_number}"
    if key not in gen.cache:  # opened once per generation (a republished index brings its own)
        sources = gen.info.get("sources", [])
        ok = 0 <= dir_number < len(sources)
        gen.cache[key] = (
            StoredVectors.open(
                sources[dir_number]["path"], gen.info["fingerprint"], gen.searcher.dim
            )
            if ok
            else None
        )
    stored = gen.cache[key]
    return {} if stored is None else stored.get(ids)
