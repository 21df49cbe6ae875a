"""The stored vector of an indexed row: exact from its embedding dir, else as the index holds it.

Example:
    >>> vector_from_source(info.sources[0], info.fingerprint, 42)   # doctest: +SKIP
    array([ 0.031, -0.107, ...], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedsearch.errors import InputError
from embedsearch.index.layout import SourceEntry


def vector_from_source(
    entry: SourceEntry, fingerprint: str, embedding_id: int
) -> np.ndarray | None:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from embedsearch.store.embedding_dir import EmbeddingDir
    from embedsearch.store.reader import embedding_matrix

    if not EmbeddingDir.is_embedding_dir(entry.path):
        return None  # the index was copied elsewhere: fall back to the index's own codes
    d = EmbeddingDir.open(entry.path)
    if d.fingerprint != fingerprint or not d.shards:
        return None
    if embedding_id in d.dead_ids:  # its input is gone or changed: its vector is no query
        raise InputError(
            f"id {embedding_id} was deleted or replaced in {d.path} (its input is gone or "
            "changed); `embedsearch index ... --append` drops its row from the index"
        )
    table = ds.dataset([str(p) for p in d.shard_paths()], format="parquet").to_table(
        columns=["embedding"], filter=pc.field("id") == embedding_id
    )
    return embedding_matrix(table.column("embedding"), d.dim)[-1] if table.num_rows else None


def reconstruct(index: Any, key: int) -> np.ndarray:
    import faiss

    cpu: Any = (
        faiss.index_gpu_to_cpu(index)
        if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__
        else index
    )
    try:
        # keys are sparse: a hash map, not an array
        hashtable = faiss.DirectMap.Hashtable  # type: ignore[attr-defined]  # not in faiss's stubs
        faiss.extract_index_ivf(cpu).set_direct_map_type(hashtable)
    except RuntimeError:
        pass  # IDMap2 keeps its own key -> row map
    try:
        return np.asarray(cpu.reconstruct(key))
    except RuntimeError as e:
        raise InputError(f"the index cannot give back the vector of key {key}: {e}") from e
