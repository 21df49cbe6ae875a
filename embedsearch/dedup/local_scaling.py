"""Local scaling of similarity scores: a pair's cosine less the two items' neighbourhood levels.

Some images sit in dense parts of the embedding (skies, textures, one photographer's series):
everything near them scores high, so unrelated neighbours pass a global threshold while a
strong copy of an image in a sparse region does not. Subtracting each item's *level*, the mean
cosine of its ``K`` nearest rows of a random background sample of the corpus, puts both on one
scale (CSLS, Conneau et al. 2018; the score normalisation of the 2021 Image Similarity
Challenge's copy-detection entries)::

    adjusted(a, b) = cos(a, b) - (level(a) + level(b)) / 2

The background is the calibration's random sample (capped at ``MAX_BACKGROUND`` rows, so a
pass over N rows costs ``N x MAX_BACKGROUND`` dot products); an item's own vector (and exact
copies of it) are left out of its level. On real-photo copies this lifted the F1 of strong
copies far more than any change of the model's training within the same time
(``benchmarks/RESULTS.md``, issue 20); whether it is used is decided per corpus by the
calibration's self-copy test (:mod:`embedsearch.dedup.calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K = 10
MIN_ROWS = 100  # by default, smaller corpora are not scaled: levels need many more rows than K
MAX_BACKGROUND = 2_048
SELF_MATCH = 1.0 - 1e-5  # a background row scoring this high is the item itself (or equal to it)
BLOCK = 4_096


@dataclass(frozen=True)
class LocalScaling:
    """Neighbourhood levels against ``background`` rows (unit vectors, the comparison space).

    Example:
        >>> x = np.eye(4, dtype=np.float32)
        >>> s = LocalScaling(x, k=1)
        >>> s.levels(x).tolist()          # each basis vector's nearest *other* row scores 0
        [0.0, 0.0, 0.0, 0.0]
        >>> round(float(s.adjust(np.float32(0.5), np.float32(0.2), np.float32(0.0))), 4)
        0.4
    """

    background: np.ndarray  # (m, dims) float32
    k: int = K

    def levels(self, vectors: np.ndarray) -> np.ndarray:
        """Each row's level: the mean cosine of its ``k`` nearest background rows (itself left
        out), computed in blocks so memory stays ``BLOCK x m``."""
        k = min(self.k, max(1, len(self.background) - 1))
        out = np.empty(len(vectors), np.float32)
        for start in range(0, len(vectors), BLOCK):
            scores = vectors[start : start + BLOCK] @ self.background.T
            scores[scores >= SELF_MATCH] = -np.inf
            top = np.partition(scores, scores.shape[1] - k, axis=1)[:, -k:]
            top[~np.isfinite(top)] = 0.0  # fewer than k other rows: count the rest as unrelated
            out[start : start + len(scores)] = top.mean(axis=1)
        return out

    @staticmethod
    def adjust(scores: np.ndarray, levels_a: np.ndarray, levels_b: np.ndarray) -> np.ndarray:
        """``scores - (levels_a + levels_b) / 2`` (broadcasting), float32."""
        return (scores - (levels_a + levels_b) * np.float32(0.5)).astype(np.float32)

    def describe(self) -> str:
        """Words for ``dedup.json`` and the histogram: what was subtracted."""
        return (
            f"less the two items' neighbourhood levels (mean of {self.k} nearest of "
            f"{len(self.background):,} sampled rows)"
        )


def fit_local_scaling(sample: np.ndarray, rng_seed: int = 0) -> LocalScaling:
    """A :class:`LocalScaling` whose background is ``sample`` (rows in the comparison space),
    subsampled to ``MAX_BACKGROUND`` rows.

    Example:
        >>> fit_local_scaling(np.eye(3, dtype=np.float32)).background.shape
        (3, 3)
    """
    if len(sample) > MAX_BACKGROUND:
        rows = np.random.default_rng(rng_seed).choice(len(sample), MAX_BACKGROUND, replace=False)
        sample = sample[np.sort(rows)]
    return LocalScaling(np.ascontiguousarray(sample, dtype=np.float32))
