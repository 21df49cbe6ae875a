"""``IndexRegistry``: the served index dirs by name, each reopened when a new one is published.

``index`` publishes a rebuilt (or appended) index by renaming a complete dir onto the path, so
the path's ``index.json`` changes inode. The registry notices that (a cheap ``stat`` every
``reload_check_s``), opens the new dir on a background thread, warms it, and swaps it in. A
request holds the :class:`Generation` it started with, so requests in flight finish on the old
``Searcher`` (its faiss index and metadata stay in memory after the old files are deleted) and the
old one is freed when the last of them lets go. A dir that fails to open keeps the old one serving.

Example:
    >>> registry = IndexRegistry.open([Path("indexes/photos")])   # doctest: +SKIP
    >>> registry.get("photos").searcher.ntotal                     # doctest: +SKIP
    20000
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedsearch.errors import EmbedsearchError, InputError
from embedsearch.serve.sources import IndexImages

log = logging.getLogger("embedsearch.serve")
_numbers = itertools.count(1)


class UnknownIndex(InputError):
    """A request named an index this server does not serve (HTTP 404)."""


def identity(path: Path) -> tuple[int, ...]:
    """What changes when an index dir is republished: its and ``index.json``'s inode, mtime."""
    try:
        d, info = os.stat(path), os.stat(path / "index.json")
    except OSError:
        return ()
    return (d.st_ino, info.st_ino, info.st_mtime_ns, info.st_size)


@dataclass
class Generation:
    """One opened publication of an index dir: what a request searches from start to end."""

    name: str
    path: Path
    searcher: Any  # embedsearch.index.Searcher
    images: IndexImages
    ident: tuple[int, ...]
    number: int = field(default_factory=lambda: next(_numbers))
    loaded_at: float = field(default_factory=time.time)
    cache: dict[str, Any] = field(default_factory=dict)  # per-generation helpers (id vector reader)

    @property
    def info(self) -> dict[str, Any]:
        return self.searcher.info

    def summary(self) -> dict[str, Any]:
        """The ``/api/indexes`` entry: model, rows, kind, recall and where it lives."""
        info = self.info
        recall = info.get("recall") or {}
        return {
            "name": self.name,
            "path": str(self.path),
            "model": info.get("model"),
            "modality": info.get("modality"),
            "rows": self.searcher.ntotal,
            "dim": self.searcher.dim,
            "kind": info.get("kind"),
            "factory": info.get("factory"),
            "metric": info.get("metric"),
            "recall_at_k": recall.get("recall_at_k"),
            "recall_k": recall.get("k"),
            "updated": info.get("updated"),
            "generation": self.number,
        }


def open_generation(
    name: str,
    path: Path,
    device: str = "auto",
    extra_roots: Iterable[Path] = (),
    warm_encoder: bool = False,
) -> Generation:
    """Open ``path`` as a :class:`Generation`, retrying when it is republished while being read."""
    import numpy as np

    from embedsearch.index import Searcher

    for _ in range(5):
        before = identity(path)
        searcher = Searcher.open(path, device=device)
        images = IndexImages.load(path, searcher.info, extra_roots)
        if identity(path) == before:
            break
    if searcher.ntotal:  # touch the metadata store and faiss once: the first request is not slower
        searcher.search_vectors(np.ones((1, searcher.dim), np.float32) / np.sqrt(searcher.dim), 1)
    if warm_encoder:
        _ = searcher.encoder
    return Generation(name, path, searcher, images, before)


def unique_names(paths: Sequence[Path]) -> list[str]:
    """URL names for index dirs: the folder name, with ``-2``, ``-3``… when two share one."""
    names: list[str] = []
    for path in paths:
        base = path.resolve().name or "index"
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


class IndexRegistry:
    """The served indexes; :meth:`get` is what every request calls."""

    def __init__(
        self,
        generations: dict[str, Generation],
        device: str = "auto",
        extra_roots: Sequence[Path] = (),
        reload_check_s: float = 0.5,
    ) -> None:
        self._current = generations
        self.device = device
        self.extra_roots = tuple(extra_roots)
        self.reload_check_s = reload_check_s
        self._lock = threading.Lock()
        self._loading: set[str] = set()
        self.reloads = 0
        self.reload_errors: dict[str, str] = {}
        self._failed: dict[str, tuple[int, ...]] = {}  # failed to open: retried once it changes

    @classmethod
    def open(
        cls,
        paths: Sequence[Path],
        device: str = "auto",
        extra_roots: Sequence[Path] = (),
        reload_check_s: float = 0.5,
    ) -> IndexRegistry:
        """Open every index dir (a ``FormatError`` names the first that is not one)."""
        if not paths:
            raise InputError("serve needs at least one index dir")
        gens = {
            name: open_generation(name, Path(p).expanduser().resolve(), device, extra_roots)
            for name, p in zip(unique_names(paths), paths, strict=True)
        }
        return cls(gens, device, extra_roots, reload_check_s)

    @property
    def names(self) -> list[str]:
        return list(self._current)

    def get(self, name: str) -> Generation:
        """The current generation of index ``name`` (:class:`UnknownIndex` when not served)."""
        gen = self._current.get(name)
        if gen is None:
            raise UnknownIndex(f"no index named {name!r}; served: {', '.join(self._current)}")
        return gen

    def generations(self) -> list[Generation]:
        return list(self._current.values())

    def changed(self) -> list[str]:
        """Names whose dir was republished since it was opened (and is not being reopened)."""
        found = []
        for name, gen in self._current.items():
            now = identity(gen.path)
            if name not in self._loading and now not in ((), gen.ident, self._failed.get(name)):
                found.append(name)
        return found

    def reload(self, name: str) -> bool:
        """Reopen ``name`` now (blocking; run it off the event loop). True when a new one is in."""
        with self._lock:
            if name in self._loading:
                return False
            self._loading.add(name)
        old = self._current[name]
        seen = identity(old.path)
        try:
            # text/image queries loaded the old one's model: load the new one's before the swap
            warm = bool(old.cache.get("encoder_used"))
            new = open_generation(name, old.path, self.device, self.extra_roots, warm_encoder=warm)
        except (EmbedsearchError, OSError, RuntimeError) as e:
            # a dir being replaced by hand, or a broken one: keep answering from the old one
            self.reload_errors[name] = str(e).splitlines()[0]
            self._failed[name] = seen
            log.warning("index %s not reloaded (still serving the old one): %s", name, e)
            return False
        finally:
            with self._lock:
                self._loading.discard(name)
        self._current = {**self._current, name: new}  # one reference swap: readers never see a mix
        self.reloads += 1
        self.reload_errors.pop(name, None)
        log.info(
            "index %s reloaded: %d rows (generation %d)", name, new.searcher.ntotal, new.number
        )
        return True

    def reload_changed(self) -> list[str]:
        """Reload every republished index; returns the names reloaded."""
        return [name for name in self.changed() if self.reload(name)]
