"""The score histogram (PNG + text) that lets users choose their own ``--threshold``.

It shows, for every query row, the score of its nearest *other* row: duplicates sit in
a peak near 1, everything else in the bulk below; the default threshold is drawn on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BINS = 50
# Narrowest plotted score range: exact duplicates all score 1 give float32 values a few ulps
# apart, which numpy cannot split into BINS bins ("Too many bins for data range").
_MIN_SPAN = 1e-3


def bin_edges(best: np.ndarray) -> np.ndarray:
    """``BINS + 1`` float64 edges covering ``best``, at least ``_MIN_SPAN`` wide.

    Example:
        >>> edges = bin_edges(np.array([0.99999994, 1.0], dtype=np.float32))
        >>> len(edges), round(float(edges[-1] - edges[0]), 6)
        (51, 0.001)
    """
    low, high = (float(best.min()), float(best.max())) if len(best) else (0.0, 1.0)
    middle = (low + high) / 2
    half = max(high - low, _MIN_SPAN) / 2
    return np.linspace(middle - half, middle + half, BINS + 1)


def histogram_text(best: np.ndarray, threshold: float, rule: str, space: str = "raw cosine") -> str:
    """Quantiles of nearest-neighbour scores and how many rows pass candidate thresholds.

    Example:
        >>> print(histogram_text(np.array([0.2, 0.5, 0.99]), 0.9, "given").splitlines()[0])
        nearest-neighbour score of 3 rows (threshold 0.9000: given)
    """
    best = best[np.isfinite(best)]
    lines = [
        f"nearest-neighbour score of {len(best)} rows (threshold {threshold:.4f}: {rule})",
        f"scores: {space}",
    ]
    if len(best) == 0:
        return "\n".join(lines) + "\n"
    quantiles = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0]
    lines.append(
        "quantiles: "
        + "  ".join(
            f"q{q:g}={v:.4f}" for q, v in zip(quantiles, np.quantile(best, quantiles), strict=False)
        )
    )
    candidates = sorted(
        {round(float(t), 4) for t in np.linspace(min(threshold, 0.8), 1.0, 9)}
        | {round(threshold, 4)}
    )
    lines.append("rows whose nearest neighbour passes a threshold:")
    for t in candidates:
        mark = "  <- threshold" if abs(t - round(threshold, 4)) < 1e-9 else ""
        lines.append(f"  >= {t:.4f}: {int((best >= t).sum()):>10,}{mark}")
    counts, edges = np.histogram(best.astype(np.float64), bins=bin_edges(best))
    width = max(1, counts.max())
    lines.append("histogram:")
    for count, low in zip(counts, edges[:-1], strict=False):
        lines.append(f"  {low:+.3f} {'#' * round(40 * count / width):<40} {count}")
    return "\n".join(lines) + "\n"


def write_histogram_png(
    best: np.ndarray, threshold: float, rule: str, path: Path, space: str = "raw cosine"
) -> None:
    """Histogram of nearest-neighbour scores with the threshold marked (log counts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = best[np.isfinite(best)]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if len(best):
        ax.hist(best.astype(np.float64), bins=bin_edges(best).tolist(), color="#4477aa", log=True)
    ax.axvline(
        threshold, color="#cc3311", linestyle="--", label=f"threshold {threshold:.4f} ({rule})"
    )
    ax.set_xlabel(f"similarity to the nearest other item ({space})")
    ax.set_ylabel("items (log)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
