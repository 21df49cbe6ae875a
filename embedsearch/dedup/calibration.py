"""Calibration: in which space to compare vectors (raw or whitened) and at which threshold.

One value, decided once before the search, from the data at hand: the whitening rule of
:mod:`embedsearch.dedup.whitening` and the threshold rule of :mod:`embedsearch.dedup.threshold`
share one sample of rows and one set of self-made copies of the corpus's images.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from embedsearch.dedup import threshold as thresholds
from embedsearch.dedup.inputs import DedupInputs
from embedsearch.dedup.options import DedupOptions
from embedsearch.dedup.whitening import MIN_ROWS as WHITEN_MIN_ROWS
from embedsearch.dedup.whitening import Whitening, choose_whitening
from embedsearch.errors import InputError


@dataclass(frozen=True)
class Calibration:
    """The threshold and the space its scores live in, each with the rule that chose it.

    Example:
        >>> Calibration(0.9, "given").space
        'raw cosine'
    """

    threshold: float
    rule: str  # how the threshold was chosen, with its figures (dedup.json "threshold_rule")
    whitening: Whitening | None = None  # applied to every vector before comparing, when set
    decision: str = ""  # why whitened or not (dedup.json "whitening")

    @property
    def space(self) -> str:
        """What the scores are: cosines of the raw or of the whitened vectors."""
        return self.whitening.describe() if self.whitening is not None else "raw cosine"


def calibrate(inputs: DedupInputs, options: DedupOptions) -> Calibration:
    """The calibration ``options.method`` compares by: knn's space and threshold, or SemDeDup's
    raw cosines pruned at ``1 - eps`` (by default at knn's raw-cosine default threshold)."""
    if options.method == "knn":
        return space_and_threshold(inputs, options.threshold, options.whiten, options.block_rows)
    if options.eps is not None:
        return Calibration(1.0 - options.eps, f"1 - eps (eps {options.eps:g})")
    raw = space_and_threshold(inputs, None, False, options.block_rows)
    return Calibration(raw.threshold, f"eps = 1 - default threshold; {raw.rule}")


def space_and_threshold(
    inputs: DedupInputs, threshold: float | None, whiten: bool | None, block_rows: int
) -> Calibration:
    """Decide whether to whiten and, unless ``threshold`` is given, the threshold.

    Reads a sample of rows and embeds copies of the corpus's images only when a decision
    needs them (a given threshold and nothing to test whitening on reads nothing).
    """
    n_total = len(inputs.catalog)

    @functools.cache
    def raw_sample() -> np.ndarray:  # read once, and only when needed
        return inputs.sample("all", thresholds.null_sample_size(n_total), block_rows)

    deciding = whiten is None and n_total >= WHITEN_MIN_ROWS
    copies = None
    if deciding or threshold is None:
        copies = _self_copies(inputs, ("mild", "strong") if deciding else ("mild",))
    whitening, decision = choose_whitening(raw_sample, n_total, copies, whiten)
    if whiten and whitening is None:
        raise InputError(
            f"--whiten needs at least {WHITEN_MIN_ROWS} rows to fit on; this input has {n_total}"
        )
    if threshold is not None:
        return Calibration(float(threshold), "given", whitening, decision)
    raw = raw_sample()
    sample = whitening(raw) if whitening is not None else raw
    mild = copies.scores("mild", whitening) if copies is not None else None
    value, rule = thresholds.default_threshold(
        sample, n_total, mild, whitened=whitening is not None
    )
    return Calibration(value, rule, whitening, decision)


def _self_copies(inputs: DedupInputs, recipes: tuple[str, ...]) -> thresholds.SelfCopies | None:
    """Copies of up to ``CALIBRATION_IMAGES`` random images of the main set, embedded with its
    model (None when that cannot be done); seeded, so a rerun calibrates alike."""
    rng = np.random.default_rng(0)
    count = min(thresholds.CALIBRATION_IMAGES, inputs.main_rows)
    rows = rng.choice(inputs.main_rows, count, replace=False)
    sources = inputs.catalog.source_of(np.sort(rows)).to_pylist()
    return thresholds.self_copies(inputs.main_dirs[0], sources, seed=0, recipes=recipes)
