"""Embedding storage: Parquet shards + ``manifest.json`` (see DESIGN.md §3).

:class:`EmbeddingDir` owns a directory's manifest and commits shards atomically;
:func:`iter_vectors` streams ``(ids, vectors)`` blocks out of one or more dirs.
"""

from embedsearch.store.arrays import write_embedding_dir
from embedsearch.store.embedding_dir import EmbeddingDir
from embedsearch.store.manifest import Manifest, ShardInfo
from embedsearch.store.reader import (
    embedding_matrix,
    iter_vector_batches,
    iter_vectors,
    open_embedding_dirs,
    require_same_model,
)

__all__ = [
    "EmbeddingDir",
    "Manifest",
    "ShardInfo",
    "embedding_matrix",
    "iter_vector_batches",
    "iter_vectors",
    "open_embedding_dirs",
    "require_same_model",
    "write_embedding_dir",
]
