"""Integrity checks of stored vectors: shard checksums and vector sanity.

A shard's sha256 is recorded in the manifest when it is committed; every read pass hashes the
file before using it, so flipped bytes, a truncated copy or a deleted shard are refused by name
instead of turning into a score of 2.7e36 or a dedup that removes everything. Hashing streams
the file in 1 MiB blocks (memory flat) and costs about one extra sequential read; the figures
are in ``benchmarks/RESULTS.md`` (issue 18).

Example:
    >>> import numpy as np
    >>> bad_rows(np.array([[1.0, 0.0], [3.0, 0.0]], np.float32), normalized=True).tolist()
    [1]
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from embedsearch.errors import FormatError

# Stored vectors are L2-normalised in float32; a norm this far from 1 is damage, not rounding.
NORM_TOLERANCE = 1e-3


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    """The file's sha256 in hex, streamed (memory: one block).

    Example:
        >>> sha256_file("emb/part-00000.parquet")   # doctest: +SKIP
        '9f86d0...'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shard_problem(path: Path, sha256: str) -> str | None:
    """Why the shard at ``path`` cannot be used (missing, or not the bytes committed), or None."""
    if not path.is_file():
        return "missing"
    try:
        actual = sha256_file(path)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if actual != sha256:
        return "checksum mismatch (corrupt or changed since it was written)"
    return None


def verify_shard(path: Path, sha256: str, dir_path: Path) -> None:
    """Refuse a shard whose bytes differ from those committed (:class:`FormatError`, by name)."""
    problem = shard_problem(path, sha256)
    if problem is not None:
        raise FormatError(
            f"{dir_path}: shard {path.name} is unusable ({problem}); refusing to use it. "
            f"Rerun `embedsearch embed` on the same source with --out {dir_path} to re-embed "
            "its rows (`embedsearch info` lists damaged shards)"
        )


def bad_rows(vectors: np.ndarray, normalized: bool) -> np.ndarray:
    """Row positions holding NaN/inf, or (for normalised dirs) a norm off 1 by > NORM_TOLERANCE."""
    finite = np.isfinite(vectors).all(axis=1)
    if normalized:
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))
        with np.errstate(invalid="ignore"):
            finite &= np.abs(norms - 1.0) <= NORM_TOLERANCE
    return np.flatnonzero(~finite)
