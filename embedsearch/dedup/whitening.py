"""PCA whitening of the vectors before the near-duplicate search, fit on the corpus itself.

Encoder vectors are far from isotropic: a ResNet's pooled features are all positive, so
every cosine is high (unrelated photos at 0.98 for a SimCLR backbone), and a few
directions that describe *what kind of image* it is (texture, colour, brightness) outweigh
the fine detail that tells one photo from a re-cropped copy of another. Centring on the
corpus mean and scaling the principal directions to unit variance gives every direction
the same weight, which is what copy detection needs (SSCD, Pizzi et al. 2022, whitens its
descriptors for the same reason); figures in ``benchmarks/RESULTS.md`` (issue 6).

Whitening is not always right: when duplicates differ by noise in directions where the corpus
itself barely varies (synthetic vectors plus isotropic noise, say), whitening blows that noise
up and copies stop looking alike. So by default (``whiten=None``) dedup *tests* it on the
corpus: it makes strong copies of ``CALIBRATION_IMAGES`` of its own images
(:mod:`embedsearch.dedup.threshold`), and whitens only when more of those copies pass the null
bound (the default threshold) in the whitened space than in the raw one. Without images to copy
(text corpora, moved files, a model that cannot be loaded) or with fewer than ``MIN_ROWS`` rows,
it compares raw cosines. ``whiten=True`` / ``False`` decide without the test.

The fit keeps ``min(dim, MAX_DIMS, rows // ROWS_PER_DIM)`` principal directions whose variance
is at least ``MIN_RELATIVE_VARIANCE`` of the largest (directions without variance would only
amplify noise). The transform is ``normalise((x - mean) @ P)``: scores stay cosines, of the
whitened vectors. Exact duplicates are found by content hash and are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embedsearch.dedup.threshold import SelfCopies, null_bound

MIN_ROWS = 500
MAX_DIMS = 128
ROWS_PER_DIM = 4  # a covariance estimated on fewer rows a direction whitens sampling noise
MIN_RELATIVE_VARIANCE = 1e-4


@dataclass(frozen=True)
class Whitening:
    """``x -> normalise((x - mean) @ projection)``: centred, PCA-whitened, unit-length vectors.

    Example:
        >>> w = fit_whitening(np.random.default_rng(0).normal(size=(600, 8)).astype(np.float32))
        >>> w.dims, w(np.ones((2, 8), np.float32)).shape
        (8, (2, 8))
    """

    mean: np.ndarray  # (dim,)
    projection: np.ndarray  # (dim, dims): principal directions / sqrt(their variance)
    fit_rows: int

    @property
    def dims(self) -> int:
        return int(self.projection.shape[1])

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        """Whiten a block of vectors (rows) -> float32, L2-normalised, ``dims`` wide."""
        y = (np.asarray(vectors, np.float32) - self.mean) @ self.projection
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return np.ascontiguousarray(y / np.maximum(norms, 1e-12), dtype=np.float32)

    def describe(self) -> str:
        return f"PCA-whitened, {self.dims} of {len(self.mean)} dims, fit on {self.fit_rows:,} rows"


def fit_whitening(sample: np.ndarray) -> Whitening | None:
    """Fit the whitening on a sample of rows; None when the sample is too small (``MIN_ROWS``).

    Example:
        >>> fit_whitening(np.zeros((10, 4), np.float32)) is None
        True
    """
    rows, dim = sample.shape
    if rows < MIN_ROWS:
        return None
    x = np.asarray(sample, np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    # Eigen-decomposition of the d x d covariance: cheap for embedding sizes (d <= a few thousand).
    variances, directions = np.linalg.eigh(centred.T @ centred / max(rows - 1, 1))
    variances, directions = variances[::-1], directions[:, ::-1]
    if variances[0] <= 0:
        return None  # every sampled vector is the same
    usable = int(np.count_nonzero(variances >= MIN_RELATIVE_VARIANCE * variances[0]))
    dims = max(1, min(dim, MAX_DIMS, rows // ROWS_PER_DIM, usable))
    projection = directions[:, :dims] / np.sqrt(variances[:dims])
    return Whitening(mean.astype(np.float32), projection.astype(np.float32), rows)


def choose_whitening(
    raw_sample: Callable[[], np.ndarray],
    n_total: int,
    copies: SelfCopies | None,
    whiten: bool | None,
) -> tuple[Whitening | None, str]:
    """``(whitening or None, why)``: the rule of this module's docstring.

    ``raw_sample``: returns uniformly sampled rows of the corpus (as for the threshold's null
    bound); called only when the decision needs them, so a corpus without images is not read.
    ``copies``: the corpus's own images and strong copies of them, embedded (None if impossible).

    Example:
        >>> choose_whitening(lambda: np.zeros((10, 4), np.float32), 10, None, None)
        (None, 'raw cosine: 10 rows, whitening needs 500')
    """
    if whiten is False:
        return None, "raw cosine: whitening turned off"
    if n_total < MIN_ROWS:
        return None, f"raw cosine: {n_total} rows, whitening needs {MIN_ROWS}"
    if whiten is None and (copies is None or "strong" not in copies.copies):
        return None, "raw cosine: no images of the corpus to test whitening on"
    sample = raw_sample()
    whitening = fit_whitening(sample)
    if whitening is None:
        return None, f"raw cosine: the {len(sample)} sampled rows cannot be whitened"
    if whiten or copies is None:
        return whitening, "whitened: asked for"
    raw_pass = float(np.mean(copies.scores("strong") >= null_bound(sample, n_total)))
    white_pass = float(
        np.mean(copies.scores("strong", whitening) >= null_bound(whitening(sample), n_total))
    )
    verdict = (
        f"{white_pass:.0%} of {len(copies.originals)} strong self-copies pass whitened, "
        f"{raw_pass:.0%} raw"
    )
    if white_pass > raw_pass:
        return whitening, f"whitened: {verdict}"
    return None, f"raw cosine: {verdict}"
