"""Deduplication: exact (content hash) and near duplicates (FAISS), train/test leakage, SemDeDup.

Example:
    >>> from embedsearch.dedup import find_duplicates
    >>> result = find_duplicates("emb/", out="dups/")   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedsearch.dedup.find import DedupResult, find_duplicates

__all__ = ["DedupResult", "find_duplicates"]


def __getattr__(name: str) -> Any:
    """Load the library on first use, so the CLI reads :mod:`.options` for ``--help`` without
    importing numpy."""
    if name not in __all__:
        raise AttributeError(f"module 'embedsearch.dedup' has no attribute {name!r}")
    from embedsearch.dedup import find

    return getattr(find, name)
