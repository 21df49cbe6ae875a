"""What ``dedup`` reads: embedding dirs (given directly or through an index dir) and a catalog.

The catalog holds, for every live row in streaming order, its *row number* (the position,
used as the faiss id), embedding id, dir number, source and a 64-bit digest of
``content_hash``. It never holds vectors: those are streamed from the shards
(:meth:`DedupInputs.blocks`) when the search index is built and again when it is queried.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from embedsearch.errors import FormatError, InputError
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.reader import (
    column_to_numpy,
    iter_batches,
    iter_vector_batches,
    require_same_model,
)

BLOCK_ROWS = 32_768
Rows = Literal["main", "other", "all"]  # the input set, the --against set, or both
Transform = Callable[[np.ndarray], np.ndarray]  # e.g. a Whitening


def resolve_dirs(path: str | Path) -> list[EmbeddingDir]:
    """An embedding dir, or the embedding dirs an index dir was built from (exact vectors).

    Example:
        >>> [d.path.name for d in resolve_dirs("indexes/photos")]   # doctest: +SKIP
        ['emb']
    """
    from embedsearch.index.layout import INFO_FILE, read_info

    path = Path(path)
    if EmbeddingDir.is_embedding_dir(path):
        return [EmbeddingDir.open(path)]
    if not (path / INFO_FILE).is_file():
        if not path.exists():
            raise InputError(f"{path} does not exist")
        raise FormatError(
            f"{path} is neither an embedding dir (manifest.json) nor an index dir (index.json)"
        )
    sources = [Path(entry.path) for entry in read_info(path).sources]
    if not sources:
        raise FormatError(f"index {path} lists no embedding dirs in its sources")
    for source in sources:
        if not EmbeddingDir.is_embedding_dir(source):
            raise FormatError(
                f"index {path} was built from {source}, which is gone: dedup needs the exact "
                f"vectors of the embedding dirs; restore it or run dedup on the embedding dirs "
                f"directly"
            )
    return [EmbeddingDir.open(source) for source in sources]


def hash64(values: Sequence[str | None]) -> np.ndarray:
    """Content hashes -> 64-bit digests of the whole string (8 bytes a row instead of ~40).

    Two different hashes share a digest with probability ~N^2 / 2^65 (3e-8 at a million rows).
    """
    out = np.empty(len(values), dtype=np.uint64)
    for i, value in enumerate(values):
        digest = hashlib.blake2b((value or "").encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out


@dataclass
class Catalog:
    """Every live row of the input dirs, in streaming order (row number = position)."""

    dirs: list[EmbeddingDir]
    ids: np.ndarray  # int64 embedding ids
    dir_numbers: np.ndarray  # int32 position in ``dirs``
    hashes: np.ndarray  # uint64 digests of content_hash
    sources: pa.ChunkedArray  # string

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.dirs[0].dim

    def source_of(self, rows: np.ndarray) -> pa.Array:
        """Sources of the given row numbers."""
        return self.sources.take(pa.array(np.asarray(rows, dtype=np.int64)))

    def sizes_of(self, rows: np.ndarray) -> np.ndarray:
        """What ``keep="largest"`` compares: file sizes (0 when gone), or text lengths."""
        values = self.source_of(rows).to_pylist()
        if self.dirs[0].modality == "text":
            return np.array([len(v or "") for v in values], dtype=np.int64)
        sizes = [os.path.getsize(v) if v and os.path.isfile(v) else 0 for v in values]
        return np.array(sizes, dtype=np.int64)


def load_catalog(dirs: Sequence[EmbeddingDir]) -> Catalog:
    """One streaming pass over ``id``, ``source`` and ``content_hash`` of all dirs (no vectors)."""
    ids, numbers, hashes, sources = [], [], [], []
    for number, d in enumerate(dirs):
        for batch in iter_batches(d, ["id", "source", "content_hash"], BLOCK_ROWS, frugal=True):
            ids.append(column_to_numpy(batch.column("id"), np.int64).copy())
            numbers.append(np.full(batch.num_rows, number, dtype=np.int32))
            hashes.append(hash64(batch.column("content_hash").to_pylist()))
            sources.append(batch.column("source").cast(pa.string()))
    if not ids:
        raise InputError(f"no embeddings to deduplicate in {', '.join(str(d.path) for d in dirs)}")
    return Catalog(
        dirs=list(dirs),
        ids=np.concatenate(ids),
        dir_numbers=np.concatenate(numbers),
        hashes=np.concatenate(hashes),
        sources=pa.chunked_array(sources, pa.string()),
    )


@dataclass
class DedupInputs:
    """The catalog of the input set (``main``) and of the ``--against`` set (``other``), which
    follows it in row numbers, and streamed access to their vectors."""

    catalog: Catalog
    main_dirs: list[EmbeddingDir]
    other_dirs: list[EmbeddingDir]
    main_rows: int

    @property
    def against(self) -> bool:
        return bool(self.other_dirs)

    def count(self, rows: Rows) -> int:
        """How many rows ``rows`` names."""
        return {"main": self.main_rows, "other": len(self.catalog) - self.main_rows}.get(
            rows, len(self.catalog)
        )

    def blocks(
        self, rows: Rows, block_rows: int, transform: Transform | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row number, vectors)`` blocks in catalog order, ``transform`` applied."""
        dirs = {"main": self.main_dirs, "other": self.other_dirs}.get(
            rows, self.main_dirs + self.other_dirs
        )
        first = self.main_rows if rows == "other" else 0
        for d in dirs:
            for _, vectors in iter_vector_batches(d, (), block_rows, frugal=True):
                yield first, (transform(vectors) if transform is not None else vectors)
                first += len(vectors)

    def sample(
        self, rows: Rows, m: int, block_rows: int, transform: Transform | None = None
    ) -> np.ndarray:
        """About ``m`` vectors drawn uniformly from ``rows`` in one streaming pass (seeded)."""
        rng = np.random.default_rng(0)
        p = min(1.0, m / max(self.count(rows), 1))
        parts = [v[rng.random(len(v)) < p] for _, v in self.blocks(rows, block_rows, transform)]
        return np.ascontiguousarray(np.concatenate(parts)[:m])


def open_inputs(path: str | Path, against: str | Path | None) -> DedupInputs:
    """Resolve and catalog ``path`` (and ``against``), refusing mixed models and self-leaks."""
    main_dirs = resolve_dirs(path)
    other_dirs = resolve_dirs(against) if against is not None else []
    main_paths = {d.path.resolve() for d in main_dirs}
    if any(d.path.resolve() in main_paths for d in other_dirs):
        raise InputError(
            f"--against {against} holds the same embedding dir as {path}: name another set"
        )
    require_same_model(main_dirs + other_dirs)
    catalog = load_catalog(main_dirs + other_dirs)
    main_rows = int(np.count_nonzero(catalog.dir_numbers < len(main_dirs)))
    if against is not None and main_rows == len(catalog):
        raise InputError(f"--against {against} holds no embeddings")
    return DedupInputs(catalog, main_dirs, other_dirs, main_rows)
