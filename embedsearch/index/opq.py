"""Training an OPQ rotation in seconds: fewer points and rounds, and a PCA start when it reduces.

faiss trains an ``OPQm_d`` rotation with 50 rounds on up to 65,536 points, starting from a
random rotation: minutes on 2 cores. Its 2-d sub-spaces need few points (measurements:
benchmarks/RESULTS.md, issue 3). When the rotation also reduces the dimension, a random start
keeps only part of the signal and a few rounds do not recover it; it starts instead from the
leading principal directions, mixed by a random rotation so that every sub-space gets a share
of the variance.
The rotation stays orthonormal, so inner products -- and the ranking -- are kept.

Example:
    >>> with quicker_opq(index, sample):      # doctest: +SKIP
    ...     index.train(sample)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

OPQ_ROUNDS = 20
OPQ_FIRST_KMEANS_ITERATIONS = 10
OPQ_TRAIN_POINTS = 4096
PCA_POINTS = 16_384


def pca_start(sample: np.ndarray, d_out: int, seed: int = 0) -> np.ndarray:
    """(d_out, d) orthonormal rows: the top ``d_out`` principal directions, randomly mixed."""
    x = np.asarray(sample[:PCA_POINTS], np.float64)
    _, _, directions = np.linalg.svd(x - x.mean(0), full_matrices=False)
    top = directions[:d_out]
    if len(top) < d_out:  # fewer sample rows than output dims: complete the basis
        random = np.random.default_rng(seed).standard_normal((x.shape[1], x.shape[1]))
        rest = np.linalg.qr(random)[0].T
        rest -= (rest @ top.T) @ top
        extra = np.linalg.svd(rest, full_matrices=False)[2][: d_out - len(top)]
        top = np.vstack([top, extra])
    mix = np.linalg.qr(np.random.default_rng(seed).standard_normal((d_out, d_out)))[0]
    return np.ascontiguousarray(mix @ top, np.float32)


@contextmanager
def quicker_opq(index: Any, sample: np.ndarray) -> Iterator[None]:
    """While training ``index``: cheaper settings (and a PCA start) for its OPQ rotation."""
    import faiss

    from embedsearch.index.centring import centre_of, centred

    mean = centre_of(index)
    if mean is not None:  # the rotation sees centred vectors (centring.py)
        sample = centred(sample, mean)
    index = faiss.downcast_index(index)
    rotations = []
    if isinstance(index, faiss.IndexPreTransform):
        chain: Any = index.chain  # a C++ vector (faiss's stubs say list)
        for position in range(chain.size()):
            transform = faiss.downcast_VectorTransform(chain.at(position))
            if not isinstance(transform, faiss.OPQMatrix) or transform.is_trained:
                continue
            transform.niter = OPQ_ROUNDS
            transform.niter_pq_0 = OPQ_FIRST_KMEANS_ITERATIONS
            transform.max_train_points = OPQ_TRAIN_POINTS
            first = position == (0 if mean is None else 2)  # after centring + normalisation
            if transform.d_out < transform.d_in and first:
                faiss.copy_array_to_vector(pca_start(sample, transform.d_out).ravel(), transform.A)
            # its own PQ, only so that faiss does not warn about 16 points a centroid
            pq = faiss.ProductQuantizer(transform.d_out, transform.M, 8)
            pq.cp.min_points_per_centroid = 4
            transform.pq = pq
            rotations.append((transform, pq))  # keeps ``pq`` alive while faiss points at it
    try:
        yield
    finally:
        for transform, _ in rotations:
            transform.pq = None
