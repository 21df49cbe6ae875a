"""The JSON API: indexes, search (text, image, id, vector, batch), images by key, dedup, health.

Every route answers JSON; errors are ``{"error": "<one line>"}`` with a 4xx status (see
:mod:`embedsearch.serve.app` for the mapping). Hits are ``rank, id, dir, key, score, source,
metadata``; ``key`` names the row for ``/image/{key}``; ``id`` + ``dir`` search by this hit.
Every search route also takes ``where`` (a SQL condition over the metadata columns, ``id`` and
``source``) and ``min_score`` (see :mod:`embedsearch.index.filters`); a bad condition is a 400.

Example (shell):
    curl -s 'http://127.0.0.1:8000/api/indexes/photos/search?text=a+red+square&k=5'
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, Response, UploadFile
from fastapi import Query as Param

from embedsearch.errors import InputError
from embedsearch.serve.execute import KEY_BITS, Query
from embedsearch.serve.registry import Generation
from embedsearch.serve.schemas import (
    MAX_DIR,
    MAX_TEXT,
    MIN_SCORE_HELP,
    WHERE_HELP,
    BatchBody,
    FilterFields,
    QueryBody,
    SearchBody,
    check_k,
    to_query,
)
from embedsearch.serve.state import ServerState

router = APIRouter(prefix="/api")


class NotFound(InputError):
    """Answered with 404 (an unknown image key, a path that is not served)."""


def _state(request: Request) -> ServerState:
    return request.app.state.server


def json_response(payload: Any, status: int = 200) -> Response:
    # json.dumps straight to bytes: a 10-hit answer costs ~40 us, not FastAPI's encoder's ~400
    try:
        body = json.dumps(payload, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:  # NaN/inf in a metadata column: JSON has no such numbers, send null
        body = json.dumps(_finite(payload), separators=(",", ":"), default=str, allow_nan=False)
    return Response(body.encode(), status, media_type="application/json")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def hit_rows(hits: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "rank": h.rank,
            "id": h.id,
            "dir": h.dir,
            "key": (h.dir << KEY_BITS) | h.id,
            "score": round(h.score, 6),
            "source": h.source,
            "metadata": h.metadata,
        }
        for h in hits
    ]


def _describe(query: Query) -> dict[str, Any]:
    if query.kind == "text":
        return {"type": "text", "text": query.value}
    if query.kind == "id":
        return {"type": "id", "id": query.value, "dir": query.dir}
    return {"type": query.kind}


async def _answer(state: ServerState, queries: list[Query]) -> list[dict[str, Any]]:
    outcomes = await state.search(queries)
    for n, outcome in enumerate(outcomes):
        if isinstance(outcome, BaseException):
            if len(outcomes) > 1 and isinstance(outcome, InputError):
                raise type(outcome)(f"query {n}: {outcome}") from outcome
            raise outcome
    return [
        {"query": _describe(q), "hits": hit_rows(hits)}
        for q, hits in zip(queries, outcomes, strict=True)
    ]


@router.get("/health", summary="Liveness, served indexes and batching counters")
async def health(request: Request) -> Response:
    state = _state(request)
    stats = state.batcher.stats
    return json_response(
        {
            "status": "ok",
            "uptime_s": round(time.time() - state.started, 1),
            "indexes": state.registry.names,
            "reloads": state.registry.reloads,
            "reload_errors": state.registry.reload_errors,
            "batches": stats.batches,
            "queries": stats.items,
            "largest_batch": stats.largest,
            "mean_batch": round(stats.items / stats.batches, 2) if stats.batches else 0.0,
        }
    )


@router.get("/indexes", summary="The served indexes with their index.json summary")
async def list_indexes(request: Request) -> Response:
    state = _state(request)
    return json_response(
        {
            "indexes": [g.summary() for g in state.registry.generations()],
            "dedup": state.dedup.summary if state.dedup else None,
            "limits": {
                "max_k": state.config.limits.max_k,
                "max_upload_bytes": state.config.limits.max_upload_bytes,
            },
        }
    )


@router.get("/indexes/{name}", summary="One index: summary and its full index.json")
async def describe_index(request: Request, name: str) -> Response:
    gen = _state(request).registry.get(name)
    return json_response({**gen.summary(), "index_json": gen.info})


@router.get("/indexes/{name}/search", summary="Search by text or by the id of an indexed row")
async def search_get(
    request: Request,
    name: str,
    text: str | None = None,
    id: int | None = None,
    dir: Annotated[int, Param(ge=0, le=MAX_DIR)] = 0,
    k: int = 10,
    where: Annotated[str | None, Param(max_length=MAX_TEXT, description=WHERE_HELP)] = None,
    min_score: Annotated[float | None, Param(description=MIN_SCORE_HELP)] = None,
) -> Response:
    state = _state(request)
    gen = state.registry.get(name)
    if (text is None) == (id is None):
        raise InputError(
            "give exactly one of ?text= or ?id= (POST a JSON body for vectors, "
            "POST /search/image for an image)"
        )
    if text is not None and len(text) > MAX_TEXT:
        raise InputError(f"text query is over {MAX_TEXT:,} characters")
    query = to_query(
        gen,
        QueryBody(text=text, id=id, dir=dir, vector=None, image_base64=None),
        k,
        state.config.limits,
        FilterFields(where=where, min_score=min_score),
    )
    return json_response({"index": name, "k": k, **(await _answer(state, [query]))[0]})


@router.post(
    "/indexes/{name}/search", summary="Search by text, id, vector or base64 image (JSON body)"
)
async def search_post(request: Request, name: str, body: SearchBody) -> Response:
    state = _state(request)
    query = to_query(state.registry.get(name), body, body.k, state.config.limits, body)
    return json_response({"index": name, "k": body.k, **(await _answer(state, [query]))[0]})


@router.post(
    "/indexes/{name}/search/image", summary="Search by an uploaded image (multipart field 'file')"
)
async def search_image(
    request: Request,
    name: str,
    file: Annotated[UploadFile, File()],
    k: int = 10,
    where: Annotated[str | None, Param(max_length=MAX_TEXT, description=WHERE_HELP)] = None,
    min_score: Annotated[float | None, Param(description=MIN_SCORE_HELP)] = None,
) -> Response:
    state = _state(request)
    limits = state.config.limits
    gen = state.registry.get(name)
    check_k(k, limits)
    data = await file.read(limits.max_upload_bytes + 1)
    if len(data) > limits.max_upload_bytes:
        raise InputError(f"uploaded image is over the {limits.max_upload_bytes:,}-byte limit")
    if not data:
        raise InputError("uploaded file is empty")
    query = Query(gen, "image", data, k, 0, where, min_score)
    return json_response({"index": name, "k": k, **(await _answer(state, [query]))[0]})


@router.post(
    "/indexes/{name}/search/batch", summary="Many queries in one request, answered in order"
)
async def search_batch(request: Request, name: str, body: BatchBody) -> Response:
    state = _state(request)
    limits = state.config.limits
    if len(body.queries) > limits.max_batch_queries:
        raise InputError(
            f"{len(body.queries)} queries in one batch; the limit is {limits.max_batch_queries}"
        )
    gen = state.registry.get(name)
    queries = []
    for n, item in enumerate(body.queries):
        try:
            queries.append(to_query(gen, item, body.k, limits, body))
        except InputError as e:
            raise InputError(f"query {n}: {e}") from e
    return json_response({"index": name, "k": body.k, "results": await _answer(state, queries)})


def _parse_key(key: str) -> int:
    # a key is digits only: anything else (../, %2e%2e%2f, /etc/passwd) is simply not a key -> 404
    if not key.isascii() or not key.isdigit() or len(key) > 19:
        raise NotFound(f"no image with key {key!r}")
    return int(key)


async def _image(state: ServerState, resolve: Any, key: str, size: int) -> Response:
    path = resolve(_parse_key(key))
    if path is None:
        raise NotFound(f"no servable image with key {key}")
    size = max(16, min(size, state.config.limits.max_thumb))
    try:
        data = await asyncio.to_thread(state.thumbnails.get, path, size)
    except (InputError, OSError) as e:
        raise NotFound(f"the image of key {key} cannot be read") from e
    return Response(
        data, media_type="image/jpeg", headers={"cache-control": "private, max-age=300"}
    )


@router.get(
    "/indexes/{name}/image/{key}", summary="Thumbnail of an indexed image, by key (never by path)"
)
async def index_image(request: Request, name: str, key: str, size: int = 256) -> Response:
    state = _state(request)
    gen: Generation = state.registry.get(name)
    return await _image(state, gen.images.resolve, key, size)


@router.get(
    "/dedup", summary="Duplicate groups of the --dedup dir (kept image first), with pair scores"
)
async def dedup_groups(
    request: Request,
    offset: Annotated[int, Param(ge=0)] = 0,
    limit: Annotated[int, Param(ge=1, le=200)] = 20,
) -> Response:
    state = _state(request)
    if state.dedup is None:
        raise NotFound("this server was started without --dedup")
    return json_response({"summary": state.dedup.summary, **state.dedup.page(offset, limit)})


@router.get("/dedup/image/{key}", summary="Thumbnail of a grouped image of the --dedup dir, by key")
async def dedup_image(request: Request, key: str, size: int = 256) -> Response:
    state = _state(request)
    if state.dedup is None:
        raise NotFound("this server was started without --dedup")
    return await _image(state, state.dedup.resolve, key, size)
