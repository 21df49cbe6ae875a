"""embedsearch: make unlabeled image and text collections searchable.

The package is library first; the ``embedsearch`` CLI is a thin layer over it.
Heavy dependencies (torch, faiss, open_clip) are imported lazily so that
``import embedsearch`` and ``embedsearch --help`` stay fast.

Example:
    >>> from embedsearch import embed, load_encoder          # doctest: +SKIP
    >>> summary = embed("photos/", model="simclr:resnet18", out="emb/")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it; resolved on first access (PEP 562).
_LAZY_EXPORTS = {
    "EmbedsearchError": "embedsearch.errors",
    "load_encoder": "embedsearch.encoders",
    "Encoder": "embedsearch.encoders.base",
    "embed": "embedsearch.embedding",
    "EmbedSummary": "embedsearch.embedding",
    "EmbeddingDir": "embedsearch.store.embedding_dir",
    "iter_vectors": "embedsearch.store.reader",
    "write_embedding_dir": "embedsearch.store.arrays",
    "Searcher": "embedsearch.index",
    "Hit": "embedsearch.index",
    "build_index": "embedsearch.index",
    "find_duplicates": "embedsearch.dedup",
    "pretrain_simclr": "embedsearch.train",
    "pretrain_clip": "embedsearch.train",
    "make_shapes_corpus": "embedsearch.data.shapes",
}

__all__ = list(_LAZY_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'embedsearch' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
