"""``ServeConfig``: what ``embedsearch serve`` serves, and the limits that keep it safe.

Binding rules (:func:`check_binding`): loopback needs nothing; any other address needs a
``token`` or an explicit ``no_auth`` (which is announced). Without a token on loopback, the
``Host`` header must name the loopback too, so a page on another site cannot reach the API
through DNS rebinding.

Example:
    >>> config = ServeConfig(indexes=(Path("indexes/photos"),))
    >>> check_binding(config)   # loopback, no token: fine, nothing to announce
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from embedsearch.errors import InputError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for (each refusal is a 4xx with a one-line message)."""

    max_k: int = 500  # hits per query
    max_batch_queries: int = 256  # queries in one batch request
    max_upload_bytes: int = 20 << 20  # an uploaded query image
    max_body_bytes: int = 40 << 20  # any request body (a batch of base64 images)
    request_timeout_s: float = 30.0  # queue + work of one request, then 503
    max_thumb: int = 512  # pixels, longest side of a served thumbnail


@dataclass(frozen=True)
class BatchPolicy:
    """Micro-batching: queries that arrive together share one model forward and one faiss search.

    ``max_wait_ms`` is how long a batch may wait for requests already being received (never when
    the server is otherwise idle, so a lone query pays nothing); ``max_batch`` bounds its size.
    """

    max_batch: int = 64
    max_wait_ms: float = 2.0


@dataclass(frozen=True)
class ServeConfig:
    """Everything :func:`embedsearch.serve.app.create_app` needs."""

    indexes: tuple[Path, ...]
    dedup: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    no_auth: bool = False
    cors_origins: tuple[str, ...] = ()
    image_roots: tuple[Path, ...] = ()  # extra folders whose indexed images may be served
    device: str = "auto"
    reload_check_s: float = 0.5  # how often an index dir is checked for a new publication
    limits: Limits = field(default_factory=Limits)
    batching: BatchPolicy = field(default_factory=BatchPolicy)
    allowed_hosts: tuple[str, ...] | None = None  # None: derived from host/token (see module doc)
    warm_models: bool = False  # load each index's model at start, not at its first text/image query


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(config: ServeConfig) -> str | None:
    """Refuse a non-loopback bind without ``token`` or ``no_auth``; return a warning to print."""
    if config.token is not None and not config.token.strip():
        raise InputError("--token must not be empty")
    if config.token and config.no_auth:
        raise InputError("--token and --no-auth contradict each other: pass one")
    if is_loopback(config.host) or config.token:
        return None
    if not config.no_auth:
        raise InputError(
            f"--host {config.host} is reachable from other machines: pass --token T (clients send "
            "'Authorization: Bearer T') or --no-auth to serve without authentication"
        )
    return (
        f"warning: serving on {config.host}:{config.port} WITHOUT authentication (--no-auth): "
        "anyone who can reach this address can search the indexes and read their images"
    )


def host_allowlist(config: ServeConfig) -> tuple[str, ...] | None:
    """``Host`` header values accepted (None: any); loopback without a token: loopback names."""
    if config.allowed_hosts is not None:
        return config.allowed_hosts
    if config.token or not is_loopback(config.host):
        return None
    return LOOPBACK_NAMES
