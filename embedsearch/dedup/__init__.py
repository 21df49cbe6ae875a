"""Deduplication: exact (content hash) and near duplicates (FAISS), train/test leakage, SemDeDup.

Example:
    >>> from embedsearch.dedup import find_duplicates
    >>> result = find_duplicates("emb/", out="dups/")   # doctest: +SKIP
"""

from embedsearch.dedup.api import DedupResult, find_duplicates

__all__ = ["DedupResult", "find_duplicates"]
