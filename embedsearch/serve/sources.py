"""Which file an indexed row's image is, and whether it may be served.

The image endpoint takes a *key* (``(dir << 40) | id``), never a path: the path comes from the
index's own ``meta-NNNNN.arrow`` files. It is then served only when its real path (symlinks
resolved) lies inside an *image root*: the folder each embedding dir was made from (its
``manifest.json`` ``source``; a table's own folder) or a folder given with ``--image-root``.
A symlink in the source folder that points outside, a row whose source is a text, or a file that
is gone all read as "not found".

Example:
    >>> images = IndexImages.load(Path("indexes/photos"), info)   # doctest: +SKIP
    >>> images.resolve(42)                                        # doctest: +SKIP
    PosixPath('/data/photos/cat.jpg')
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from embedsearch.data.decode import is_image_file
from embedsearch.errors import EmbedsearchError
from embedsearch.store.embedding_dir import manifest_path
from embedsearch.store.manifest import Manifest

_TABLE_SOURCE = re.compile(r"^(?P<path>.+) \[[^\]]+\]$")  # "/data/pairs.csv [image]"


class IndexImages:
    """key -> source lookup over an index dir's metadata files, plus the allowed image roots."""

    def __init__(self, keys: np.ndarray, sources: pa.ChunkedArray, roots: list[str]) -> None:
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._rows = order
        self._sources = sources
        self.roots = roots

    @classmethod
    def load(
        cls, index_dir: Path, info: dict[str, Any], extra_roots: Iterable[Path] = ()
    ) -> IndexImages:
        """Read the ``key`` and ``source`` columns of every metadata file listed in ``info``."""
        keys, sources = [], []
        for entry in info.get("metadata_files", []):
            # memory-mapped, so only the key column is copied; a mapping outlives the file when a
            # republished index deletes it, so this generation keeps answering
            table = pa.ipc.open_file(pa.memory_map(str(index_dir / entry["file"]))).read_all()
            keys.append(table.column("key").to_numpy())
            sources.extend(table.column("source").chunks)
        key_array = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        source_array = pa.chunked_array(sources) if sources else pa.chunked_array([], pa.string())
        roots = source_roots(info) + [os.path.realpath(p) for p in extra_roots]
        return cls(key_array.astype(np.int64), source_array, roots)

    def source_of(self, key: int) -> str | None:
        """The stored source of ``key``, or None when the index holds no such row."""
        if not 0 <= key < 1 << 63:
            return None
        pos = int(np.searchsorted(self._keys, key))
        if pos >= len(self._keys) or self._keys[pos] != key:
            return None
        return self._sources[int(self._rows[pos])].as_py()

    def resolve(self, key: int) -> Path | None:
        """The real path of ``key``'s image when it may be served, else None."""
        source = self.source_of(key)
        return None if source is None else safe_image_path(source, self.roots)


def safe_image_path(source: str, roots: list[str]) -> Path | None:
    """``source`` resolved (symlinks followed) when it is an image file inside one of ``roots``."""
    if not source or "\x00" in source or not os.path.isabs(source) or not is_image_file(source):
        return None
    real = os.path.realpath(source)
    if not is_image_file(real) or not os.path.isfile(real):
        return None
    for root in roots:
        if root and os.path.commonpath([real, root]) == root:
            return Path(real)
    return None


def source_roots(info: dict[str, Any]) -> list[str]:
    """The folders the index's embedding dirs were made from (real paths), where still known."""
    roots = []
    for entry in info.get("sources", []):
        try:
            described = Manifest.read(manifest_path(entry["path"])).source
        except (EmbedsearchError, KeyError, TypeError):
            continue  # index copied without its embedding dirs: --image-root names the folder
        table = _TABLE_SOURCE.match(described)
        folder = Path(table.group("path")).parent if table else Path(described)
        if described and folder.is_absolute() and folder.is_dir():
            roots.append(os.path.realpath(folder))
    return roots
