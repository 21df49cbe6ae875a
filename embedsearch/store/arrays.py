"""Arrays in, an embedding dir out: the one way tests, benchmarks and users write vectors
that no encoder of this package made.

Example:
    >>> import numpy as np, tempfile
    >>> out = tempfile.mkdtemp() + "/emb"
    >>> d = write_embedding_dir(out, np.eye(3, dtype=np.float32), model="external:demo")
    >>> d.live_rows, d.dim, d.fingerprint
    (3, 3, 'external:demo')
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.errors import InputError
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.writer import DEFAULT_SHARD_ROWS, ShardWriter


def write_embedding_dir(
    path: str | Path,
    vectors: np.ndarray,
    *,
    ids: Sequence[int] | np.ndarray | None = None,
    sources: Sequence[str] | None = None,
    content_hashes: Sequence[str] | None = None,
    metadata: Mapping[str, Sequence[Any]] | None = None,
    model: str = "external",
    fingerprint: str | None = None,
    model_options: Mapping[str, Any] | None = None,
    modality: str = "image",
    shard_rows: int = DEFAULT_SHARD_ROWS,
) -> EmbeddingDir:
    """Append ``vectors`` (n, dim) to the embedding dir at ``path`` (created if new).

    Rows are L2-normalised as the format requires. ``ids`` default to the dir's next free
    ids; ``sources`` to ``"row-<id>"``; ``content_hashes`` to a hash of the source;
    ``fingerprint`` to ``model`` (vectors of another fingerprint are refused, as for `embed`).
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise InputError(f"vectors must be a (rows, dim) array; got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    bad = np.flatnonzero(~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0))
    if bad.size:
        raise InputError(f"row {int(bad[0])} of the vectors is zero, NaN or infinite")
    d = EmbeddingDir.create_or_open(
        path,
        model=model,
        model_options=dict(model_options or {}),
        fingerprint=fingerprint or model,
        modality=modality,
        dim=matrix.shape[1],
        source="arrays",
    )
    row_ids = (
        np.arange(d.next_id, d.next_id + len(matrix), dtype=np.int64)
        if ids is None
        else np.asarray(ids, dtype=np.int64)
    )
    if len(row_ids) != len(matrix):
        raise InputError(f"{len(row_ids)} ids for {len(matrix)} vectors")
    names = list(sources) if sources is not None else [f"row-{i}" for i in row_ids]
    hashes = (
        list(content_hashes)
        if content_hashes is not None
        else [hashlib.blake2b(s.encode(), digest_size=16).hexdigest() for s in names]
    )
    next_id = max(d.next_id, int(row_ids.max()) + 1 if len(row_ids) else 0)
    writer = ShardWriter(d, reserve_next_id=next_id, shard_rows=shard_rows)
    writer.add(row_ids, names, hashes, matrix / norms, dict(metadata or {}))
    writer.close()  # commits through ``d``, which then holds the new manifest
    return d
