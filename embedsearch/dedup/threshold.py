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
- **what unrelated items score**: all pairs of a uniform sample of rows, less each row's
  best match (a random pair is almost never a duplicate, and leaving out best matches
  removes the few that are); the null bound is the score that a share
  ``2 * FALSE_PAIRS_PER_ROW / (N - 1)`` of them exceed, so about ``0.05 * N`` unrelated
  pairs of the whole corpus pass it. The sample grows with N (``20 * sqrt(N)`` rows, at
  least ``SAMPLE_ROWS``) so that at least 20 sample pairs lie above the bound.

    threshold = max(copy bound, null bound)

Without a copy bound (text corpora, moved files, a model that cannot be loaded or whose
fingerprint changed) the rule is ``max(FALLBACK_FLOOR, null bound)``. The threshold is
rounded to 4 decimals; the rule actually used is written into ``dedup.json`` and the histogram.
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
FALSE_PAIRS_PER_ROW = 0.05
FALLBACK_FLOOR = 0.95


def sample_rows(n_total: int) -> int:
    """Rows to sample so that the null bound is read off at least ``20`` sample pairs above it."""
    rho = false_pair_rate(n_total)
    return int(min(n_total, max(SAMPLE_ROWS, np.ceil(np.sqrt(2 * 20 / rho)))))


def false_pair_rate(n_total: int) -> float:
    """Share of unrelated pairs allowed above the threshold: ``FALSE_PAIRS_PER_ROW * N`` pairs in all."""
    return min(1.0, FALSE_PAIRS_PER_ROW * 2.0 / max(n_total - 1, 1))


def null_bound(sample: np.ndarray, n_total: int, block: int = 256) -> float:
    """The score that a share :func:`false_pair_rate` of unrelated pairs exceed, from ``sample``'s pairs.

    Each row's best match in the sample is left out: when a corpus is dense in copies (or
    the sample is the whole corpus) a copy and its original are each other's best match
    and would otherwise raise the bound. Computed in row blocks, keeping only the top scores.

    Example:
        >>> x = np.eye(6, dtype=np.float32)
        >>> null_bound(np.concatenate([x, x[:1]]), n_total=7)   # the duplicate pair (score 1) is left out
        0.0
    """
    n = len(sample)
    if n < 3:
        return 1.0
    best = np.concatenate([_masked_scores(sample, i, block).argmax(axis=1) for i in range(0, n, block)])
    pairs = n * (n - 1) // 2 - n
    top_m = max(1, int(np.ceil(false_pair_rate(n_total) * pairs)))
    top = np.empty(0, np.float32)
    for i in range(0, n, block):
        scores = _masked_scores(sample, i, block)
        rows = np.arange(i, min(n, i + block))
        scores[np.arange(len(rows)), best[rows]] = -np.inf
        scores[best[None, :] == rows[:, None]] = -np.inf  # pairs where this row is the other's best
        scores[np.arange(n)[None, :] <= rows[:, None]] = -np.inf  # each pair once
        values = scores[np.isfinite(scores)]
        top = np.concatenate([top, values])
        if len(top) > top_m:
            top = np.partition(top, len(top) - top_m)[-top_m:]
    return float(top.min()) if len(top) else 1.0


def _masked_scores(sample: np.ndarray, start: int, block: int) -> np.ndarray:
    scores = sample[start : start + block] @ sample.T
    scores[np.arange(len(scores)), np.arange(start, start + len(scores))] = -np.inf
    return scores


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


def default_threshold(sample: np.ndarray, n_total: int, copies: np.ndarray | None) -> tuple[float, str]:
    """``(threshold, rule)`` from a random sample of vectors, the corpus size and (optionally) copy scores.

    Example:
        >>> x = np.eye(8, dtype=np.float32)
        >>> default_threshold(x, 8, np.linspace(0.8, 1.0, 21))[0]
        0.81
        >>> default_threshold(x, 8, None)[0]
        0.95
    """
    null = null_bound(sample, n_total)
    null_text = f"null {null:.4f} (~{FALSE_PAIRS_PER_ROW:g} x N unrelated pairs above, from {len(sample)} rows)"
    if copies is None:
        return round(max(FALLBACK_FLOOR, null), 4), f"no copy calibration; max({FALLBACK_FLOOR}, {null_text})"
    copy = float(np.quantile(copies, COPY_QUANTILE))
    return round(max(copy, null), 4), f"max(q{COPY_QUANTILE} of {len(copies)} mild self-copies {copy:.4f}, {null_text})"
