"""``ServerState``: what the routes share (config, indexes, batcher, dedup view, thumbnail cache).

Example:
    >>> state = ServerState.build(config)   # doctest: +SKIP
    >>> await state.search([query])         # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedsearch.errors import EmbedsearchError
from embedsearch.serve.batcher import MicroBatcher
from embedsearch.serve.config import ServeConfig
from embedsearch.serve.dedup_view import DedupView
from embedsearch.serve.execute import Query, process
from embedsearch.serve.registry import IndexRegistry

log = logging.getLogger("embedsearch.serve")


class RequestTimeout(EmbedsearchError):
    """A request that was not answered within the configured time (HTTP 503)."""


class ThumbnailCache:
    """Encoded thumbnails by (path, mtime, size): a page of results asks for the same ones again."""

    def __init__(self, entries: int = 1024) -> None:
        self.entries = entries
        self._items: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()  # filled from worker threads

    def get(self, path: Path, size: int) -> bytes:
        from embedsearch.data.decode import load_image

        key = (str(path), path.stat().st_mtime_ns, size)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        import io

        image = load_image(
            path, draft_size=size
        )  # embed's decoder: bombs and corrupt files refused
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(
            buffer, "JPEG", quality=85
        )  # re-encoded: only pixels leave the server, never the file
        data = buffer.getvalue()
        with self._lock:
            self._items[key] = data
            while len(self._items) > self.entries:
                self._items.popitem(last=False)
        return data


@dataclass
class ServerState:
    config: ServeConfig
    registry: IndexRegistry
    batcher: MicroBatcher
    dedup: DedupView | None = None
    thumbnails: ThumbnailCache = field(default_factory=ThumbnailCache)
    started: float = field(default_factory=time.time)
    requests: int = 0
    errors: int = 0

    @classmethod
    def build(cls, config: ServeConfig, registry: IndexRegistry | None = None) -> ServerState:
        """Open the indexes (and the dedup dir) named in ``config``."""
        registry = registry or IndexRegistry.open(
            list(config.indexes), config.device, config.image_roots, config.reload_check_s
        )
        roots = [*config.image_roots]
        dedup = DedupView.open(config.dedup, roots) if config.dedup is not None else None
        batcher = MicroBatcher(process, config.batching.max_batch, config.batching.max_wait_ms)
        return cls(config, registry, batcher, dedup)

    async def search(self, queries: Sequence[Query]) -> list[Any]:
        """Queue ``queries`` on the micro-batcher; outcomes in order (hit list or exception)."""
        futures = [self.batcher.submit_nowait(q) for q in queries]
        timeout = self.config.limits.request_timeout_s
        try:
            done = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout)
        except asyncio.TimeoutError as e:
            raise RequestTimeout(
                f"not answered within {timeout:g} s (server overloaded); try again"
            ) from e
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()  # the worker skips it
        return list(done)

    def warm_models(self) -> None:
        """Load every served index's model (worker thread); one that cannot load is reported by
        its first text/image query instead."""
        for gen in self.registry.generations():
            try:
                _ = gen.searcher.encoder
                gen.cache["encoder_used"] = True
            except EmbedsearchError as e:
                log.warning("model of index %s not loaded: %s", gen.name, e)

    async def watch_reloads(self) -> None:
        """Reopen republished index dirs, forever (a background task of the app)."""
        while True:
            await asyncio.sleep(self.config.reload_check_s)
            for name in self.registry.changed():
                await asyncio.to_thread(self.registry.reload, name)
