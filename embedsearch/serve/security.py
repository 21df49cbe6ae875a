"""``Guard``: the checks every request passes before any route runs (plain ASGI, so they are cheap).

- ``Host`` allow-list (loopback without a token: a rebinding DNS name cannot reach the API);
- the token, on every ``/api/`` request: ``Authorization: Bearer T``, or the ``embedsearch_token``
  cookie the page sets (``<img>`` tags cannot send headers); compared in constant time;
- body size: a ``Content-Length`` over the cap is refused before it is read, and a body without
  one (chunked) is refused outright, so no request can stream an unbounded upload.

Answers are one-line JSON errors: ``{"error": "..."}``.

Example:
    >>> app = Guard(app, token="s3", allowed_hosts=None, max_body_bytes=1 << 20)  # doctest: +SKIP
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import unquote

Scope = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]
COOKIE = "embedsearch_token"


async def send_error(
    send: Callable[[Any], Awaitable[None]],
    status: int,
    message: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with ``{"error": message}`` and ``status``."""
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: host allow-list, token on ``/api/``, request body cap."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        allowed_hosts: tuple[str, ...] | None,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}
        self.max_body_bytes = max_body_bytes

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        problem = self._refusal(scope, headers)
        if problem is not None:
            status, message, extra = problem
            await send_error(send, status, message, extra)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str, list] | None:
        if (
            self.allowed_hosts is not None
            and _host_name(headers.get(b"host", b"")) not in self.allowed_hosts
        ):
            return 421, "this server answers only to its loopback names (Host header refused)", []
        path = scope.get("path", "")
        if self.token is not None and path.startswith("/api/") and not self._authorized(headers):
            return (
                401,
                "missing or wrong token: send 'Authorization: Bearer <token>'",
                [(b"www-authenticate", b'Bearer realm="embedsearch"')],
            )
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            length = headers.get(b"content-length")
            if length is None:
                return (
                    411,
                    "send the request body with a Content-Length (chunked uploads are refused)",
                    [],
                )
            try:
                size = int(length)
            except ValueError:
                return 400, "bad Content-Length header", []
            if size > self.max_body_bytes:
                return (
                    413,
                    f"request body of {size:,} bytes is over the {self.max_body_bytes:,}-byte cap",
                    [],
                )
        return None

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        assert self.token is not None
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer " and hmac.compare_digest(auth[7:].strip(), self.token):
            return True
        cookie = headers.get(b"cookie")
        if cookie:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(cookie.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header is just "no token"
                return False
            morsel = jar.get(COOKIE)
            if morsel is not None and hmac.compare_digest(
                unquote(morsel.value).encode(), self.token
            ):
                return True
        return False


def _host_name(host: bytes) -> str:
    """``Host`` header -> the name without the port (``[::1]:8000`` -> ``[::1]``)."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[: text.find("]") + 1] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text
