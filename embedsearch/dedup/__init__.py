"""Deduplication: exact (content hash) and near duplicates (FAISS), train/test leakage, SemDeDup.

Names resolve on first use, so the CLI can read :mod:`embedsearch.dedup.options` (its choices)
for ``--help`` without importing numpy.

Example:
    >>> from embedsearch.dedup import find_duplicates
    >>> result = find_duplicates("emb/", out="dups/")   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedsearch.dedup.find import find_duplicates
    from embedsearch.dedup.outputs import DedupResult

__all__ = ["DedupResult", "find_duplicates"]


def __getattr__(name: str) -> Any:
    if name == "find_duplicates":
        from embedsearch.dedup.find import find_duplicates

        return find_duplicates
    if name == "DedupResult":
        from embedsearch.dedup.outputs import DedupResult

        return DedupResult
    raise AttributeError(f"module 'embedsearch.dedup' has no attribute {name!r}")
