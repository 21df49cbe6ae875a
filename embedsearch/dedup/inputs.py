"""What ``dedup`` reads: embedding dirs (given directly or through an index dir) and a catalog.

The catalog holds, for every live row in streaming order, its *row number* (the
position, used as the faiss id), embedding id, dir number, source and a 64-bit
digest of ``content_hash``. It never holds vectors: those are streamed from the
shards when the search index is built and again when it is queried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from embedsearch.errors import FormatError, InputError, MismatchError
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.reader import embedding_matrix, iter_batches

BLOCK_ROWS = 32_768


def resolve_dirs(path: str | Path) -> list[EmbeddingDir]:
    """An embedding dir, or the embedding dirs an index dir was built from (exact vectors).

    Example:
        >>> [d.path.name for d in resolve_dirs("indexes/photos")]   # doctest: +SKIP
        ['emb']
    """
    path = Path(path)
    if EmbeddingDir.is_embedding_dir(path):
        return [EmbeddingDir.open(path)]
    from embedsearch.index.layout import INFO_FILE, read_info

    if not (path / INFO_FILE).is_file():
        if not path.exists():
            raise InputError(f"{path} does not exist")
        raise FormatError(
            f"{path} is neither an embedding dir (manifest.json) nor an index dir (index.json)"
        )
    entries = read_info(path).get("sources") or []
    dirs = []
    for entry in entries:
        source = Path(entry["path"])
        if not EmbeddingDir.is_embedding_dir(source):
            raise FormatError(
                f"index {path} was built from {source}, which is gone: dedup needs the exact vectors "
                f"of the embedding dirs; restore it or run dedup on the embedding dirs directly"
            )
        dirs.append(EmbeddingDir.open(source))
    if not dirs:
        raise FormatError(f"index {path} lists no embedding dirs in its sources")
    return dirs


def check_same_model(dirs: Sequence[EmbeddingDir]) -> None:
    """Refuse to compare vectors of different models (fingerprints) or dims."""
    first = dirs[0]
    for d in dirs[1:]:
        if d.fingerprint != first.fingerprint or d.dim != first.dim:
            raise MismatchError(
                f"{d.path} holds vectors of {d.model} (dim {d.dim}, fingerprint {d.fingerprint[:12]}) but "
                f"{first.path} of {first.model} (dim {first.dim}, fingerprint {first.fingerprint[:12]}): "
                f"embed both with the same model to compare them"
            )


def hash64(values: Sequence[str | None]) -> np.ndarray:
    """Content hashes -> 64-bit digests of the whole string (8 bytes a row instead of ~40).

    Two different hashes share a digest with probability ~N^2 / 2^65 (3e-8 at a million rows).
    """
    out = np.empty(len(values), dtype=np.uint64)
    for i, value in enumerate(values):
        out[i] = int.from_bytes(
            hashlib.blake2b((value or "").encode(), digest_size=8).digest(), "little"
        )
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


def _as_numpy(array: pa.Array, dtype: type) -> np.ndarray:
    """A numpy view of a null-free primitive column, or a converted copy.

    ``Array.to_numpy`` imports pandas on first use (~50 MiB of RSS for the whole run);
    reading the data buffer directly does not.
    """
    if array.null_count or array.type != pa.from_numpy_dtype(np.dtype(dtype)):
        return array.to_numpy(zero_copy_only=False).astype(dtype)
    data = np.frombuffer(array.buffers()[1], dtype=dtype, count=array.offset + len(array))
    return data[array.offset :]


def load_catalog(dirs: Sequence[EmbeddingDir]) -> Catalog:
    """One streaming pass over ``id``, ``source`` and ``content_hash`` of all dirs (no vectors)."""
    ids, numbers, hashes, sources = [], [], [], []
    for number, d in enumerate(dirs):
        for batch in iter_batches(d, ["id", "source", "content_hash"], BLOCK_ROWS, frugal=True):
            ids.append(_as_numpy(batch.column("id"), np.int64).copy())
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


def iter_vector_blocks(
    dirs: Sequence[EmbeddingDir], block_rows: int = BLOCK_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row number, vectors)`` blocks in catalog order; refuses NaN/inf vectors."""
    row = 0
    for d in dirs:
        for batch in iter_batches(d, ["embedding"], block_rows, frugal=True):
            column = batch.column("embedding")
            if pa.types.is_fixed_size_list(column.type) and not column.null_count:
                vectors = _as_numpy(column.flatten(), np.float32).reshape(-1, d.dim)
            else:
                vectors = np.ascontiguousarray(embedding_matrix(column, d.dim))
            if not np.isfinite(vectors).all():
                raise FormatError(f"{d.path} holds NaN or infinite vectors: re-embed it")
            yield row, vectors
            row += len(vectors)
