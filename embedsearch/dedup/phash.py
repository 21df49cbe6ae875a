"""Perceptual hashes (pHash) of image files, and the pairs within a Hamming distance.

A cheap second opinion for ``dedup``: near-exact copies (re-encoded, slightly resized or
recoloured) keep almost the same low-frequency DCT pattern, so their 64-bit hashes differ in a
few bits even when an under-trained embedding model places them apart. The hash is the classic
one (and imagededup's PHash): grayscale, resized to 32 x 32, 2-D DCT, the 8 x 8 lowest
frequencies, each bit = coefficient above their median (the DC term left out of the median).
Written with numpy (the DCT is a matrix product) rather than depending on ``imagehash`` or
``imagededup``: it is a dozen lines, and imagededup pulls in torch-based models and pins of its
own.

Pairs come from faiss's binary flat index (``range_search`` on packed bits), in blocks, so
memory stays bounded and the all-pairs popcount runs at SIMD speed.

Example:
    >>> from PIL import Image
    >>> import numpy as np
    >>> image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    >>> a, b = phash_image(image), phash_image(image.resize((60, 60)))
    >>> a.shape, a.dtype, hamming(a, b) <= 4
    ((8,), dtype('uint8'), True)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from embedsearch.dedup.options import DEFAULT_PHASH_DISTANCE

HASH_BYTES = 8  # 64 bits
__all__ = ["DEFAULT_PHASH_DISTANCE", "hamming", "phash_files", "phash_image", "phash_pairs"]


def _dct_rows(n: int, rows: int) -> np.ndarray:
    """The first ``rows`` rows of the orthonormal DCT-II matrix of size ``n`` (scipy's
    ``dct(type=2, norm="ortho")``): ``C @ x @ C.T`` is the 2-D DCT's top-left block."""
    k, i = np.arange(rows)[:, None], np.arange(n)[None, :]
    matrix = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    matrix[0] /= np.sqrt(2.0)
    return matrix


_DCT_8_OF_32 = _dct_rows(32, 8)


def phash_image(image: Image.Image) -> np.ndarray:
    """The 64-bit perceptual hash of ``image`` as 8 packed bytes."""
    gray = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), np.float64)
    low = (_DCT_8_OF_32 @ gray @ _DCT_8_OF_32.T).ravel()
    bits = low > np.median(low[1:])
    return np.packbits(bits)


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    """Bits that differ between two packed hashes.

    Example:
        >>> hamming(np.array([0b1010], np.uint8), np.array([0b0011], np.uint8))
        2
    """
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


def phash_files(paths: Iterable[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of image files -> (hashes (n, 8) uint8, readable mask (n,)).

    An unreadable or missing file gets no hash (mask False) rather than failing the run: the
    embedding stage already decided which rows exist; this stage can only add pairs.
    """
    from embedsearch.data.decode import DecodeError, load_image

    hashes, readable = [], []
    for path in paths:
        try:
            hashes.append(phash_image(load_image(Path(path))))
            readable.append(True)
        except (DecodeError, OSError):
            hashes.append(np.zeros(HASH_BYTES, np.uint8))
            readable.append(False)
    if not hashes:
        return np.empty((0, HASH_BYTES), np.uint8), np.empty(0, bool)
    return np.stack(hashes), np.asarray(readable)


def phash_pairs(
    hashes: np.ndarray, max_distance: int, readable: np.ndarray | None = None, block: int = 8192
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row pairs ``a < b`` whose hashes differ in at most ``max_distance`` bits -> (a, b, distance).

    Example:
        >>> h = np.array([[0] * 8, [1] + [0] * 7, [255] * 8], np.uint8)
        >>> [x.tolist() for x in phash_pairs(h, 2)]
        [[0], [1], [1]]
    """
    import faiss

    n = len(hashes)
    empty = np.empty(0, np.int64)
    if n < 2:
        return empty, empty, empty
    index = faiss.IndexBinaryFlat(HASH_BYTES * 8)
    index.add(np.ascontiguousarray(hashes, np.uint8))
    parts_a, parts_b, parts_d = [], [], []
    for start in range(0, n, block):
        queries = np.ascontiguousarray(hashes[start : start + block], np.uint8)
        # faiss's binary range search keeps distances strictly below the radius.
        lims, dist, ids = index.range_search(queries, max_distance + 1)
        rows = np.repeat(np.arange(start, start + len(queries)), np.diff(lims).astype(np.int64))
        keep = rows < ids
        parts_a.append(rows[keep])
        parts_b.append(ids[keep].astype(np.int64))
        parts_d.append(dist[keep].astype(np.int64))
    a, b, d = np.concatenate(parts_a), np.concatenate(parts_b), np.concatenate(parts_d)
    if readable is not None:
        ok = np.asarray(readable, bool)
        both = ok[a] & ok[b]
        a, b, d = a[both], b[both], d[both]
    return a, b, d
