"""The default ``--threshold``: calibrated on the model at hand and the data at hand.

Models put duplicates and unrelated items at very different cosines (a random-init
ResNet puts everything above 0.95, a contrastively trained encoder puts unrelated
items near 0), so no fixed number fits them all. Two measurements fix the scale:

- **what a copy scores** (image corpora whose files and model are still available):
  ``CALIBRATION_IMAGES`` images of the corpus, drawn at random, are copied with the
  *mild* recipe of :mod:`embedsearch.data.copies` (re-crop keeping >= 88 % of the area,
  brightness/contrast +-10 %, JPEG 40-80) and embedded with the same model; the copy
  bound is the ``COPY_QUANTILE`` quantile of the original-copy scores, so about 95 % of
  such copies pass;
- **what unrelated items score**: all pairs of ``SAMPLE_ROWS`` rows drawn at random (a
  random pair is almost never a duplicate); the null bound is their ``NULL_QUANTILE``
  quantile, so at most 0.1 % of unrelated pairs could pass.

    threshold = max(copy bound, null bound)

Without a copy bound (text corpora, moved files, a model that cannot be loaded or whose
fingerprint changed) the rule is ``max(FALLBACK_FLOOR, null bound at FALLBACK_NULL_QUANTILE)``.
The rule actually used is written into ``dedup.json`` and the histogram.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from embedsearch.errors import EmbedsearchError
from embedsearch.store.embedding_dir import EmbeddingDir

SAMPLE_ROWS = 2_000
CALIBRATION_IMAGES = 200
MIN_CALIBRATION_IMAGES = 20
COPY_QUANTILE = 0.05
NULL_QUANTILE = 0.999
FALLBACK_NULL_QUANTILE = 0.9999
FALLBACK_FLOOR = 0.95


def null_bound(sample: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of the scores of all pairs of ``sample`` rows.

    Example:
        >>> x = np.eye(4, dtype=np.float32)
        >>> null_bound(x, 0.999)
        0.0
    """
    if len(sample) < 2:
        return 1.0
    scores = (sample @ sample.T)[np.triu_indices(len(sample), 1)]
    return float(np.quantile(scores, quantile))


def copy_scores(emb_dir: EmbeddingDir, sources: Sequence[str], seed: int = 0) -> np.ndarray | None:
    """Cosines between images of ``sources`` and their mild copies, embedded by ``emb_dir``'s model.

    None when this cannot be measured: not an image dir, model not loadable or changed
    (another fingerprint), or fewer than ``MIN_CALIBRATION_IMAGES`` readable files.
    """
    if emb_dir.modality != "image":
        return None
    paths = [s for s in sources if s and os.path.isfile(s)]
    if len(paths) < MIN_CALIBRATION_IMAGES:
        return None
    try:
        from embedsearch.encoders import load_encoder

        encoder = load_encoder(emb_dir.model, **emb_dir.model_options)
    except (EmbedsearchError, TypeError):
        return None
    if encoder.fingerprint != emb_dir.fingerprint:
        return None
    return _embed_copies(encoder.to("cpu"), paths, seed)


def _embed_copies(encoder, paths: Sequence[str], seed: int) -> np.ndarray | None:
    import torch

    from embedsearch.data.copies import make_copy
    from embedsearch.data.decode import DecodeError, load_image

    rng = np.random.default_rng(seed)
    originals, copies = [], []
    for path in paths:
        try:
            image = load_image(path)
        except DecodeError:
            continue
        originals.append(encoder.preprocess(image))
        copies.append(encoder.preprocess(make_copy(np.asarray(image), min(image.size), "mild", rng)))
    if len(originals) < MIN_CALIBRATION_IMAGES:
        return None
    a = encoder.embed_images(torch.stack(originals))
    b = encoder.embed_images(torch.stack(copies))
    return np.einsum("ij,ij->i", a, b)


def default_threshold(sample: np.ndarray, copies: np.ndarray | None) -> tuple[float, str]:
    """``(threshold, rule)`` from a random sample of vectors and (optionally) copy scores.

    Example:
        >>> x = np.eye(8, dtype=np.float32)
        >>> default_threshold(x, np.linspace(0.8, 1.0, 21))[0]
        0.81
        >>> default_threshold(x, None)[0]
        0.95
    """
    if copies is None:
        null = null_bound(sample, FALLBACK_NULL_QUANTILE)
        value = max(FALLBACK_FLOOR, null)
        return round(value, 4), (
            f"no copy calibration; max({FALLBACK_FLOOR}, q{FALLBACK_NULL_QUANTILE} of random pairs {null:.4f})"
        )
    null = null_bound(sample, NULL_QUANTILE)
    copy = float(np.quantile(copies, COPY_QUANTILE))
    value = max(copy, null)
    return round(value, 4), (
        f"max(q{COPY_QUANTILE} of {len(copies)} mild self-copies {copy:.4f}, q{NULL_QUANTILE} of random pairs {null:.4f})"
    )
