"""Indexes: plan / build / tune / finish / append FAISS indexes, index dir I/O, and the Searcher.

- :func:`build_index` (``embedsearch index``): embedding dirs -> a tuned, self-contained index dir
- :func:`append_index` (``embedsearch index --append``): add rows without retraining
- :class:`Searcher` / :class:`Hit` (``embedsearch query``): search it by text, image, id or vector
- :func:`describe_index_dir` (``embedsearch info``): a flat summary of an index dir
- :func:`train_shards` / :func:`add_shard` / :func:`merge_shards` (``index --train-only``,
  ``--num-shards N --shard-index I``, ``--merge``) and :func:`build_in_shards` (torchrun, or
  ``--num-shards N`` alone): an index built by many workers, merged on disk when it is large

Modules load on first use of a name, so ``import embedsearch.index`` is cheap.

Example:
    >>> from embedsearch.index import build_index, Searcher        # doctest: +SKIP
    >>> build_index(["emb/"], "indexes/photos")                     # doctest: +SKIP
    >>> Searcher.open("indexes/photos").search_text("a cat", k=5)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Searcher": "embedsearch.index.searcher",
    "Hit": "embedsearch.index.searcher",
    "build_index": "embedsearch.index.build",
    "append_index": "embedsearch.index.append",
    "BuildSummary": "embedsearch.index.finish",
    "IndexInfo": "embedsearch.index.layout",
    "choose_index": "embedsearch.index.plan",
    "describe_index_dir": "embedsearch.index.describe",
    "train_shards": "embedsearch.index.shards",
    "add_shard": "embedsearch.index.shards",
    "merge_shards": "embedsearch.index.merge",
    "build_in_shards": "embedsearch.index.parallel",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'embedsearch.index' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
