"""Calibration: in which space to compare vectors (raw or whitened) and at which threshold.

One value, decided once before the search, from the data at hand: the whitening rule of
:mod:`embedsearch.dedup.whitening` and the threshold rule of :mod:`embedsearch.dedup.threshold`
share one sample of rows and one set of self-made copies of the corpus's images.

When few of those copies reach the threshold, the calibration says what to do (:func:`advice`):
pretrain on the folder, embed with ``--flip-average``, or a ``--threshold`` read off the same
figures, with its value and the unrelated pairs it would let through.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from embedsearch.dedup import threshold as thresholds
from embedsearch.dedup.inputs import DedupInputs
from embedsearch.dedup.local_scaling import MIN_ROWS as LOCAL_MIN_ROWS
from embedsearch.dedup.local_scaling import LocalScaling, fit_local_scaling
from embedsearch.dedup.options import DedupOptions
from embedsearch.dedup.whitening import MIN_ROWS as WHITEN_MIN_ROWS
from embedsearch.dedup.whitening import Whitening, choose_whitening
from embedsearch.errors import InputError
from embedsearch.progress import NullProgress, Progress

# Advice is given when fewer than this share of the mild self-copies reach the threshold.
ADVISE_BELOW = 0.5
# The --threshold the advice proposes lets this share of the mild self-copies through.
ADVISED_COPY_SHARE = 0.9


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
    words: str = ""  # the threshold and its reason in plain words, for people
    advice: list[str] = field(default_factory=list)  # what to do when few copies pass
    scaling: LocalScaling | None = None  # scores less the items' neighbourhood levels, when set
    scaling_decision: str = "off"  # why scaled or not (dedup.json "local_scaling")

    def explained(self) -> str:
        """``0.9000 (as given with --threshold)`` / the value and why, in plain words."""
        if self.rule == "given":
            return f"{self.threshold:.4f}, as given (--threshold)"
        return f"{self.threshold:.4f}: {self.words or self.rule}"

    @property
    def space(self) -> str:
        """What the scores are: cosines of the raw or of the whitened vectors, locally scaled or
        not."""
        cosine = self.whitening.describe() if self.whitening is not None else "raw cosine"
        return (
            cosine
            if self.scaling is None
            else f"{cosine}, locally scaled: {self.scaling.describe()}"
        )


def calibrate(
    inputs: DedupInputs, options: DedupOptions, progress: Progress | None = None
) -> Calibration:
    """The calibration ``options.method`` compares by: knn's space and threshold, or SemDeDup's
    raw cosines pruned at ``1 - eps`` (by default at knn's raw-cosine default threshold).
    ``progress`` hears of each step (sampling rows, loading the model, copying images)."""
    progress = progress or NullProgress()
    if options.method == "knn":
        return space_and_threshold(
            inputs, options.threshold, options.whiten, options.block_rows, progress, options.local
        )
    if options.eps is not None:
        rule = f"1 - eps (eps {options.eps:g})"
        return Calibration(1.0 - options.eps, rule, words=f"1 - --eps {options.eps:g}")
    raw = space_and_threshold(inputs, None, False, options.block_rows, progress, local=False)
    return Calibration(
        raw.threshold,
        f"eps = 1 - default threshold; {raw.rule}",
        words=f"eps = 1 - the default threshold, {raw.words}",
        advice=raw.advice,
    )


def space_and_threshold(
    inputs: DedupInputs,
    threshold: float | None,
    whiten: bool | None,
    block_rows: int,
    progress: Progress | None = None,
    local: bool | None = None,
) -> Calibration:
    """Decide whether to whiten, whether to scale scores locally and, unless ``threshold`` is
    given, the threshold.

    ``local``: None tests local scaling (:mod:`.local_scaling`) on the corpus's own strong
    self-copies when the threshold is calibrated, and leaves it off when ``threshold`` is given
    (a given threshold keeps meaning a cosine); True / False decide without the test.
    Reads a sample of rows and embeds copies of the corpus's images only when a decision
    needs them (a given threshold and nothing to test whitening on reads nothing).
    """
    n_total = len(inputs.catalog)
    progress = progress or NullProgress()

    @functools.cache
    def raw_sample() -> np.ndarray:  # read once, and only when needed
        size = thresholds.null_sample_size(n_total)
        progress.start("calibrating: reading random rows", size)
        try:
            sample = inputs.sample("all", size, block_rows)
            progress.advance(len(sample))
            return sample
        finally:
            progress.stop()

    if local is None and threshold is not None:
        local = False
    deciding = (whiten is None and n_total >= WHITEN_MIN_ROWS) or local is None
    copies = None
    if deciding or threshold is None:
        copies = _self_copies(inputs, ("mild", "strong") if deciding else ("mild",), progress)
    whitening, decision = choose_whitening(raw_sample, n_total, copies, whiten)
    if whiten and whitening is None:
        raise InputError(
            f"--whiten needs at least {WHITEN_MIN_ROWS} rows to fit on; this input has {n_total}"
        )
    scaling, scaling_decision = None, "off"
    if local is not False:
        sample = whitening(raw_sample()) if whitening is not None else raw_sample()
        scaling, scaling_decision = choose_local_scaling(sample, n_total, copies, whitening, local)
    if threshold is not None:
        return Calibration(
            float(threshold),
            "given",
            whitening,
            decision,
            scaling=scaling,
            scaling_decision=scaling_decision,
        )
    raw = raw_sample()
    sample = whitening(raw) if whitening is not None else raw
    levels = scaling.levels(sample) if scaling is not None else None
    mild = copies.scores("mild", whitening, scaling) if copies is not None else None
    choice = thresholds.choose_threshold(
        sample, n_total, mild, whitened=whitening is not None or scaling is not None, levels=levels
    )
    tips = advice(inputs, choice, mild, sample, n_total, levels) if mild is not None else []
    return Calibration(
        choice.value,
        choice.rule,
        whitening,
        decision,
        choice.words,
        tips,
        scaling,
        scaling_decision,
    )


def choose_local_scaling(
    sample: np.ndarray,
    n_total: int,
    copies: thresholds.SelfCopies | None,
    whitening: Whitening | None,
    local: bool | None,
) -> tuple[LocalScaling | None, str]:
    """``(scaling or None, why)``: on when asked for; by default (``local`` None) on when more of
    the corpus's strong self-copies pass the null bound with it than without it, as for
    whitening (:mod:`.whitening`); off when there are no copies to test it on.

    Example:
        >>> choose_local_scaling(np.eye(4, dtype=np.float32), 400, None, None, None)
        (None, 'off: no images of the corpus to test it on')
    """
    if local is None and n_total < LOCAL_MIN_ROWS:
        return None, f"off: {n_total} rows, local scaling needs {LOCAL_MIN_ROWS}"
    if local is None and (copies is None or "strong" not in copies.copies):
        return None, "off: no images of the corpus to test it on"
    scaling = fit_local_scaling(sample)
    if local:
        return scaling, "on: asked for"
    assert copies is not None
    plain = float(
        np.mean(copies.scores("strong", whitening) >= thresholds.null_bound(sample, n_total))
    )
    levels = scaling.levels(sample)
    scaled_null = thresholds.null_bound(sample, n_total, levels=levels)
    scaled = float(np.mean(copies.scores("strong", whitening, scaling) >= scaled_null))
    verdict = (
        f"{scaled:.0%} of {len(copies.originals)} strong self-copies pass scaled, {plain:.0%} plain"
    )
    if scaled > plain:
        return scaling, f"on: {verdict}"
    return None, f"off: {verdict}"


def _self_copies(
    inputs: DedupInputs, recipes: tuple[str, ...], progress: Progress
) -> thresholds.SelfCopies | None:
    """Copies of up to ``CALIBRATION_IMAGES`` random images of the main set, embedded with its
    model (None when that cannot be done); seeded, so a rerun calibrates alike."""
    rng = np.random.default_rng(0)
    count = min(thresholds.CALIBRATION_IMAGES, inputs.main_rows)
    rows = rng.choice(inputs.main_rows, count, replace=False)
    sources = inputs.catalog.source_of(np.sort(rows)).to_pylist()
    return thresholds.self_copies(
        inputs.main_dirs[0], sources, seed=0, recipes=recipes, progress=progress
    )


def advice(
    inputs: DedupInputs,
    choice: thresholds.ThresholdChoice,
    mild: np.ndarray,
    sample: np.ndarray,
    n_total: int,
    levels: np.ndarray | None = None,
) -> list[str]:
    """What to do when fewer than ``ADVISE_BELOW`` of the mild self-copies reach the threshold
    (else nothing): pretrain on the folder, ``--flip-average`` (unless used), or the
    ``--threshold`` that lets ``ADVISED_COPY_SHARE`` of the copies through, with the unrelated
    pairs it would let through too (read off the same sample as the default). Lines that start
    with ``$ `` are commands to run as written."""
    if choice.passing is None or choice.passing >= ADVISE_BELOW:
        return []
    emb = inputs.main_dirs[0]
    folder = emb.manifest.source or "IMAGES"
    level = float(np.floor(np.quantile(mild, 1 - ADVISED_COPY_SHARE) * 1e4) / 1e4)
    unrelated = thresholds.unrelated_pairs_above(sample, level, n_total, levels=levels)
    tips = [
        f"only {choice.passing:.0%} of {choice.copies} lightly edited copies of your own images "
        "reach the threshold: near duplicates that are not exact copies will mostly be missed. "
        "To find more:",
        "pretrain a model on this folder, then embed with it (and --flip-average):",
        f"$ embedsearch pretrain simclr {folder} -o runs/mine",
        f"$ embedsearch embed {folder} --model runs/mine --flip-average -o EMB_DIR",
    ]
    if not emb.model_options.get("flip_average"):
        tips += [
            "or embed again with --flip-average (an image and its mirror get one vector):",
            f"$ embedsearch embed {folder} --model {emb.model} --flip-average -o EMB_DIR",
        ]
    tips.append(
        # A given --threshold is a plain cosine unless --local-scaling is given too.
        f"or set --threshold {level:.4f}{' --local-scaling' if levels is not None else ''}: "
        f"{ADVISED_COPY_SHARE:.0%} of the copies reach it, and "
        f"so would about {unrelated:,.0f} unrelated pairs ({unrelated / max(n_total, 1) * 100:.1f}"
        " per 100 items); histogram.txt shows how many items each threshold flags"
    )
    return tips
