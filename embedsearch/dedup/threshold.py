"""The default ``--threshold``: read off the model's own similarity scale on this data.

Models put unrelated items at very different cosines (a random-init ResNet puts
everything above 0.95, a contrastively trained encoder around 0), so a fixed
number cannot fit them all. The default is computed from a uniform sample of
``SAMPLE_ROWS`` vectors: the scores of all pairs in the sample describe how similar
*unrelated* items are for this model (a random pair is almost never a duplicate),
and the threshold sits ``Z`` robust standard deviations above their median,
never below ``FLOOR``:

    threshold = clip(median + Z * 1.4826 * MAD, FLOOR, 1)

The rule is written into ``dedup.json`` and the histogram so users see where it came from.
"""

from __future__ import annotations

import numpy as np

SAMPLE_ROWS = 2_000
Z = 8.0
FLOOR = 0.5


def default_threshold(sample: np.ndarray) -> tuple[float, str]:
    """``(threshold, rule)`` from a sample of vectors (see the module docstring).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(500, 64)).astype(np.float32)
        >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
        >>> round(default_threshold(x)[0], 2)
        1.0
    """
    if len(sample) < 2:
        return 1.0, "too few rows to estimate; exact matches only"
    scores = (sample @ sample.T)[np.triu_indices(len(sample), 1)]
    median = float(np.median(scores))
    spread = 1.4826 * float(np.median(np.abs(scores - median)))
    value = float(np.clip(median + Z * spread, FLOOR, 1.0))
    rule = f"median {median:.3f} + {Z:g} x robust std {spread:.3f} of random pairs (floor {FLOOR})"
    return value, rule
