"""Centring concentrated vectors: remove the corpus mean inside the index, then re-normalise.

Embeddings of a model whose features are all positive (ReLU heads, an untrained or briefly
trained SimCLR) crowd into a narrow cone: every pair's cosine is about 0.99. Their scores say
nothing to a reader, and compressed codes (fast-scan PQ, SQ8) spend their precision on the shared
offset instead of the differences. Removing the corpus mean and re-normalising spreads them over
the sphere: cosine scores become *centred cosines*, and exact search, tuning and every kind of
index then rank by that similarity (``index.json`` says which: ``similarity``).

The mean is learned at build time from a sample and stored inside ``index.faiss`` as a faiss
``CenteringTransform`` + ``NormalizationTransform`` in an ``IndexPreTransform``, so a copied
index dir transforms its queries the same way with nothing else to carry.

Example:
    >>> x = np.array([[1.0, 0.1], [1.0, -0.1], [1.0, 0.0]], np.float32)
    >>> round(concentration(x / np.linalg.norm(x, axis=1, keepdims=True)), 3)
    0.99
    >>> centred(x, x.mean(0)).round(3).tolist()
    [[0.0, 1.0], [0.0, -1.0], [0.0, 0.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedsearch.choices import CENTRE_MODES, CentreMode

# ``auto`` centres a corpus whose mean pairwise cosine is at least this: the all-positive features
# of an untrained or briefly trained SimCLR (~0.99), not CLIP's (~0.5), whose text queries would
# rank differently against a mean learned from images. Builds default to no centring: on real
# photo embeddings it did not find copies better (benchmarks/RESULTS.md, issue 19).
CENTRE_ABOVE = 0.9
# Rows the mean is learned from: its per-dimension error is ~1/sqrt(rows) of the spread.
CENTRE_SAMPLE = 10_000
RAW = "cosine"
CENTRED = "centred cosine"


def concentration(vectors: np.ndarray) -> float:
    """Mean cosine over all pairs of distinct rows of L2-normalised ``vectors`` (O(n·d))."""
    n = len(vectors)
    if n < 2:
        return 0.0
    total = np.asarray(vectors, np.float64).sum(0)
    return float((total @ total - n) / (n * (n - 1)))


def wants_centring(mode: CentreMode, sample: np.ndarray) -> bool:
    """Whether to centre: ``yes``/``no`` as asked; ``auto`` when the sample is concentrated."""
    if mode not in CENTRE_MODES:
        from embedsearch.errors import InputError

        raise InputError(f"unknown centring {mode!r}: use one of {', '.join(CENTRE_MODES)}")
    if mode != "auto":
        return mode == "yes"
    return len(sample) >= 2 and concentration(sample) >= CENTRE_ABOVE


def centred(vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``(x - mean) / |x - mean|`` a row (float32); a row equal to the mean stays zero."""
    x = np.asarray(vectors, np.float32) - np.asarray(mean, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1), np.float32)


def as_ranked(vectors: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """``vectors`` as an index with centre ``mean`` (None: no centring) compares them."""
    return vectors if mean is None else centred(vectors, mean)


def with_centring(index: Any, mean: np.ndarray) -> Any:
    """``index`` behind a centring + L2 normalisation transform (under its IDMap2 when it has
    one, so keys still go straight to the IDMap2). ``index`` may be untrained; use the result, not
    ``index`` (an OPQ chain is extended in place, anything else copied)."""
    import faiss

    given: Any = faiss.downcast_index(index)  # a view: ``index`` keeps owning the object
    keys = isinstance(given, faiss.IndexIDMap2)
    inner: Any = faiss.downcast_index(given.index) if keys else given
    dim = int(inner.d)
    centre = faiss.CenteringTransform(dim)
    faiss.copy_array_to_vector(np.asarray(mean, np.float32).ravel(), centre.mean)
    centre.is_trained = True
    norm = faiss.NormalizationTransform(dim, 2.0)
    if isinstance(inner, faiss.IndexPreTransform):  # an OPQ rotation: one chain, centring first
        inner.prepend_transform(norm)
        inner.prepend_transform(centre)
        transform: Any
        for transform in (norm, centre):  # that chain owns its transforms: Python must not
            transform.this.disown()
        # (no copy: an untrained OPQ rotation does not survive faiss's serialisation)
        return index
    wrapped = faiss.IndexPreTransform(norm, inner)
    wrapped.prepend_transform(centre)
    outer = faiss.IndexIDMap2(wrapped) if keys else wrapped
    return faiss.deserialize_index(faiss.serialize_index(outer))


def centre_of(index: Any) -> np.ndarray | None:
    """The mean a centred index removes from its vectors, or None when it does not centre."""
    import faiss

    view: Any = faiss.downcast_index(index)
    while isinstance(view, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        view = faiss.downcast_index(view.index)
    if not isinstance(view, faiss.IndexPreTransform):
        return None
    chain: Any = view.chain  # a C++ vector (faiss's stubs say list)
    first = faiss.downcast_VectorTransform(chain.at(0))
    if not isinstance(first, faiss.CenteringTransform):
        return None
    return faiss.vector_to_array(first.mean).astype(np.float32)
