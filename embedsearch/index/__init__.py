"""Indexes: choose / train / tune / build FAISS indexes, index dir I/O, and the Searcher.

- :func:`build_index` (``embedsearch index``): embedding dirs -> a tuned, self-contained index dir
- :class:`Searcher` / :class:`Hit` (``embedsearch query``): search it by text, image, id or vector
- :func:`describe_index_dir` (``embedsearch info``): a flat summary of an index dir

Heavy modules (faiss, torch) load on first use of a name, so ``import embedsearch.index`` is cheap.

Example:
    >>> from embedsearch.index import build_index, Searcher        # doctest: +SKIP
    >>> build_index(["emb/"], "indexes/photos")                     # doctest: +SKIP
    >>> Searcher.open("indexes/photos").search_text("a cat", k=5)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from embedsearch.index.describe import describe_index_dir

_LAZY = {
    "Searcher": "embedsearch.index.searcher",
    "Hit": "embedsearch.index.searcher",
    "build_index": "embedsearch.index.build",
    "BuildSummary": "embedsearch.index.build",
    "choose_index": "embedsearch.index.factory",
}

__all__ = ["BuildSummary", "Hit", "Searcher", "build_index", "choose_index", "describe_index_dir"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'embedsearch.index' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
