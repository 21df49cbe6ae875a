"""``create_app``: the ASGI app of ``embedsearch serve`` (FastAPI; OpenAPI docs at ``/docs``).

Layers, outermost first: CORS (only with ``cors_origins``),
:class:`~embedsearch.serve.security.Guard` (host allow-list, token, body cap), then the routes:
the JSON API under ``/api`` and the page (``/``, ``/static/app.js``, ``/static/app.css``:
package files read once, served from memory by name, so no request path reaches the disk).

Every error is ``{"error": "<one line>"}``: bad input 400, unknown index or image 404, invalid
body 422, timeout 503; an unexpected exception is logged with its traceback and answered 500
without one.

Example:
    >>> from fastapi.testclient import TestClient                          # doctest: +SKIP
    >>> client = TestClient(create_app(ServeConfig(indexes=(Path("idx"),))))  # doctest: +SKIP
    >>> client.get("/api/indexes").json()["indexes"][0]["rows"]            # doctest: +SKIP
    24
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from embedsearch.errors import EmbedsearchError
from embedsearch.serve.config import ServeConfig, host_allowlist
from embedsearch.serve.registry import UnknownIndex
from embedsearch.serve.routes import NotFound, json_response, router
from embedsearch.serve.security import Guard
from embedsearch.serve.state import RequestTimeout, ServerState

log = logging.getLogger("embedsearch.serve")
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
}
# the page loads nothing from elsewhere: say so to the browser too
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' blob: data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def create_app(config: ServeConfig, state: ServerState | None = None) -> FastAPI:
    """The app over ``config.indexes`` (opened now: a bad index dir fails here, not later)."""
    state = state or ServerState.build(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.batcher.start()
        if config.warm_models:  # queued before any query: the first one does not wait for a load
            state.batcher.run_in_worker(state.warm_models)
        watcher = asyncio.get_running_loop().create_task(state.watch_reloads())
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await state.batcher.stop()

    app = FastAPI(
        title="embedsearch",
        summary="Search FAISS indexes by text, image, id or vector.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.server = state
    app.include_router(router)
    _add_page(app)
    _add_error_handlers(app)
    app.add_middleware(
        Guard,
        token=config.token,
        allowed_hosts=host_allowlist(config),
        max_body_bytes=config.limits.max_body_bytes,
    )
    if config.cors_origins:  # outside the guard: a browser's preflight carries no token
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"],
        )
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("embedsearch")
    except Exception:  # noqa: BLE001 - running from a checkout
        return "0"


def _add_page(app: FastAPI) -> None:
    static = resources.files("embedsearch.serve") / "static"
    pages = {
        route: (static.joinpath(name).read_bytes(), media)
        for route, (name, media) in PAGE_FILES.items()
    }

    async def page(request: Request) -> Response:
        body, media = pages[request.url.path]
        return Response(body, media_type=media, headers=PAGE_HEADERS)

    for route in pages:
        app.add_api_route(route, page, methods=["GET"], include_in_schema=False)


def _one_line(text: object) -> str:
    line = str(text).strip().splitlines()
    return line[0] if line else "bad request"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EmbedsearchError)
    async def library_error(request: Request, exc: EmbedsearchError) -> Response:
        status = (
            404
            if isinstance(exc, (UnknownIndex, NotFound))
            else 503
            if isinstance(exc, RequestTimeout)
            else 400
        )
        return json_response({"error": _one_line(exc)}, status)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> Response:
        return json_response({"error": _validation_message(exc.errors())}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = "not found" if exc.status_code == 404 else _one_line(exc.detail)
        return json_response({"error": message}, exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return json_response(
            {"error": f"internal error ({type(exc).__name__}); see the server log"}, 500
        )


def _validation_message(errors: Any) -> str:
    """pydantic's error list -> ``body.k: Input should be a valid integer`` (the first one)."""
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "request body is not valid JSON"
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    return _one_line(f"{where}: {first.get('msg', 'invalid')}")
